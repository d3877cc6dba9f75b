package ui

// auditorMessages are the messages of the auditor pages.
var auditorMessages = map[string]msg{}
