package gateway

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/fanout"
)

// rawDial opens a WebSocket by hand and returns a reader of the server's frames.
func rawDial(t *testing.T, hostport string) (net.Conn, *bufio.Reader) {
	c, err := net.Dial("tcp", hostport)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil || res.StatusCode != 101 {
		t.Fatalf("handshake %v %v", res, err)
	}
	return c, br
}

// TestNoFrameAfterClose: the writers write frames beside gws, and after gws has
// written its close frame nothing may follow it (RFC 6455, 5.5.1), however the
// two race. (Found by review: without wsframe.Conn's watch on the close frame,
// frames followed it within a few dozen rounds.)
func TestNoFrameAfterClose(t *testing.T) {
	g := New(nopHub{}, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = g.ServeWebSocket(w, r, "b") }))
	defer srv.Close()
	hp := strings.TrimPrefix(srv.URL, "http://")
	bad := 0
	for round := 0; round < 300 && bad == 0; round++ {
		c, br := rawDial(t, hp)
		deadline := time.Now().Add(50 * time.Millisecond)
		for len(g.snapshotConns()) == 0 && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		conns := g.snapshotConns()
		if len(conns) != 1 {
			t.Fatalf("%d conns", len(conns))
		}
		wc := conns[0]
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() { // a steady stream of small frames
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				wc.write(fanout.Frame{Prefix: []byte(`{"type":"pong"`), Body: []byte(`}`)})
				time.Sleep(time.Microsecond)
			}
		}()
		time.Sleep(time.Millisecond)
		_ = wc.ws.WriteClose(1001, []byte("bye"))
		sawClose := false
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				break
			}
			n := int(h[1] & 0x7f)
			if n == 126 {
				var l [2]byte
				io.ReadFull(br, l[:])
				n = int(binary.BigEndian.Uint16(l[:]))
			}
			io.CopyN(io.Discard, br, int64(n))
			if h[0]&0x0f == 8 {
				sawClose = true
			} else if sawClose {
				bad++
				t.Errorf("round %d: a data frame after the close frame", round)
				break
			}
		}
		close(stop)
		wg.Wait()
		c.Close()
		for len(g.snapshotConns()) != 0 {
			time.Sleep(time.Millisecond)
		}
	}
}
