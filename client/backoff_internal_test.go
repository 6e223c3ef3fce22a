package client

import (
	"testing"
	"time"
)

func TestBackoffDelayIsFullJitterUnderTheCap(t *testing.T) {
	base, cap := 100*time.Millisecond, 10*time.Second
	for attempt := 0; attempt < 80; attempt++ {
		limit := min(base<<min(attempt, 20), cap)
		var longest time.Duration
		for range 200 {
			d := backoffDelay(attempt, base, cap)
			if d < 0 || d >= limit {
				t.Fatalf("attempt %d: delay %v outside [0, %v)", attempt, d, limit)
			}
			longest = max(longest, d)
		}
		if longest < limit/4 { // 200 uniform draws all under a quarter: p = 4^-200
			t.Fatalf("attempt %d: delays not spread over [0, %v): longest %v", attempt, limit, longest)
		}
	}
}

// The rules of docs/LIVE.md "Keeping a local copy" on the messages of its
// examples, for a window that moves (around).
func TestApplyFollowsLiveMD(t *testing.T) {
	w := &Watcher{sub: subParams{kind: KindAround}, changes: make(chan struct{}, 1), gen: make(chan struct{})}
	s := &session{id: "c", epoch: "9f1c"}
	u64 := func(v uint64) *uint64 { return &v }
	i64 := func(v int64) *int64 { return &v }
	e := func(rank int64, pid string, score uint64) Entry {
		return Entry{Rank: rank, ParticipantID: pid, Score: score, AchievedAt: 1}
	}
	steps := []struct {
		m    liveMsg
		act  action
		want []Entry
		ver  uint64
	}{
		{liveMsg{Type: "snapshot", ID: "c", Version: 1042, Offset: i64(4), Size: i64(3), Entries: []Entry{e(5, "a", 50), e(6, "me", 40), e(7, "b", 30)}},
			actNone, []Entry{e(5, "a", 50), e(6, "me", 40), e(7, "b", 30)}, 1042},
		{liveMsg{Type: "update", ID: "other", PrevVersion: u64(1), Version: 2}, // another subscription's
			actNone, []Entry{e(5, "a", 50), e(6, "me", 40), e(7, "b", 30)}, 1042},
		// "me" climbs to rank 5: the window moves up one rank.
		{liveMsg{Type: "update", ID: "c", PrevVersion: u64(1042), Version: 1049, Offset: i64(3), Size: i64(3), Changes: []Entry{e(4, "x", 60), e(5, "me", 55), e(6, "a", 50)}},
			actNone, []Entry{e(4, "x", 60), e(5, "me", 55), e(6, "a", 50)}, 1049},
		// A broken chain is not applied and asks for a resubscription...
		{liveMsg{Type: "update", ID: "c", PrevVersion: u64(1050), Version: 1051, Offset: i64(3), Size: i64(3), Changes: []Entry{e(4, "y", 70)}},
			actResubscribe, []Entry{e(4, "x", 60), e(5, "me", 55), e(6, "a", 50)}, 1049},
		// ...after which updates in flight are dropped until the snapshot.
		{liveMsg{Type: "update", ID: "c", PrevVersion: u64(1051), Version: 1052, Offset: i64(3), Size: i64(3), Changes: []Entry{e(4, "z", 70)}},
			actNone, []Entry{e(4, "x", 60), e(5, "me", 55), e(6, "a", 50)}, 1049},
		{liveMsg{Type: "subscribed", ID: "c", Version: 1053, Epoch: "9f1c"}, actNone, []Entry{e(4, "x", 60), e(5, "me", 55), e(6, "a", 50)}, 1049},
		// At the top of the board the window is clipped to rank 1 .. 3.
		{liveMsg{Type: "snapshot", ID: "c", Version: 1053, Offset: i64(0), Size: i64(2), Entries: []Entry{e(1, "me", 99), e(2, "x", 60)}},
			actNone, []Entry{e(1, "me", 99), e(2, "x", 60)}, 1053},
		{liveMsg{Type: "update", ID: "c", PrevVersion: u64(1053), Version: 1054, Offset: i64(0), Size: i64(1)},
			actNone, []Entry{e(1, "me", 99)}, 1054},
		{liveMsg{Type: "error", ID: "c", Code: CodeLeaderboardNotFound}, actFatal, []Entry{e(1, "me", 99)}, 1054},
	}
	for i, step := range steps {
		act, _ := w.apply(s, &step.m)
		st := w.State()
		if act != step.act || st.Version != step.ver || st.Epoch != "9f1c" || len(st.Entries) != len(step.want) {
			t.Fatalf("step %d: action %v, state %+v; want action %v, version %d, entries %v", i, act, st, step.act, step.ver, step.want)
		}
		for j := range st.Entries {
			if st.Entries[j] != step.want[j] {
				t.Fatalf("step %d: entries %v, want %v", i, st.Entries, step.want)
			}
		}
	}
}
