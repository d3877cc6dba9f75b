package ui

import "testing"

func TestSafeReturnTo(t *testing.T) {
	for in, want := range map[string]string{
		"":                            "",
		"/":                           "/",
		"/account/consents":           "/account/consents",
		"/oauth2/authorize?a=b&c=%2F": "/oauth2/authorize?a=b&c=%2F",
		"//evil.example":              "",
		`/\evil.example`:              "",
		"/\t/evil.example":            "",
		"/\n/evil.example":            "",
		"https://evil.example/":       "",
		"javascript:alert(1)":         "",
		"evil.example":                "",
		"/a\\b":                       "",
	} {
		if got := safeReturnTo(in); got != want {
			t.Errorf("safeReturnTo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestEveryMessageHasFrenchAndEnglish(t *testing.T) {
	for _, c := range catalogues {
		for key, m := range c {
			if m.fr == "" || m.en == "" {
				t.Errorf("%s lacks a language: %+v", key, m)
			}
		}
	}
}

func TestMessageKeysAreUnique(t *testing.T) {
	seen := map[string]int{}
	for i, c := range catalogues {
		for key := range c {
			if j, dup := seen[key]; dup {
				t.Errorf("message %q is in catalogues %d and %d", key, j, i)
			}
			seen[key] = i
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	for header, want := range map[string]string{
		"":                  "fr",
		"en":                "en",
		"en-US,en;q=0.9":    "en",
		"fr-CA,en;q=0.8":    "fr",
		"de,en;q=0.5":       "en",
		"de":                "fr",
		"en;q=0.2,fr;q=0.9": "fr",
		"garbage;;;q=x":     "fr",
	} {
		if got := acceptLanguage(header); got != want {
			t.Errorf("acceptLanguage(%q) = %q, want %q", header, got, want)
		}
	}
}
