package gateway_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestHeadOnStreamEndsAtItsHeaders: a HEAD of the SSE route gets the
// stream's headers and ends: no stream is held open for it (the gauge goes
// back to 0 while the client keeps its connection), and the client's next
// request on the same keep-alive connection is answered.
func TestHeadOnStreamEndsAtItsHeaders(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "hd")
	// One connection, kept alive: the next request must reuse it.
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}, Timeout: 10 * time.Second}
	defer client.CloseIdleConnections()
	res, err := client.Head("http://" + addr + "/v1/leaderboards/hd/stream?kind=top&limit=5")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "text/event-stream" || res.Header.Get("Cache-Control") != "no-cache" {
		t.Fatalf("HEAD stream: %d %v", res.StatusCode, res.Header)
	}
	waitFor(t, "no SSE stream open", func() bool {
		return strings.Contains(metrics(t, addr), "\nleaderboard_live_sse_streams 0\n")
	})
	res, err = client.Get("http://" + addr + "/healthz")
	if err != nil {
		t.Fatalf("the request after a HEAD of the stream on the same connection: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("healthz after HEAD: %d", res.StatusCode)
	}
	// Unknown leaderboards still get their 404.
	res, err = client.Head("http://" + addr + "/v1/leaderboards/none/stream")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 404 {
		t.Fatalf("HEAD stream of an unknown leaderboard: %d", res.StatusCode)
	}
}

// TestSubscribeWithoutHandshakeGetsJSONError: a request to the WebSocket
// route that is no handshake (a plain GET, a HEAD, a wrong version) gets the
// contract's JSON 400, is counted as a 400 (not a 101), and holds no
// connection.
func TestSubscribeWithoutHandshakeGetsJSONError(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "hs")
	url := "http://" + addr + "/v1/leaderboards/hs/subscribe"
	for _, c := range []struct {
		name, method string
		header       map[string]string
	}{
		{"plain GET", "GET", nil},
		{"HEAD", "HEAD", nil},
		{"version 8", "GET", map[string]string{"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Version": "8"}},
	} {
		req, _ := http.NewRequest(c.method, url, nil)
		for k, v := range c.header {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		if c.method != "HEAD" {
			if err := json.NewDecoder(res.Body).Decode(&e); err != nil {
				t.Errorf("%s: the body is not the contract's JSON error: %v", c.name, err)
			}
		}
		res.Body.Close()
		if res.StatusCode != 400 || res.Header.Get("Content-Type") != "application/json" || (c.method != "HEAD" && e.Error.Code != "invalid_argument") {
			t.Errorf("%s: %d %q %q, want 400 application/json invalid_argument", c.name, res.StatusCode, res.Header.Get("Content-Type"), e.Error.Code)
		}
	}
	m := metrics(t, addr)
	if strings.Contains(m, `leaderboard_http_requests_total{code="101",route="/v1/leaderboards/{id}/subscribe"}`) {
		t.Error("requests that were no handshake are counted as 101")
	}
	if !strings.Contains(m, `leaderboard_http_requests_total{code="400",route="/v1/leaderboards/{id}/subscribe"} 3`) {
		t.Error("the three refused requests are not counted as 400")
	}
	if !strings.Contains(m, "\nleaderboard_live_websocket_connections 0\n") {
		t.Error("a refused request holds a WebSocket connection")
	}
	// A real handshake still upgrades.
	c, _, err := dial(t, addr, "hs", nil)
	if err != nil {
		t.Fatal(err)
	}
	c.send(t, `{"type":"subscribe","id":"a","kind":"top","limit":3}`)
	waitFor(t, "snapshot", func() bool { return firstOfType(c.all(), "snapshot", "a") != nil })
}

// TestHeadOnLongPollAnswersAtOnce: a HEAD of the long-poll route has no body
// to wait for: 204 at once, not after timeout_ms (a client's keep-alive
// connection is not held for the poll's length), and no poll place is held.
func TestHeadOnLongPollAnswersAtOnce(t *testing.T) {
	addr := startServer(t, nil)
	seed(t, addr, "hl")
	client := &http.Client{Timeout: 20 * time.Second}
	snap := getJSON(t, "http://"+addr+"/v1/leaderboards/hl/updates?kind=top&limit=5")
	q := fmt.Sprintf("kind=top&limit=5&since_version=%d&epoch=%s&timeout_ms=60000", num(snap["version"]), snap["epoch"])
	res, err := client.Head("http://" + addr + "/v1/leaderboards/hl/updates?" + q)
	if err != nil {
		t.Fatalf("HEAD of a 60 s long poll: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != 204 {
		t.Fatalf("HEAD long poll: %d", res.StatusCode)
	}
	if m := metrics(t, addr); !strings.Contains(m, "\nleaderboard_live_long_polls 0\n") {
		t.Fatalf("a poll is counted open after its HEAD")
	}
}
