package board

import "testing"

// The sweep reads recent profiles again and again (refreshProfiles): setting
// a name a participant already has must not make every cached ranking body
// stale, while a real change must.
func TestSettingTheSameDisplayNameKeepsTheGeneration(t *testing.T) {
	var s Service
	s.setName("p1", "Ada")
	g := s.NamesGeneration()
	s.setName("p1", "Ada")
	if s.NamesGeneration() != g || s.nameCount.Load() != 1 {
		t.Fatalf("same name: generation %d -> %d, count %d", g, s.NamesGeneration(), s.nameCount.Load())
	}
	s.setName("p1", "Ada L.")
	if s.NamesGeneration() == g || s.name("p1") != "Ada L." || s.nameCount.Load() != 1 {
		t.Fatalf("rename: generation %d -> %d, name %q, count %d", g, s.NamesGeneration(), s.name("p1"), s.nameCount.Load())
	}
}
