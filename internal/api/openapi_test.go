package api_test

import (
	"os"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/lbhq/leaderboard/internal/api"
	"github.com/lbhq/leaderboard/internal/board"
	"github.com/lbhq/leaderboard/internal/store/memory"
)

// TestOpenAPIMatchesRouter fails when a route is served but not in
// docs/openapi.yaml, or described there but not served.
func TestOpenAPIMatchesRouter(t *testing.T) {
	raw, err := os.ReadFile("../../docs/openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		OpenAPI string                          `yaml:"openapi"`
		Paths   map[string]map[string]yaml.Node `yaml:"paths"`
	}
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("docs/openapi.yaml: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Fatalf("openapi version %q", doc.OpenAPI)
	}
	var spec []string
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				spec = append(spec, strings.ToUpper(method)+" "+path)
			}
		}
	}
	a := api.New(board.New(memory.New(memory.Options{}), board.Options{}), api.Options{})
	served := a.Routes()
	slices.Sort(spec)
	slices.Sort(served)
	for _, r := range served {
		if !slices.Contains(spec, r) {
			t.Errorf("served but not in docs/openapi.yaml: %s", r)
		}
	}
	for _, r := range spec {
		if !slices.Contains(served, r) {
			t.Errorf("in docs/openapi.yaml but not served: %s", r)
		}
	}
}
