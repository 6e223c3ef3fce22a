package server

import (
	"strings"
	"testing"
)

// TestLeaderboardNameCountsCharacters: docs/API.md, "name | required, 1-200
// characters". A name of 150 two-byte characters is 150 characters.
func TestLeaderboardNameCountsCharacters(t *testing.T) {
	addr, cancel, done := start(t, testConfig(t))
	defer func() { cancel(); <-done }()
	base := "http://" + addr + "/v1"
	name := strings.Repeat("é", 150)
	if st := jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"n1","name":"`+name+`"}`, nil); st != 201 {
		t.Errorf("create with a 150-character name: %d, want 201", st)
	}
	jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"n2","name":"x"}`, nil)
	if st := jsonCall(t, "PATCH", base+"/leaderboards/n2", `{"name":"`+name+`"}`, nil); st != 200 {
		t.Errorf("rename to a 150-character name: %d, want 200", st)
	}
	if st := jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"n3","name":"`+strings.Repeat("é", 201)+`"}`, nil); st != 400 {
		t.Errorf("create with a 201-character name: %d, want 400", st)
	}
}
