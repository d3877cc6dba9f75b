package ui

// adminMessages are the messages of the admin pages.
var adminMessages = map[string]msg{}
