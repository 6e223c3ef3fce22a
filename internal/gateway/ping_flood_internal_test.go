package gateway

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPingFloodFromNonReaderIsBounded: a client that sends WebSocket pings
// and never reads must not make the server queue pongs without bound. The
// message budget (--ws-message-rate) does not apply to control frames, and
// each ping keeps the heartbeat alive, so the connection never closes.
func TestPingFloodFromNonReaderIsBounded(t *testing.T) {
	g := New(nopHub{}, Options{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = g.ServeWebSocket(w, r, "b") }))
	defer srv.Close()
	c, _ := rawDial(t, strings.TrimPrefix(srv.URL, "http://"))
	defer c.Close()
	// The client never reads: once the socket buffers are full, every pong
	// the server owes waits in memory.

	// One masked ping frame with the largest payload a control frame may carry.
	frame := []byte{0x89, 0x80 | 125, 0, 0, 0, 0} // FIN|ping, masked, 125 bytes, zero mask
	frame = append(frame, make([]byte, 125)...)
	const pings = 300000
	batch := make([]byte, 0, 1000*len(frame))
	for i := 0; i < 1000; i++ {
		batch = append(batch, frame...)
	}

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := 0; i < pings/1000; i++ {
		_ = c.SetWriteDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(batch); err != nil {
			t.Fatalf("after %d pings: %v", i*1000, err)
		}
	}
	time.Sleep(500 * time.Millisecond) // the server reads what is left
	runtime.GC()
	runtime.ReadMemStats(&after)
	grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("heap grew %d KiB over %d pings", grown>>10, pings)
	if grown > 16<<20 {
		t.Fatalf("one connection that pings and never reads grew the heap by %d MiB (%d pings): pongs are queued without bound", grown>>20, pings)
	}
}
