package server

import "testing"

// TestFinalizedAtIsOneValue: docs/API.md, "Times in leaderboard metadata |
// RFC 3339 in UTC with milliseconds". final-rankings answered finalized_at with
// nanoseconds until a restart (then milliseconds, as stored), and results
// always with milliseconds: one finalization, two different strings.
func TestFinalizedAtIsOneValue(t *testing.T) {
	addr, cancel, done := start(t, testConfig(t))
	defer func() { cancel(); <-done }()
	base := "http://" + addr + "/v1"
	jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"f","name":"F"}`, nil)
	jsonCall(t, "POST", base+"/leaderboards/f/scores", `{"participant_id":"p","score":1}`, nil)
	if st := jsonCall(t, "POST", base+"/leaderboards/f/finalize", "", nil); st != 200 {
		t.Fatalf("finalize: %d", st)
	}
	var fr struct {
		FinalizedAt string `json:"finalized_at"`
	}
	var rs struct {
		Results []struct {
			FinalizedAt string `json:"finalized_at"`
		} `json:"results"`
	}
	jsonCall(t, "GET", base+"/leaderboards/f/final-rankings", "", &fr)
	jsonCall(t, "GET", base+"/participants/p/results", "", &rs)
	if len(rs.Results) != 1 || rs.Results[0].FinalizedAt != fr.FinalizedAt {
		t.Errorf("final-rankings finalized_at %q, results %+v: want one value", fr.FinalizedAt, rs.Results)
	}
	// RFC 3339 in UTC with milliseconds: 2026-11-27T12:00:00.000Z
	if len(fr.FinalizedAt) != len("2026-11-27T12:00:00.000Z") {
		t.Errorf("finalized_at %q: want milliseconds", fr.FinalizedAt)
	}
}
