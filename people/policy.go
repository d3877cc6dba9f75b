package people

import (
	"errors"
	"fmt"
)

// Permission is something a signed-in person may be allowed to do within a
// structure. Can is the one check every API route and page uses.
type Permission string

// Permissions.
const (
	// PermManageStructures: create structures. Platform admins only.
	PermManageStructures Permission = "structures.manage"
	// PermManageStaff: list, invite, deactivate and reactivate a structure's
	// staff, read the inactivity report.
	PermManageStaff Permission = "staff.manage"
	// PermManageBanners: post banner messages on a structure's home pages.
	PermManageBanners Permission = "banners.manage"
	// PermImportHolders: import a structure's holders from CSV.
	PermImportHolders Permission = "holders.import"
	// PermServeHolders: create and look up the holders a structure serves,
	// start their passkey enrolment (mediators, during an appointment).
	PermServeHolders Permission = "holders.serve"
	// PermRequestMandates: ask a holder for a mandate (mediators).
	PermRequestMandates Permission = "mandates.request"
	// PermReadAudit: read and export the structure's audit events.
	PermReadAudit Permission = "audit.read"
)

// ErrForbidden: the signed-in person may not do this here. Pages and the API
// answer it the same way as "not found" when telling them apart would leak
// that another structure's record exists.
var ErrForbidden = errors.New("you are not allowed to do this")

var rolePermissions = map[Role]map[Permission]bool{
	RoleAdmin: {
		PermManageStaff: true, PermManageBanners: true, PermImportHolders: true,
		PermServeHolders: true, PermReadAudit: true,
	},
	RoleMediator: {PermServeHolders: true, PermRequestMandates: true},
	RoleAuditor:  {PermReadAudit: true},
}

// Can reports whether p may use perm on structureID's data. Staff act within
// their own structure only, unless they are platform staff (Platform: every
// structure). Holders hold no staff permission: what concerns them is
// checked by ownership (their own holder id). PermManageStructures belongs to
// platform admins alone.
func Can(p Principal, perm Permission, structureID string) bool {
	if p.Kind != "staff" {
		return false
	}
	if perm == PermManageStructures {
		return p.Platform && p.Role == RoleAdmin
	}
	if !p.Platform && (structureID == "" || structureID != p.StructureID) {
		return false
	}
	return rolePermissions[p.Role][perm]
}

// Authorize is Can as an error: nil, or ErrForbidden wrapped with what was
// refused.
func Authorize(p Principal, perm Permission, structureID string) error {
	if Can(p, perm, structureID) {
		return nil
	}
	return fmt.Errorf("%w: %s on structure %q", ErrForbidden, perm, structureID)
}
