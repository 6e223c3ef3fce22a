package client

import (
	"testing"
	"time"
)

// A watcher honours a Retry-After of at most maxRetryAfter: one of decades
// (a broken proxy, a hostile server) left it silent that long.
func TestWatcherRetryAfterIsBounded(t *testing.T) {
	for _, v := range []string{"9223372036", "31536000", "Wed, 21 Oct 2415 07:28:00 GMT"} {
		res, ok := rateLimited(&APIError{Status: 429, Code: CodeRateLimited, RetryAfter: parseRetryAfter(v)})
		if !ok || res.retryAfter != maxRetryAfter {
			t.Errorf("Retry-After %s: wait %v (limited %v), want %v", v, res.retryAfter, ok, maxRetryAfter)
		}
	}
	if res, _ := rateLimited(&APIError{Status: 429, RetryAfter: 3 * time.Second}); res.retryAfter != 3*time.Second {
		t.Errorf("Retry-After 3: wait %v", res.retryAfter)
	}
}

// A window never holds more than maxWindowEntries entries, whatever size the
// server claims. With an absurd size every update's changes stayed in the
// window: the entries held grew with each update, without bound (and each
// update walked them all). An update that would overfill the window breaks
// the chain and leaves the state as it was.
func TestWindowEntriesStayBoundedUnderAnAbsurdSize(t *testing.T) {
	w, s := hostileWatcher(KindTop)
	off, size := int64(0), int64(1<<62)
	snap := liveMsg{Type: "snapshot", Version: 1, Offset: &off, Size: &size, Entries: []Entry{{Rank: 1, ParticipantID: "a"}}}
	if act, _ := w.apply(s, &snap); act != actNone {
		t.Fatalf("snapshot: action %v", act)
	}
	rank := int64(1)
	resubscribed := false
	for v := uint64(1); v <= 50 && !resubscribed; v++ {
		prev := v
		u := liveMsg{Type: "update", PrevVersion: &prev, Version: v + 1, Offset: &off, Size: &size}
		for range 100 {
			rank++
			u.Changes = append(u.Changes, Entry{Rank: rank, ParticipantID: "p"})
		}
		act, _ := w.apply(s, &u)
		resubscribed = act == actResubscribe
		if n := len(w.st.entries); n > maxWindowEntries {
			t.Fatalf("after version %d: %d entries held, more than a window holds (%d)", v+1, n, maxWindowEntries)
		}
	}
	if !resubscribed {
		t.Fatal("an update overfilling the window was applied")
	}
	st := w.State()
	if !st.Resyncing || len(st.Entries) > maxWindowEntries || st.Version != uint64(len(st.Entries)-1)/100+1 { // 100 entries a version
		t.Fatalf("state after the refused update: resyncing %v, version %d, %d entries", st.Resyncing, st.Version, len(st.Entries))
	}

	// A snapshot with more entries in its window than a window holds is
	// not applied either.
	w, s = hostileWatcher(KindTop)
	big := liveMsg{Type: "snapshot", Version: 1, Offset: &off, Size: &size}
	for r := int64(1); r <= maxWindowEntries+1; r++ {
		big.Entries = append(big.Entries, Entry{Rank: r})
	}
	if act, _ := w.apply(s, &big); act != actResubscribe || w.State().Ready || len(w.st.entries) != 0 {
		t.Fatalf("snapshot of %d entries: action %v, ready %v, %d entries held", len(big.Entries), act, w.State().Ready, len(w.st.entries))
	}
}
