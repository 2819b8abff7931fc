package shim

import (
	"strings"
	"testing"
)

func TestRedactEnv(t *testing.T) {
	info := `{"pid":42,"config":{"envs":[{"key":"DB_PASSWORD","value":"hunter2"},{"key":"MODE","value":"prod"}]},` +
		`"runtimeSpec":{"process":{"env":["PATH=/bin","TOKEN=abc=def"],"args":["sh"]}},"nested":[{"env":["K=v"]}]}`
	got := redactEnv(info)
	for _, secret := range []string{"hunter2", "prod", "/bin", "abc", "def", `"K=v"`} {
		if strings.Contains(got, secret) {
			t.Errorf("%q is still in %s", secret, got)
		}
	}
	for _, kept := range []string{`"pid":42`, "DB_PASSWORD", "MODE", `"PATH=<redacted>"`, `"TOKEN=<redacted>"`, `"K=<redacted>"`, `"args":["sh"]`} {
		if !strings.Contains(got, kept) {
			t.Errorf("%q is missing from %s", kept, got)
		}
	}
	if got := redactEnv(`{"env": ["A=b"`); got != "" {
		t.Errorf("output that is not JSON is kept: %q", got)
	}
}
