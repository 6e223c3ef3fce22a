package api_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestPageOption: Options.Page serves exactly "GET /" and "GET /assets/...",
// stays out of Routes(), and leaves every other unknown path to the JSON 404.
func TestPageOption(t *testing.T) {
	page := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		io.WriteString(w, "page "+r.URL.Path)
	})
	newAPI := func(page http.Handler) *api.API {
		return api.New(board.New(memory.New(memory.Options{}), board.Options{}), api.Options{Page: page})
	}
	a := newAPI(page)
	srv := httptest.NewServer(a)
	defer srv.Close()
	for _, c := range []struct {
		method, path string
		status       int
		body         string
	}{
		{"GET", "/", 200, "page /"},
		{"GET", "/?board=b&follow=p", 200, "page /"},
		{"HEAD", "/", 200, ""},
		{"GET", "/assets/app.js", 200, "page /assets/app.js"},
		{"GET", "/assets/x/y.css", 200, "page /assets/x/y.css"},
		{"POST", "/", 404, `"not_found"`},
		{"GET", "/other", 404, `"not_found"`},
		{"GET", "/assetsx", 404, `"not_found"`},
		{"GET", "/v1/leaderboards/none", 404, `"leaderboard_not_found"`},
		{"GET", "/healthz", 200, "ok"},
	} {
		req, _ := http.NewRequest(c.method, srv.URL+c.path, nil)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.StatusCode != c.status || !strings.Contains(string(b), c.body) {
			t.Errorf("%s %s: %d %s, want %d with %q", c.method, c.path, res.StatusCode, b, c.status, c.body)
		}
	}
	if !slices.Equal(a.Routes(), newAPI(nil).Routes()) {
		t.Errorf("Options.Page changed Routes(): %v", a.Routes())
	}
}
