package api

import (
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/lbhq/leaderboard/internal/auth"
	"github.com/lbhq/leaderboard/internal/board"
)

// TestAllowed: the route-level rule of every access level for every role,
// including self-or-admin, which the profile route (PUT
// /v1/participants/{pid}) will use.
func TestAllowed(t *testing.T) {
	r := httptest.NewRequest("PUT", "/v1/participants/p1", nil)
	r.SetPathValue("pid", "p1")
	roles := map[string]auth.Claims{
		"participant p1": {Role: auth.Participant, Subject: "p1"},
		"participant p2": {Role: auth.Participant, Subject: "p2"},
		"server":         {Role: auth.Server, Subject: "gs"},
		"admin":          {Role: auth.Admin},
	}
	want := map[access][]string{ // the roles allowed
		accessRead:        {"participant p1", "participant p2", "server", "admin"},
		accessUpgrade:     {"participant p1", "participant p2", "server", "admin"},
		accessLongPoll:    {"participant p1", "participant p2", "server", "admin"},
		accessSubmit:      {"participant p1", "participant p2", "server", "admin"}, // ids checked by the handler
		accessAdmin:       {"admin"},
		accessSelfOrAdmin: {"participant p1", "admin"},
	}
	for acc, ok := range want {
		for name, c := range roles {
			allowedRole := false
			for _, o := range ok {
				allowedRole = allowedRole || o == name
			}
			err := allowed(acc, c, r)
			var be *board.Error
			switch {
			case allowedRole && err != nil:
				t.Errorf("%s, %s: refused: %v", acc, name, err)
			case !allowedRole && (!errors.As(err, &be) || be.Code != codePermissionDenied):
				t.Errorf("%s, %s: %v, want permission_denied", acc, name, err)
			}
		}
	}
	if ownScore("p1", "p2") == nil || ownScore("p1", "p1") != nil || ownScore("", "p2") != nil {
		t.Error("ownScore")
	}
}
