package ui

import (
	"fmt"
	"html/template"
	"io/fs"
	"strings"
	"time"

	"github.com/mandated/mandated/mandate"
)

// Languages the pages speak; the first is the default.
var languages = []string{"fr", "en"}

// notPages are the files under templates/ that are not pages of their own:
// the layout, the shared parts, the sign-in page (parsed once per method)
// and the method forms ("form-*.html"). Every other file there is a page
// defining "title" and "content", rendered by its file name.
var notPages = map[string]bool{"layout.html": true, "parts.html": true, "signin.html": true}

func pageFiles() []string {
	entries, err := fs.ReadDir(assets, "templates")
	if err != nil {
		panic(fmt.Sprintf("ui: %v", err))
	}
	var out []string
	for _, e := range entries {
		n := e.Name()
		if !notPages[n] && !strings.HasPrefix(n, "form-") && strings.HasSuffix(n, ".html") {
			out = append(out, n)
		}
	}
	return out
}

// parsePages parses every page once per language, with the message
// function bound to that language. Each sign-in method gets its own sign-in
// page, "signin:<method>", whose "method-fields" come from the method's file.
func parsePages(methods []SignInMethod) map[string]map[string]*template.Template {
	out := map[string]map[string]*template.Template{}
	for _, lang := range languages {
		out[lang] = map[string]*template.Template{}
		for _, f := range pageFiles() {
			out[lang][f] = parse(lang, "templates/"+f)
		}
		for _, m := range methods {
			out[lang]["signin:"+m.Method()] = parse(lang, "templates/signin.html", "templates/"+m.FormTemplate())
		}
	}
	return out
}

func parse(lang string, files ...string) *template.Template {
	files = append([]string{"templates/layout.html", "templates/parts.html"}, files...)
	return template.Must(template.New("layout.html").Funcs(funcs(lang)).ParseFS(assets, files...))
}

func funcs(lang string) template.FuncMap {
	return template.FuncMap{
		// t looks a message up; an unknown key fails the page, so tests catch it.
		"t": func(key string, args ...any) (string, error) {
			m, ok := lookupMessage(key)
			if !ok {
				return "", fmt.Errorf("no message %q", key)
			}
			s := m.fr
			if lang == "en" {
				s = m.en
			}
			if len(args) > 0 {
				s = fmt.Sprintf(s, args...)
			}
			return s, nil
		},
		"scopeLabel": func(s mandate.Scope) string { return s.Label(lang) },
		"scopeDesc":  func(s mandate.Scope) string { return s.Description(lang) },
		"date":       func(t time.Time) string { return formatDate(lang, t) },
	}
}

var monthsFR = [...]string{"janvier", "février", "mars", "avril", "mai", "juin", "juillet",
	"août", "septembre", "octobre", "novembre", "décembre"}

func formatDate(lang string, t time.Time) string {
	if lang == "en" {
		return t.Format("2 January 2006")
	}
	return fmt.Sprintf("%d %s %d", t.Day(), monthsFR[t.Month()-1], t.Year())
}
