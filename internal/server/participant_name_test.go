package server

import "testing"

// TestParticipantReadShowsItsOwnDisplayName: docs/API.md, "display_name in
// entries: present only when the participant has a profile; a profile PUT
// shows in every read at once". GET .../participants/{pid} named its
// neighbours but never the participant itself (the live "participant"
// subscription did), on a live board and on a completed one alike.
func TestParticipantReadShowsItsOwnDisplayName(t *testing.T) {
	addr, cancel, done := start(t, testConfig(t))
	defer func() { cancel(); <-done }()
	base := "http://" + addr + "/v1"
	if st := jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"pn","name":"PN"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for _, p := range []string{"a", "b"} {
		if st := jsonCall(t, "POST", base+"/leaderboards/pn/scores", `{"participant_id":"`+p+`","score":10}`, nil); st != 200 {
			t.Fatalf("submit: %d", st)
		}
	}
	if st := jsonCall(t, "PUT", base+"/participants/a", `{"display_name":"Ay"}`, nil); st != 200 {
		t.Fatalf("put profile of a: %d", st)
	}
	if st := jsonCall(t, "PUT", base+"/participants/b", `{"display_name":"Bee \"B\" \u2028"}`, nil); st != 200 {
		t.Fatalf("put profile of b: %d", st)
	}
	type standing struct {
		ParticipantID string `json:"participant_id"`
		DisplayName   string `json:"display_name"`
		Neighbors     []struct {
			ParticipantID string `json:"participant_id"`
			DisplayName   string `json:"display_name"`
		} `json:"neighbors"`
	}
	check := func(when string) {
		t.Helper()
		var v standing
		if st := jsonCall(t, "GET", base+"/leaderboards/pn/participants/b?neighbors=1", "", &v); st != 200 {
			t.Fatalf("%s: participant read: %d", when, st)
		}
		if v.DisplayName != "Bee \"B\" \u2028" {
			t.Errorf("%s: b's own display_name %q, want %q", when, v.DisplayName, "Bee \"B\" \u2028")
		}
		if len(v.Neighbors) != 1 || v.Neighbors[0].DisplayName != "Ay" {
			t.Errorf("%s: neighbours %+v, want a named Ay", when, v.Neighbors)
		}
	}
	check("live board")
	if st := jsonCall(t, "POST", base+"/leaderboards/pn/finalize", "", nil); st != 200 {
		t.Fatalf("finalize: %d", st)
	}
	check("completed board")
}
