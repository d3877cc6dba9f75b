package ui

// accountMessages are the messages of the account pages.
var accountMessages = map[string]msg{}
