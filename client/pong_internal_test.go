package client

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// pinger is a WebSocket server that answers the first subscribe with an
// empty snapshot, then pings the client once, a while later, and counts
// connections and pongs.
type pinger struct {
	gws.BuiltinEventHandler
	after    time.Duration
	conns    atomic.Int32
	pongs    atomic.Int32
	answered atomic.Bool
}

func (p *pinger) OnMessage(c *gws.Conn, m *gws.Message) {
	defer m.Close()
	if p.answered.Swap(true) {
		return
	}
	_ = c.WriteString(`{"type":"subscribed","id":"w","kind":"top","version":1,"epoch":"e"}`)
	_ = c.WriteString(`{"type":"snapshot","id":"w","version":1,"offset":0,"size":0,"entries":[]}`)
	time.AfterFunc(p.after, func() { _ = c.WritePing([]byte("hi")) })
}

func (p *pinger) OnPong(c *gws.Conn, payload []byte) { p.pongs.Add(1) }

// TestPongAfterAQuietSpell: a server's ping that comes more than the write
// timeout after the client's last message (the server pings every 25 s by
// default, the client's own pings go out every 25 s) must be answered. The
// pong used to be written under the deadline of the client's last message,
// long past: the write failed and the connection dropped at every ping.
func TestPongAfterAQuietSpell(t *testing.T) {
	p := &pinger{after: 300 * time.Millisecond}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.conns.Add(1)
		conn, err := gws.NewUpgrader(p, &gws.ServerOption{}).Upgrade(w, r)
		if err != nil {
			return
		}
		conn.ReadLoop()
	}))
	defer srv.Close()
	c := New(srv.URL, WithTransport(TransportWebSocket))
	c.cfg.writeTimeout = 50 * time.Millisecond // the subscribe's deadline is long past when the ping comes
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	w := c.WatchTop(ctx, "b", 10)
	defer w.Close()
	if _, err := w.WaitFor(ctx, func(s State) bool { return s.Ready }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.pongs.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if p.pongs.Load() == 0 || p.conns.Load() != 1 {
		t.Fatalf("%d pongs over %d connections; want the ping answered on the first connection", p.pongs.Load(), p.conns.Load())
	}
}
