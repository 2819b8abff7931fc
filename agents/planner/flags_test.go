package planner

import (
	"fmt"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestFlagsTakeNoKey(t *testing.T) {
	var o Options
	fs := pflag.NewFlagSet("tend", pflag.ContinueOnError)
	o.BindFlags(fs)
	fs.VisitAll(func(f *pflag.Flag) {
		if strings.Contains(f.Name, "key") && f.Name != "llm-api-key-file" {
			t.Errorf("flag --%s takes a key on the command line", f.Name)
		}
	})
	if err := fs.Parse([]string{"--llm-provider", "anthropic", "--llm-model", "m", "--llm-max-steps", "3"}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(EnvKey, "secret-key")
	if err := o.Model.Resolve(); err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, o); strings.Contains(out, "secret-key") {
			t.Errorf("%s shows the key: %s", format, out)
		}
	}
	if o.Model.key != "secret-key" || o.Limits.MaxSteps != 3 {
		t.Errorf("options %+v; String %q", o, o.Model.String())
	}
}
