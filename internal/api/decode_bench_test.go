package api

import "testing"

func BenchmarkDecodeScore(b *testing.B) {
	body := []byte(`{"participant_id":"p000000000123456","score":123456789,"timestamp":1732600000000}`)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := decodeScore(body); err != nil {
			b.Fatal(err)
		}
	}
}
