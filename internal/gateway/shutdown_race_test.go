package gateway_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/lxzan/gws"

	"github.com/lbhq/leaderboard/internal/fanout"
	"github.com/lbhq/leaderboard/internal/gateway"
)

// slowExistsHub is a hub whose Exists waits for release: an upgrade held
// between the gateway's shutdown check and its registration of the
// connection.
type slowExistsHub struct {
	entered chan struct{}
	release chan struct{}
}

func (h *slowExistsHub) Subscribe(context.Context, string, string, fanout.Spec, *uint64, string, fanout.Sink, func(*fanout.Subscription)) (*fanout.Subscription, error) {
	return nil, errors.New("not used")
}

func (h *slowExistsHub) Unsubscribe(*fanout.Subscription) {}

func (h *slowExistsHub) Exists(context.Context, string) error {
	close(h.entered)
	<-h.release
	return nil
}

// TestUpgradeRacingShutdownGetsGoingAway: a WebSocket whose upgrade was
// under way when Shutdown ran (past the shutdown check, not yet registered)
// still gets the going-away close (1001) instead of staying open, unseen by
// Shutdown and by http.Server.Shutdown (it is hijacked), until its
// heartbeat timeout.
func TestUpgradeRacingShutdownGetsGoingAway(t *testing.T) {
	hub := &slowExistsHub{entered: make(chan struct{}), release: make(chan struct{})}
	g := gateway.New(hub, gateway.Options{HeartbeatTimeout: time.Minute, PingInterval: time.Hour})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := g.ServeWebSocket(w, r, "b"); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	type dialed struct {
		c   *wsClient
		err error
	}
	dc := make(chan dialed, 1)
	go func() {
		c, _, err := dial(t, strings.TrimPrefix(srv.URL, "http://"), "b", nil)
		dc <- dialed{c, err}
	}()
	<-hub.entered
	g.Shutdown()
	close(hub.release)
	d := <-dc
	if d.err != nil {
		return // refused once shutting down: as good as a going-away close
	}
	select {
	case err := <-d.c.closed:
		var ce *gws.CloseError
		if !errors.As(err, &ce) || ce.Code != 1001 {
			t.Fatalf("closed with %v, want 1001", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a WebSocket upgraded while the gateway shut down is still open, without a going-away close")
	}
}
