package server

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/lbhq/leaderboard/internal/redistest"
)

// splitConfig is a server of a split deployment: Redis, Kafka (kfake), one
// shared history directory, and the given roles.
func splitConfig(t *testing.T, redisURL, prefix string, brokers []string, dataDir, roles string) Config {
	c := testConfig(t)
	c.SubmitRate = 0
	c.RedisURL, c.RedisPrefix = redisURL, prefix
	c.KafkaBrokers, c.KafkaTopicPrefix, c.KafkaPartitions = brokers[0], prefix, 4
	c.DataDir, c.Roles = dataDir, roles
	c.RegistryTTL = 10 * time.Second
	c.SweepInterval = 100 * time.Millisecond
	return c
}

// TestSplitAPIAndHistory: an API process relays its Redis outboxes into
// Kafka; a history process (another server, sharing only Redis, Kafka and the
// history store) writes them into the audit log, which then holds every
// accepted change with its version, in order.
func TestSplitAPIAndHistory(t *testing.T) {
	url := redisURLForTest(t)
	prefix := redistest.Prefix(t, "lbsplit")
	kc, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	dir := t.TempDir()
	apiAddr, stopAPI, apiDone := start(t, splitConfig(t, url, prefix, kc.ListenAddrs(), dir, "api"))
	defer func() { stopAPI(); <-apiDone }()
	histAddr, stopHist, histDone := start(t, splitConfig(t, url, prefix, kc.ListenAddrs(), dir, "history"))
	defer func() { stopHist(); <-histDone }()
	api, hist := "http://"+apiAddr, "http://"+histAddr

	if st := jsonCall(t, "POST", api+"/v1/leaderboards", `{"leaderboard_id":"x","name":"X"}`, nil); st != 201 {
		t.Fatalf("create: %d", st)
	}
	var want []uint64 // versions of p1's accepted changes
	for i := 0; i < 200; i++ {
		pid := fmt.Sprintf("p%d", i%7)
		var res struct {
			Version uint64
			Updated bool
		}
		if st := jsonCall(t, "POST", api+"/v1/leaderboards/x/scores", fmt.Sprintf(`{"participant_id":%q,"score":%d}`, pid, i), &res); st != 200 {
			t.Fatalf("submit: %d", st)
		}
		if pid == "p1" && res.Updated {
			want = append(want, res.Version)
		}
	}
	slices.Reverse(want) // the audit route lists newest first
	var got []uint64
	deadline := time.Now().Add(20 * time.Second)
	for {
		var body struct {
			Events []struct {
				Version uint64 `json:"version"`
			} `json:"events"`
		}
		st := jsonCall(t, "GET", hist+"/v1/leaderboards/x/participants/p1/events?limit=1000", "", &body)
		got = got[:0]
		for _, e := range body.Events {
			got = append(got, e.Version)
		}
		if st == 200 && slices.Equal(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("audit log on the history process: status %d, versions %v, want %v", st, got, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
