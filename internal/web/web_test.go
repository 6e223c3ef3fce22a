package web_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
	"github.com/lbhq/leaderboard/internal/web"
)

// newAPI serves the API with the page, as the server does.
func newAPI(t *testing.T, page http.Handler) (*api.API, string) {
	t.Helper()
	a := api.New(board.New(memory.New(memory.Options{}), board.Options{}), api.Options{Page: page})
	srv := httptest.NewServer(a)
	t.Cleanup(srv.Close)
	return a, srv.URL
}

func get(t *testing.T, method, url string, header map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

// TestPageAndAssets: GET / is the HTML page, naming the default board; every
// asset it links has its content type, is cached for good under its content
// hash and revalidated otherwise, and answers 304 to its ETag.
func TestPageAndAssets(t *testing.T) {
	_, base := newAPI(t, web.Handler(web.Options{DefaultBoard: "demo-cup"}))
	res, body := get(t, "GET", base+"/", nil)
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !strings.HasPrefix(body, "<!doctype html>") || !strings.Contains(body, `<meta name="lb-default-board" content="demo-cup">`) {
		t.Fatalf("GET / is not the page with its default board:\n%s", body)
	}
	if cc := res.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control %q", cc)
	}
	for _, h := range []string{"Content-Security-Policy", "X-Content-Type-Options", "ETag"} {
		if res.Header.Get(h) == "" {
			t.Errorf("page without %s", h)
		}
	}
	if r2, _ := get(t, "GET", base+"/", map[string]string{"If-None-Match": res.Header.Get("ETag")}); r2.StatusCode != 304 {
		t.Errorf("GET / with its ETag: %d, want 304", r2.StatusCode)
	}
	if r2, _ := get(t, "GET", base+"/?board=x&follow=y", nil); r2.StatusCode != 200 {
		t.Errorf("GET /?board=x&follow=y: %d", r2.StatusCode)
	}
	if r2, b2 := get(t, "HEAD", base+"/", nil); r2.StatusCode != 200 || b2 != "" {
		t.Errorf("HEAD /: %d, %d bytes", r2.StatusCode, len(b2))
	}

	links := regexp.MustCompile(`(?:src|href)="(/assets/([^"?]+)\?v=([0-9a-f]+))"`).FindAllStringSubmatch(body, -1)
	want := map[string]string{
		"app.js":      "text/javascript; charset=utf-8",
		"style.css":   "text/css; charset=utf-8",
		"favicon.svg": "image/svg+xml",
	}
	seen := map[string]bool{}
	for _, l := range links {
		url, name := l[1], l[2]
		seen[name] = true
		res, body := get(t, "GET", base+url, nil)
		if res.StatusCode != 200 || len(body) == 0 {
			t.Errorf("GET %s: %d, %d bytes", url, res.StatusCode, len(body))
			continue
		}
		if ct := res.Header.Get("Content-Type"); ct != want[name] {
			t.Errorf("GET %s: Content-Type %q, want %q", url, ct, want[name])
		}
		if cc := res.Header.Get("Cache-Control"); cc != "public, max-age=31536000, immutable" {
			t.Errorf("GET %s (current hash): Cache-Control %q", url, cc)
		}
		if res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s without nosniff", url)
		}
		res2, _ := get(t, "GET", base+"/assets/"+name, nil)
		if cc := res2.Header.Get("Cache-Control"); res2.StatusCode != 200 || cc != "no-cache" {
			t.Errorf("GET /assets/%s (no hash): %d, Cache-Control %q", name, res2.StatusCode, cc)
		}
		if res3, _ := get(t, "GET", base+url, map[string]string{"If-None-Match": res.Header.Get("ETag")}); res3.StatusCode != 304 {
			t.Errorf("GET %s with its ETag: %d, want 304", url, res3.StatusCode)
		}
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("the page does not link %s", name)
		}
	}
}

// TestUnknownPathsStayJSON404: the page takes "/" and "/assets/" only; every
// other unknown path, an unknown asset, and another method on "/" still get
// the API's JSON 404 not_found. The page's routes are not API routes.
func TestUnknownPathsStayJSON404(t *testing.T) {
	a, base := newAPI(t, web.Handler(web.Options{}))
	for _, c := range []struct{ method, path string }{
		{"GET", "/nope"},
		{"GET", "/index.html"},
		{"GET", "/assets/"},
		{"GET", "/assets/nope.js"},
		{"GET", "/assets/../go.mod"},
		{"GET", "/v1/nope"},
		{"POST", "/"},
		{"DELETE", "/assets/app.js"},
	} {
		res, body := get(t, c.method, base+c.path, nil)
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if res.StatusCode != 404 || res.Header.Get("Content-Type") != "application/json" ||
			json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "not_found" {
			t.Errorf("%s %s: %d %q %s, want the JSON 404 not_found", c.method, c.path, res.StatusCode, res.Header.Get("Content-Type"), body)
		}
	}
	for _, r := range a.Routes() {
		if r == "GET /" || strings.Contains(r, "/assets") || strings.Contains(r, "{$}") {
			t.Errorf("the page's route %q is in the API route table", r)
		}
	}
	// The same API without a page: GET / is a JSON 404 too.
	_, bare := newAPI(t, nil)
	if res, body := get(t, "GET", bare+"/", nil); res.StatusCode != 404 || !strings.Contains(body, `"not_found"`) {
		t.Errorf("GET / without a page: %d %s", res.StatusCode, body)
	}
	// And with the page the route table is the same as without.
	b, _ := newAPI(t, nil)
	if !slices.Equal(a.Routes(), b.Routes()) {
		t.Errorf("the page changed Routes()")
	}
}

// TestDefaultBoardIsEscaped: the default board goes into an attribute.
func TestDefaultBoardIsEscaped(t *testing.T) {
	_, base := newAPI(t, web.Handler(web.Options{DefaultBoard: `x"><script>alert(1)</script>`}))
	_, body := get(t, "GET", base+"/", nil)
	if strings.Contains(body, "<script>alert") {
		t.Fatalf("default board not escaped:\n%s", body)
	}
}
