package client

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// hostileWatcher is a watcher with no connection, for feeding it messages.
func hostileWatcher(kind string) (*Watcher, *session) {
	w := &Watcher{sub: subParams{kind: kind}, changes: make(chan struct{}, 1), gen: make(chan struct{})}
	return w, &session{}
}

// A window's size comes from the server. One that is absurdly large (a broken
// or hostile server, or a proxy that mangled the frame) must not make State
// allocate or walk that many ranks: it used to size a slice by it (a panic at
// 1<<50) and loop over every rank of the window (a hang at 1<<40).
func TestStateWithAHugeWindowSizeFromTheServer(t *testing.T) {
	for _, size := range []int64{1 << 40, 1 << 50, 1<<63 - 1} {
		w, s := hostileWatcher(KindTop)
		off := int64(0)
		m := liveMsg{Type: "snapshot", Version: 3, Offset: &off, Size: &size,
			Entries: []Entry{{Rank: 2, ParticipantID: "b"}, {Rank: 1, ParticipantID: "a"}}}
		if _, err := w.apply(s, &m); err != nil {
			t.Fatal(err)
		}
		done := make(chan State, 1)
		go func() { done <- w.State() }()
		select {
		case st := <-done:
			if len(st.Entries) != 2 || st.Entries[0].ParticipantID != "a" || st.Entries[1].ParticipantID != "b" {
				t.Errorf("size %d: entries %+v, want a then b", size, st.Entries)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("size %d: State did not return", size)
		}
	}
}

// FuzzWatcherMessages feeds the watcher any sequence of server messages (one
// JSON object per line) and checks that nothing panics and that the state it
// shows is a window: entries in strictly increasing rank, all inside
// (offset, offset+size].
func FuzzWatcherMessages(f *testing.F) {
	f.Add([]byte(`{"type":"snapshot","version":1,"offset":4,"size":3,"entries":[{"rank":5,"participant_id":"a","score":50}]}
{"type":"update","version":2,"prev_version":1,"offset":5,"size":3,"changes":[{"rank":8,"participant_id":"c","score":1}]}`))
	f.Add([]byte(`{"type":"snapshot","version":1,"offset":-3,"size":9223372036854775807,"entries":[{"rank":-1},{"rank":9223372036854775807}]}`))
	f.Add([]byte(`{"type":"update","version":2,"prev_version":0}
{"type":"resync"}
{"type":"status","status":"paused","version":9}
{"type":"error","code":"leaderboard_not_found"}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		kind := KindTop
		if len(data) > 0 && data[0]&1 == 1 {
			kind = KindAround
		}
		w, s := hostileWatcher(kind)
		for _, line := range bytes.Split(data, []byte("\n")) {
			var m liveMsg
			if json.Unmarshal(line, &m) != nil {
				continue
			}
			if act, _ := w.apply(s, &m); act == actResubscribe || act == actReconnect {
				s.awaiting = true
			}
			st := w.State()
			for i, e := range st.Entries {
				if e.Rank <= st.Offset || e.Rank-st.Offset > st.Size {
					t.Fatalf("entry at rank %d outside the window (offset %d, size %d)", e.Rank, st.Offset, st.Size)
				}
				if i > 0 && e.Rank <= st.Entries[i-1].Rank {
					t.Fatalf("entries out of order: rank %d after %d", e.Rank, st.Entries[i-1].Rank)
				}
			}
		}
	})
}
