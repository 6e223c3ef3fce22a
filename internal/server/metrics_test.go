package server

import "testing"

// TestParticipantsGaugeLeavesCompletedBoards: leaderboard_participants counts
// the participants of live leaderboards; a board that completes leaves it,
// with persistence (the board leaves memory) and without (it stays there,
// sealed).
func TestParticipantsGaugeLeavesCompletedBoards(t *testing.T) {
	for _, dataDir := range []string{"history", ""} {
		t.Run("data-dir="+dataDir, func(t *testing.T) {
			cfg := testConfig(t)
			if dataDir == "" {
				cfg.DataDir = ""
			}
			addr, cancel, done := start(t, cfg)
			defer func() { cancel(); <-done }()
			base := "http://" + addr
			for _, id := range []string{"done", "live"} {
				if st := jsonCall(t, "POST", base+"/v1/leaderboards", `{"leaderboard_id":"`+id+`","name":"x"}`, nil); st != 201 {
					t.Fatalf("create %s: %d", id, st)
				}
			}
			for _, s := range []struct{ board, pid string }{{"done", "a"}, {"done", "b"}, {"live", "c"}} {
				if st := jsonCall(t, "POST", base+"/v1/leaderboards/"+s.board+"/scores", `{"participant_id":"`+s.pid+`","score":1}`, nil); st != 200 {
					t.Fatalf("submit: %d", st)
				}
			}
			if got := metricValue(t, base, "leaderboard_participants"); got != 3 {
				t.Fatalf("leaderboard_participants before the completion: %v, want 3", got)
			}
			if st := jsonCall(t, "POST", base+"/v1/leaderboards/done/finalize", "", nil); st != 200 {
				t.Fatalf("finalize: %d", st)
			}
			if got := metricValue(t, base, "leaderboard_participants"); got != 1 {
				t.Fatalf("leaderboard_participants after one board completed: %v, want 1 (the live board's)", got)
			}
		})
	}
}
