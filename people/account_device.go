package people

import "strings"

// Device is a short, language-neutral description of a user agent, for the
// session list ("Firefox" on "Android"). Empty fields mean unknown.
type Device struct {
	Browser string
	OS      string
}

// maxUserAgent bounds how much of a User-Agent header is read.
const maxUserAgent = 512

// ParseUserAgent names the browser and operating system of a User-Agent
// header with a few substring rules: enough to tell a person's phone from
// their office computer, not a full parser. Order matters: Edge, Opera and
// Samsung Internet also claim to be Chrome, Chrome claims to be Safari, and
// Android claims to be Linux.
func ParseUserAgent(ua string) Device {
	ua = cutTo(ua, maxUserAgent)
	return Device{Browser: firstMatch(ua, browserRules), OS: firstMatch(ua, osRules)}
}

type uaRule struct {
	name    string
	markers []string
}

var browserRules = []uaRule{
	{"Edge", []string{"Edg/", "EdgA/", "EdgiOS/", "Edge/"}},
	{"Opera", []string{"OPR/", "OPiOS/", "Opera"}},
	{"Samsung Internet", []string{"SamsungBrowser/"}},
	{"Firefox", []string{"Firefox/", "FxiOS/"}},
	{"Chromium", []string{"Chromium/"}},
	{"Chrome", []string{"Chrome/", "CriOS/", "HeadlessChrome/"}},
	{"Safari", []string{"Safari/"}},
}

var osRules = []uaRule{
	{"Android", []string{"Android"}},
	{"iOS", []string{"iPhone", "iPad", "iPod"}},
	{"Windows", []string{"Windows"}},
	{"ChromeOS", []string{"CrOS"}},
	{"macOS", []string{"Macintosh", "Mac OS X"}},
	{"Linux", []string{"Linux", "X11"}},
}

func firstMatch(ua string, rules []uaRule) string {
	for _, r := range rules {
		for _, m := range r.markers {
			if strings.Contains(ua, m) {
				return r.name
			}
		}
	}
	return ""
}
