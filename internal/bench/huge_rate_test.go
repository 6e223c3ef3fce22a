package bench

import (
	"context"
	"strings"
	"testing"
	"time"
)

// TestHugeRateStopsByItself: at a --rate far past what the client can send,
// every worker falls behind and, when the window closes, must count the slots it
// never sent. Counting them one by one took billions of iterations (rate x
// duration): the run did not end, and ignored SIGTERM (the first one only asks
// the schedule to stop, and the counting loop never looks).
func TestHugeRateStopsByItself(t *testing.T) {
	f := newFakeAPI()
	srv := f.start(t)
	cfg := testConfig(ModeSubmit, srv.URL)
	cfg.Rate = 1e9
	cfg.Duration = 3 * time.Second
	cfg.Connections = 2
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		rep, err := Run(ctx, cfg)
		done <- result{rep, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatal(r.err)
		}
		// Every slot of the window was sent or reported missed.
		if got, want := r.rep.Requests+r.rep.MissedSends, int64(3e9); got < want-2 || got > want+2 {
			t.Errorf("requests %d + missed %d = %d, want the %d scheduled", r.rep.Requests, r.rep.MissedSends, got, want)
		}
	case <-time.After(cfg.Duration + 5*time.Second):
		cancel()
		t.Fatal("a run of 3s at --rate 1e9 did not end 5s after its window (counting its missed slots one by one)")
	}
}

// TestRateBeyondTheScheduleIsRefused: above one request per nanosecond the
// schedule cannot be kept in time.Duration; the value is a usage error naming
// the flag.
func TestRateBeyondTheScheduleIsRefused(t *testing.T) {
	var errb strings.Builder
	for _, mode := range []string{ModeSubmit, ModeViewers} {
		errb.Reset()
		_, code, ok := parseArgs(mode, []string{"--rate", "1e12"}, &errb)
		if ok || code != 2 || !strings.Contains(errb.String(), "--rate") {
			t.Errorf("%s --rate 1e12: ok=%v code %d %q, want a usage error naming --rate", mode, ok, code, errb.String())
		}
	}
}
