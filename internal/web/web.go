// Package web is the live leaderboard page: one HTML document and a few static
// assets (one dependency-free script, one style sheet, an icon), embedded in
// the binary with go:embed, so that the page needs no Node toolchain and no
// files beside the binary.
//
// The page itself follows docs/LIVE.md in the browser: it subscribes over
// WebSocket, falls back to Server-Sent Events and then to polling, resumes
// with since_version after a drop, and keeps a local copy of each window by
// the rules of "Keeping a local copy" (static/app.js).
//
// Handler serves "GET /" (the page; ?board=<id>&follow=<pid>&limit=<n>
// choose what it shows) and "GET /assets/<name>". The API mounts it through
// api.Options.Page, outside its route table.
package web

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/lbhq/leaderboard/internal/wire"
)

//go:embed static
var static embed.FS

// Options configure the page.
type Options struct {
	// DefaultBoard is the leaderboard the page opens when its URL names none
	// (the demo tournament when the server runs with --demo); empty: the page
	// shows the list and waits for a choice.
	DefaultBoard string
}

// contentTypes are set explicitly rather than from the system's MIME table,
// which differs between machines.
var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// csp allows the page's own script, styles and connections (ws: and wss:
// for the WebSocket, which 'self' does not name in every browser) and
// nothing else.
const csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	etag        string // quoted
	version     string // short content hash, the ?v= of the page's links
	contentType string
}

type handler struct {
	index  asset
	assets map[string]asset // by name under /assets/
}

// Handler returns the page's handler: "GET /" and "GET /assets/<name>";
// anything else (an unknown asset included) is the API's JSON 404.
func Handler(opts Options) http.Handler {
	h := &handler{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Base(p) == "index.html" {
			return err
		}
		b, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		h.assets[strings.TrimPrefix(p, "static/")] = newAsset(b, contentTypes[path.Ext(p)])
		return nil
	})
	if err != nil {
		panic("web: embedded assets: " + err.Error()) // the embed is part of the build
	}
	tmpl := template.Must(template.ParseFS(static, "static/index.html"))
	versions := map[string]string{}
	for name, a := range h.assets {
		versions[strings.NewReplacer(".", "_", "-", "_").Replace(name)] = a.version
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct {
		DefaultBoard string
		V            map[string]string
	}{opts.DefaultBoard, versions}); err != nil {
		panic("web: index template: " + err.Error())
	}
	h.index = newAsset(buf.Bytes(), contentTypes[".html"])
	return h
}

func newAsset(b []byte, contentType string) asset {
	sum := sha256.Sum256(b)
	v := hex.EncodeToString(sum[:6])
	return asset{body: b, etag: `"` + v + `"`, version: v, contentType: contentType}
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed here; allowed: GET, HEAD")
		return
	}
	hd := w.Header()
	hd.Set("X-Content-Type-Options", "nosniff")
	switch {
	case r.URL.Path == "/":
		// The page names its assets by content hash, so it is revalidated
		// on every load (cheap: 304 by ETag) and the assets can be cached.
		hd.Set("Cache-Control", "no-cache")
		hd.Set("Content-Security-Policy", csp)
		hd.Set("Referrer-Policy", "no-referrer")
		serve(w, r, h.index)
	case strings.HasPrefix(r.URL.Path, "/assets/"):
		a, ok := h.assets[strings.TrimPrefix(r.URL.Path, "/assets/")]
		if !ok {
			writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
			return
		}
		if r.URL.Query().Get("v") == a.version {
			hd.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hd.Set("Cache-Control", "no-cache")
		}
		serve(w, r, a)
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
	}
}

// serve answers with a's body, or 304 when If-None-Match names its ETag
// (http.ServeContent also does HEAD and ranges).
func serve(w http.ResponseWriter, r *http.Request, a asset) {
	w.Header().Set("Content-Type", a.contentType)
	w.Header().Set("ETag", a.etag)
	http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(a.body))
}

// writeError writes the API's error shape (wire.Error), so that a client
// sees one kind of error everywhere.
func writeError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(wire.Error(nil, code, message))
}
