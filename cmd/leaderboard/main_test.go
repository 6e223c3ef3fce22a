package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestCommands(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "leaderboard ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(nil, &out, &errb); code != 2 {
		t.Fatalf("no command: %d", code)
	}
	errb.Reset()
	if code := run([]string{"frobnicate"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "unknown command") {
		t.Fatalf("unknown command: %d %q", code, errb.String())
	}
	if code := run([]string{"serve", "--no-such-flag"}, &out, &errb); code != 2 {
		t.Fatalf("bad serve flag: %d", code)
	}
	t.Setenv("LEADERBOARD_SUBMIT_RATE", "lots")
	errb.Reset()
	if code := run([]string{"serve"}, &out, &errb); code != 2 || !strings.Contains(errb.String(), "LEADERBOARD_SUBMIT_RATE") {
		t.Fatalf("bad env value: %d %q", code, errb.String())
	}
	if code := run([]string{"bench", "nomode"}, &out, &errb); code != 2 {
		t.Fatalf("bad bench mode: %d", code)
	}
}
