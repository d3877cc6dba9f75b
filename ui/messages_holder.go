package ui

// holderMessages are the messages of the holder pages.
var holderMessages = map[string]msg{}
