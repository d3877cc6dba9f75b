package ui

// passkeyMessages are the messages of the passkey pages.
var passkeyMessages = map[string]msg{}
