package server

import "testing"

// TestFinalRankingsAtOnceOnOtherProcess: after A finalized, B answers
// rankings, submissions and a retried finalize as for the completed board at
// once (TestFinalizeSeenAtOnceByOtherProcess); GET .../final-rankings on B
// must not answer 404 "has not completed" for a board whose final ranking is
// committed and which B's own /rankings already serves from history.
func TestFinalRankingsAtOnceOnOtherProcess(t *testing.T) {
	a, b := twoAPIProcesses(t)
	if st := jsonCall(t, "POST", a+"/v1/leaderboards", `{"leaderboard_id":"fr","name":"FR"}`, nil); st != 201 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "POST", b+"/v1/leaderboards/fr/scores", `{"participant_id":"p","score":3}`, nil); st != 200 {
		t.Fatal(st)
	}
	if st := jsonCall(t, "POST", a+"/v1/leaderboards/fr/finalize", "", nil); st != 200 {
		t.Fatal(st)
	}
	if st, code := errorCode(t, "GET", b+"/v1/leaderboards/fr/final-rankings", ""); st != 200 {
		t.Errorf("final-rankings on B right after the finalize on A: %d %s, want 200", st, code)
	}
}
