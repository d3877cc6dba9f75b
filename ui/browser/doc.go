// Package browser holds end-to-end tests of mandated's pages in a real
// headless Chromium driven over the DevTools protocol (chromedp): enrolment
// and sign-in with TOTP, OAuth2 consent, withdrawing consent, error pages and
// keyboard use, each page checked with axe-core (WCAG 2 A/AA) and for
// horizontal scrolling at 360 px. It has no code besides its tests.
//
// The tests need Chromium (/usr/bin/chromium, or MANDATED_CHROMIUM) and
// axe-core's axe.min.js (MANDATED_AXE_JS, or testdata/node_modules/axe-core/
// after `npm install --no-save --prefix ui/browser/testdata axe-core@4`).
// Without them they skip, unless MANDATED_REQUIRE_BROWSER=1, where they fail.
package browser
