package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/durachord/durachord/api"
	"github.com/durachord/durachord/config"
)

// adminGet GETs path on the daemon's admin server with the request changed
// by mod, without following redirects, and returns the response and body.
func (d *testDaemon) adminGet(t *testing.T, path string, mod func(*http.Request)) (*http.Response, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+d.adminLn.Addr().String()+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(req)
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", path, err)
	}
	return resp, string(b)
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func cookie(value string) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: uiCookie, Value: value}) }
}

// The ring page and its assets are served from the binary with their
// content types and a CSP of default-src 'self', and refer to nothing but
// the node's own paths.
func TestUIAssets(t *testing.T) {
	d := startDaemon(t, withAdmin)
	for path, want := range map[string]string{
		"/ui":        "text/html; charset=utf-8",
		"/ui/ui.js":  "text/javascript; charset=utf-8",
		"/ui/ui.css": "text/css; charset=utf-8",
	} {
		resp, body := d.adminGet(t, path, nil)
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("GET %s = %d with %d bytes; want 200 with the asset", path, resp.StatusCode, len(body))
		}
		if got := resp.Header.Get("Content-Type"); got != want {
			t.Errorf("GET %s: Content-Type %q; want %q", path, got, want)
		}
		if got := resp.Header.Get("Content-Security-Policy"); !strings.HasPrefix(got, "default-src 'self';") {
			t.Errorf("GET %s: Content-Security-Policy %q; want default-src 'self' first", path, got)
		}
		if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
			t.Errorf("GET %s: X-Content-Type-Options %q; want nosniff", path, got)
		}
	}
	_, page := d.adminGet(t, "/ui", nil)
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 2 {
		t.Fatalf("the page refers to %d assets; want its script and style sheet", len(refs))
	}
	for _, m := range refs {
		if resp, _ := d.adminGet(t, m[1], nil); !strings.HasPrefix(m[1], "/ui/") || resp.StatusCode != http.StatusOK {
			t.Errorf("the page refers to %q (GET = %d); want a /ui/ path the node serves", m[1], resp.StatusCode)
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") {
		t.Errorf("the page has inline script or style, which its CSP forbids")
	}
	if resp, _ := d.adminGet(t, "/ui/nothing.js", nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /ui/nothing.js = %d; want 404", resp.StatusCode)
	}
}

// With a token, the page and its assets answer 401 without it; a browser
// gets in by opening /ui?token=TOKEN once, which sets an HttpOnly,
// SameSite=Strict cookie and sends it on to /ui; the cookie then opens the
// page, /ring and /status. A wrong token in the query sets nothing.
func TestUIToken(t *testing.T) {
	tokenFile, token := writeToken(t)
	d := startDaemon(t, withAdmin, func(c *config.Config) { c.Admin.TokenFile = tokenFile })
	for _, path := range []string{"/ui", "/ui/ui.js", "/ui/ui.css"} {
		if resp, _ := d.adminGet(t, path, nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without the token = %d; want 401", path, resp.StatusCode)
		}
		if resp, _ := d.adminGet(t, path, cookie(token[1:])); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong cookie = %d; want 401", path, resp.StatusCode)
		}
		resp, _ := d.adminGet(t, path, bearer(token))
		if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Security-Policy") != uiCSP {
			t.Errorf("GET %s with the token = %d, CSP %q; want 200, %q", path, resp.StatusCode, resp.Header.Get("Content-Security-Policy"), uiCSP)
		}
	}

	resp, _ := d.adminGet(t, "/ui?token="+token[1:], nil)
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("GET /ui?token=WRONG = %d, cookies %v; want 401 and none", resp.StatusCode, resp.Cookies())
	}
	resp, _ = d.adminGet(t, "/ui?token="+token, nil)
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui" {
		t.Fatalf("GET /ui?token=TOKEN = %d to %q; want 303 to /ui", resp.StatusCode, resp.Header.Get("Location"))
	}
	var got *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == uiCookie {
			got = c
		}
	}
	if got == nil || got.Value != token || !got.HttpOnly || got.SameSite != http.SameSiteStrictMode || got.Path != "/" {
		t.Fatalf("GET /ui?token=TOKEN set cookie %+v; want %s=TOKEN, HttpOnly, SameSite=Strict, Path=/", got, uiCookie)
	}
	for _, path := range []string{"/ui", "/ui/ui.js", "/ring", "/status"} {
		if resp, _ := d.adminGet(t, path, cookie(got.Value)); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s with the cookie = %d; want 200", path, resp.StatusCode)
		}
	}
	if resp, _ := d.adminGet(t, "/status?token="+token, nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET /status?token=TOKEN = %d; want 401 (only /ui takes the token in its address)", resp.StatusCode)
	}
}

// A node's /status, and so each node of /ring, carries its admin address
// (which the ring page links to), the count of client requests it has
// answered and their rate.
func TestStatusReportsAdminAndRequests(t *testing.T) {
	d := startDaemon(t, withAdmin)
	status := func() (admin string, requests uint64) {
		t.Helper()
		_, body := d.adminGet(t, "/status", nil)
		var st struct {
			Admin    string `json:"admin"`
			Requests uint64 `json:"requests"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("GET /status: %v in %s", err, body)
		}
		return st.Admin, st.Requests
	}
	if admin, n := status(); admin != d.adminLn.Addr().String() || n != 0 {
		t.Errorf("/status admin %q, requests %d; want %q, 0", admin, n, d.adminLn.Addr())
	}
	c, err := api.Dial(t.Context(), d.apiLn.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("closing the API client: %v", err)
		}
	})
	for range 3 {
		_, _ = c.Get(t.Context(), [32]byte{1}) // not found or not ready: answered either way
	}
	if _, n := status(); n != 3 {
		t.Errorf("/status requests after 3 GETs = %d; want 3", n)
	}
}
