package server

import (
	"context"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/history"
	"github.com/lbhq/leaderboard/internal/history/sqlite"
)

// TestSlowDrainStillFlushesTheAuditLog: a clean stop whose drain runs past
// --shutdown-timeout (one client holds a request open) still writes every
// acknowledged change to the history store before Run returns: nothing that
// was acknowledged before the stop began may be lost to a slow client.
func TestSlowDrainStillFlushesTheAuditLog(t *testing.T) {
	cfg := testConfig(t)
	cfg.SubmitRate = 0
	cfg.ShutdownTimeout = 300 * time.Millisecond
	cfg.HistoryFlushInterval = time.Minute // the acknowledged changes wait in the writer's queue
	addr, cancel, done := start(t, cfg)
	base := "http://" + addr
	if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"d","name":"d"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	const n = 20
	for i := 0; i < n; i++ {
		if st := jsonCall(t, "POST", base+"/v1/leaderboards/d/scores", fmt.Sprintf(`{"participant_id":"p%d","score":%d}`, i, i), nil); st != 200 {
			t.Fatalf("submit: %d", st)
		}
	}
	// A client that never finishes its request body.
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"participant_id":"slow","score":1}`
	fmt.Fprintf(conn, "POST /v1/leaderboards/d/scores HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", len(body), body[:5])
	time.Sleep(100 * time.Millisecond)
	cancel()
	err = <-done
	t.Logf("Run: %v", err)

	hs, err := sqlite.OpenDir(context.Background(), cfg.DataDir)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Close()
	logged := 0
	if err := hs.EventsAfter(context.Background(), "d", 0, func(history.Event) error { logged++; return nil }); err != nil {
		t.Fatal(err)
	}
	if logged != n {
		t.Fatalf("%d of %d acknowledged submissions reached the audit log after the stop", logged, n)
	}
	// Requests were cut off: the stop is not clean, the next run starts a new epoch.
	if st, err := hs.State(context.Background()); err != nil || st.Clean {
		t.Fatalf("state after a cut-off drain: %+v %v", st, err)
	}
}
