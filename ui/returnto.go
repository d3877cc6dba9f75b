package ui

import (
	"net/url"
	"strings"
)

// safeReturnTo keeps return_to only when it is a path on this site: it
// starts with "/", not "//" or "/\" (which browsers read as another host),
// has no control characters (browsers drop tabs and newlines, turning
// "/\t/evil" into "//evil"), and parses without a scheme or host.
func safeReturnTo(s string) string {
	if len(s) == 0 || len(s) > 2048 || s[0] != '/' {
		return ""
	}
	if strings.HasPrefix(s, "//") || strings.HasPrefix(s, "/\\") {
		return ""
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return ""
		}
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return ""
	}
	return s
}
