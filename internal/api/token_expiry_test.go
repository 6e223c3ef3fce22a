package api_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/auth"
)

// slowBody stands for a client that sends its headers, then drips the body:
// by the time the body has been read, the clock has moved on.
type slowBody struct {
	r    io.Reader
	once sync.Once
	tick func()
}

func (s *slowBody) Read(p []byte) (int, error) {
	s.once.Do(s.tick)
	return s.r.Read(p)
}

// TestParticipantTokenExpiringDuringBodyIsNotAServerToken: a participant
// token valid when the request arrives but expired by the time its body has
// been read must not let the participant submit for someone else.
func TestParticipantTokenExpiringDuringBodyIsNotAServerToken(t *testing.T) {
	now := time.Now()
	var mu sync.Mutex
	clk := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v, _ := auth.NewVerifier(testSecret, clk, 0)
	g := newGuarded(t, api.AccessOptions{Verifier: v}, nil)
	admin := "Bearer " + mint(t, auth.Admin, "")
	if w := g.do("10.0.0.1", "POST", "/v1/leaderboards", `{"leaderboard_id":"b","name":"b"}`, "Authorization", admin); w.Code != 201 {
		t.Fatalf("create: %d %s", w.Code, w.Body)
	}
	tok, err := auth.Mint(testSecret, auth.Participant, "p1", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, body string }{
		{"/v1/leaderboards/b/scores", `{"participant_id":"victim","score":999}`},
		{"/v1/leaderboards/b/scores:batch", `{"scores":[{"participant_id":"victim2","score":999}]}`},
	} {
		mu.Lock()
		now = time.Now()
		mu.Unlock()
		body := &slowBody{r: strings.NewReader(tc.body), tick: func() {
			mu.Lock()
			now = now.Add(2 * time.Minute) // the upload took two minutes; the token expired meanwhile
			mu.Unlock()
		}}
		r := httptest.NewRequest("POST", tc.path, body)
		r.RemoteAddr = "10.0.0.9:40000"
		r.Header.Set("Authorization", "Bearer "+tok)
		w := httptest.NewRecorder()
		g.api.ServeHTTP(w, r)
		if w.Code < 400 {
			t.Errorf("%s: participant p1's token, expired while the body was read, submitted for another participant: %d %s", tc.path, w.Code, w.Body)
		}
	}
}
