// Package mandate is the domain core of mandated: the scope catalogue, the
// clock every time-based rule reads, and the sentinel errors that stores
// return. Later it holds mandates, presence leases and structure policies.
// It depends on the standard library only.
package mandate
