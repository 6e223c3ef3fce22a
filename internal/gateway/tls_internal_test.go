package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/lbhq/leaderboard/internal/fanout"
)

// nopHub is a hub with no boards: these tests hand frames to connections themselves.
type nopHub struct{}

func (nopHub) Subscribe(context.Context, string, string, fanout.Spec, *uint64, string, fanout.Sink, func(*fanout.Subscription)) (*fanout.Subscription, error) {
	return nil, nil
}
func (nopHub) Unsubscribe(*fanout.Subscription)     {}
func (nopHub) Exists(context.Context, string) error { return nil }

// rvClient is a gws client handler that can stop reading (pause) and passes on what it reads.
type rvClient struct {
	gws.BuiltinEventHandler
	pause chan struct{}
	got   chan []byte
}

func (c *rvClient) OnMessage(_ *gws.Conn, m *gws.Message) {
	if c.pause != nil {
		<-c.pause
	}
	select {
	case c.got <- bytes.Clone(m.Bytes()):
	default:
	}
	m.Close()
}

// TestStuckReaderDoesNotBlockPoolWriter: a viewer that stops reading, over TCP
// or TLS, does not hold up the pool writer it shares with another viewer: the
// room check asks the TCP socket under TLS too, and a socket without room goes
// to the connection's own writer. (Found by review: under TLS the check had no
// socket to ask, said yes, and the pool writer blocked for good.)
func TestStuckReaderDoesNotBlockPoolWriter(t *testing.T) {
	for _, useTLS := range []bool{false, true} {
		name := map[bool]string{false: "tcp", true: "tls"}[useTLS]
		t.Run(name, func(t *testing.T) {
			old := runtime.GOMAXPROCS(1) // one pool writer: every connection shares it
			g := New(nopHub{}, Options{WriteTimeout: 2 * time.Second})
			runtime.GOMAXPROCS(old)
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _ = g.ServeWebSocket(w, r, "b") })
			var srv *httptest.Server
			if useTLS {
				srv = httptest.NewTLSServer(h)
			} else {
				srv = httptest.NewServer(h)
			}
			defer srv.Close()
			scheme := map[bool]string{false: "ws", true: "wss"}[useTLS]
			addr := scheme + "://" + strings.TrimPrefix(strings.TrimPrefix(srv.URL, "https://"), "http://") + "/"
			dialer := func() (gws.Dialer, error) {
				return &net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
					c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
					return nil
				}}, nil
			}
			stuck := &rvClient{pause: make(chan struct{}), got: make(chan []byte, 1)}
			defer close(stuck.pause)
			sc, _, err := gws.NewClient(stuck, &gws.ClientOption{Addr: addr, NewDialer: dialer, TlsConfig: &tls.Config{InsecureSkipVerify: true}, ReadMaxPayloadSize: 8 << 20})
			if err != nil {
				t.Fatal(err)
			}
			go sc.ReadLoop()
			defer sc.NetConn().Close()
			ok := &rvClient{got: make(chan []byte, 16)}
			oc, _, err := gws.NewClient(ok, &gws.ClientOption{Addr: addr, TlsConfig: &tls.Config{InsecureSkipVerify: true}})
			if err != nil {
				t.Fatal(err)
			}
			go oc.ReadLoop()
			defer oc.NetConn().Close()
			time.Sleep(100 * time.Millisecond)
			conns := g.snapshotConns()
			if len(conns) != 2 {
				t.Fatalf("%d conns", len(conns))
			}
			// the first accepted is the stuck one (shard 1), the second the good one (shard 2)
			var cs, co *wsConn
			for _, c := range conns {
				if c.shard == 1 {
					cs = c
				} else {
					co = c
				}
			}
			big := bytes.Repeat([]byte("x"), 1<<20)
			for range 12 { // 12 MB: more than the kernel buffers hold
				cs.write(fanout.Frame{Prefix: []byte(`{"a":"`), Body: append(big, `"}`...)})
			}
			time.Sleep(500 * time.Millisecond)
			co.write(fanout.Frame{Prefix: []byte(`{"type":"pong"`), Body: []byte(`}`)})
			select {
			case <-ok.got:
			case <-time.After(5 * time.Second):
				t.Fatal("a reading viewer got nothing: the pool writer is blocked on another connection")
			}
		})
	}
}
