package flagenv

import (
	"flag"
	"io"
	"testing"
	"time"
)

func TestEnvFillsOnlyFlagsNotGiven(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	addr := fs.String("addr", "127.0.0.1:8080", "")
	rate := fs.Float64("submit-rate", 10, "")
	timeout := fs.Duration("read-timeout", time.Second, "")
	env := map[string]string{
		"LB_ADDR":         "0.0.0.0:1",
		"LB_SUBMIT_RATE":  "2.5",
		"LB_READ_TIMEOUT": "3s",
	}
	lookup := func(k string) (string, bool) { v, ok := env[k]; return v, ok }
	if err := Parse(fs, "LB", []string{"--addr", "127.0.0.1:9"}, lookup); err != nil {
		t.Fatal(err)
	}
	if *addr != "127.0.0.1:9" || *rate != 2.5 || *timeout != 3*time.Second {
		t.Fatalf("addr=%s rate=%v timeout=%v", *addr, *rate, *timeout)
	}
}

func TestBadEnvValueIsAnError(t *testing.T) {
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("limit", 1, "")
	lookup := func(k string) (string, bool) { return "lots", k == "LB_LIMIT" }
	if err := Parse(fs, "LB", nil, lookup); err == nil {
		t.Fatal("a non-integer LB_LIMIT was accepted")
	}
}
