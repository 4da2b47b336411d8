package main

import (
	"embed"
	"net/http"
	"net/url"
)

// uiFiles are the ring page's assets, served under /ui: the node needs
// nothing else to show it, and the page loads nothing from elsewhere.
//
//go:embed ui/index.html ui/ui.js ui/ui.css
var uiFiles embed.FS

// uiCSP lets the page load only the node's own assets and talk only to its
// own origin; no inline script or style, no framing.
const uiCSP = "default-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// uiCookie carries the admin token for a browser that opened
// /ui?token=TOKEN once (see requireToken).
const uiCookie = "durachord_admin"

// uiAssets maps the page's paths to their files and content types.
var uiAssets = map[string]struct{ file, contentType string }{
	"/ui":        {"ui/index.html", "text/html; charset=utf-8"},
	"/ui/ui.js":  {"ui/ui.js", "text/javascript; charset=utf-8"},
	"/ui/ui.css": {"ui/ui.css", "text/css; charset=utf-8"},
}

// serveUI serves the ring page and its assets. A request for the page with
// ?token= (whose token requireToken has checked and put in a cookie) is
// sent on to /ui, so that the token leaves the address bar.
func serveUI(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/ui" && r.URL.Query().Has("token") {
		http.Redirect(w, r, (&url.URL{Path: "/ui"}).String(), http.StatusSeeOther)
		return
	}
	a, ok := uiAssets[r.URL.Path]
	if !ok {
		http.NotFound(w, r)
		return
	}
	b, err := uiFiles.ReadFile(a.file)
	if err != nil { // embedded at build time: cannot happen
		http.Error(w, "ui: "+err.Error(), http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	h.Set("Content-Security-Policy", uiCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	_, _ = w.Write(b)
}
