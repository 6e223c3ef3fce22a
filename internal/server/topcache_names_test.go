package server

import "testing"

// TestTopOfRankingsShowsANewDisplayName: docs/API.md, "display_name in
// entries: present only when the participant has a profile". Once PUT
// /v1/participants/{pid} has stored a profile, every rankings read shows the
// name; the top-N cache (offset 0, limit <= 100) kept serving the body
// encoded before the PUT, because a rename does not change the version.
func TestTopOfRankingsShowsANewDisplayName(t *testing.T) {
	addr, cancel, done := start(t, testConfig(t))
	defer func() { cancel(); <-done }()
	base := "http://" + addr + "/v1"
	if st := jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"dn","name":"DN"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	for _, p := range []string{"a", "b"} {
		if st := jsonCall(t, "POST", base+"/leaderboards/dn/scores", `{"participant_id":"`+p+`","score":10}`, nil); st != 200 {
			t.Fatalf("submit: %d", st)
		}
	}
	var before rankingsBody
	jsonCall(t, "GET", base+"/leaderboards/dn/rankings?limit=10", "", &before) // fills the top-N cache
	if st := jsonCall(t, "PUT", base+"/participants/b", `{"display_name":"Bee"}`, nil); st != 200 {
		t.Fatalf("put profile: %d", st)
	}
	for _, q := range []string{"limit=10", "limit=10&offset=0", "limit=100", "limit=10&offset=1"} {
		var after rankingsBody
		jsonCall(t, "GET", base+"/leaderboards/dn/rankings?"+q, "", &after)
		var got string
		for _, e := range after.Entries {
			if e.ParticipantID == "b" {
				got = e.DisplayName
			}
		}
		if got != "Bee" {
			t.Errorf("rankings?%s after the PUT: b's display_name %q, want \"Bee\"", q, got)
		}
	}
}
