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

// TestTextNoDatabaseCanStoreIsInvalid: a leaderboard name holding U+0000
// (valid JSON as "\u0000") and a config or profile metadata that is not UTF-8
// (encoding/json passes raw bytes through a json.RawMessage) cannot be stored
// by PostgreSQL, which answered 503 "unavailable" with a Retry-After: a retry
// that can never succeed. They are the client's mistake: 400, whatever the
// history store.
func TestTextNoDatabaseCanStoreIsInvalid(t *testing.T) {
	addr, cancel, done := start(t, testConfig(t))
	defer func() { cancel(); <-done }()
	base := "http://" + addr + "/v1"
	jsonCall(t, "POST", base+"/leaderboards", `{"leaderboard_id":"ok","name":"x"}`, nil)
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/leaderboards", `{"leaderboard_id":"n1","name":"a\u0000b"}`},
		{"PATCH", "/leaderboards/ok", `{"name":"a\u0000b"}`},
		{"POST", "/leaderboards", "{\"leaderboard_id\":\"n2\",\"name\":\"x\",\"config\":{\"k\":\"\xff\"}}"},
		{"PUT", "/participants/p1", "{\"display_name\":\"x\",\"metadata\":{\"k\":\"\xfe\"}}"},
	} {
		if st, code := errorCode(t, c.method, base+c.path, c.body); st != 400 || code != "invalid_argument" {
			t.Errorf("%s %s %q: %d %s, want 400 invalid_argument", c.method, c.path, c.body, st, code)
		}
	}
	var lb struct{ Name string }
	if jsonCall(t, "GET", base+"/leaderboards/ok", "", &lb); lb.Name != "x" {
		t.Errorf("name after the refused rename: %q", lb.Name)
	}
}
