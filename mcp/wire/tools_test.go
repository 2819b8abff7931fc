package wire

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"
)

func validRollback() ProposeRollbackArgs {
	return ProposeRollbackArgs{
		Namespace:    "team",
		Name:         "web",
		ToRevision:   1,
		FromRevision: 2,
		Common: Common{
			Summary:     "1 of 1 pods of revision 2 are crash-looping; revision 1 was healthy",
			Rationale:   "Revision 2 started failing right after it rolled out.",
			Risk:        "Low",
			Telemetry:   []TelemetryRef{{Subject: "tend.telemetry.test.pod.team.web-2-a", Sequence: 3, ID: "uid/3"}},
			Fingerprint: "crashloop-rollback/team/web/revision-2",
			Agent:       "maintenance",
		},
	}
}

func TestProposeRollbackArgsValidate(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*ProposeRollbackArgs)
		// wantErr lists substrings of the error; none means valid.
		wantErr []string
	}{
		{name: "valid", mutate: func(*ProposeRollbackArgs) {}},
		{name: "minimal", mutate: func(a *ProposeRollbackArgs) {
			*a = ProposeRollbackArgs{Namespace: "team", Name: "web", Common: Common{Summary: "crash-looping"}}
		}},
		{name: "dotted name", mutate: func(a *ProposeRollbackArgs) { a.Name = "web.v2" }},
		{name: "summary at the limit", mutate: func(a *ProposeRollbackArgs) { a.Summary = strings.Repeat("s", maxSummary) }},
		{name: "telemetry refs at the limit", mutate: func(a *ProposeRollbackArgs) { a.Telemetry = refs(maxTelemetry) }},
		{name: "each risk", mutate: func(a *ProposeRollbackArgs) { a.Risk = "High" }},

		{name: "empty namespace", mutate: func(a *ProposeRollbackArgs) { a.Namespace = "" }, wantErr: []string{"namespace"}},
		{name: "path in namespace", mutate: func(a *ProposeRollbackArgs) { a.Namespace = "../x" }, wantErr: []string{`namespace "../x"`}},
		{name: "upper case namespace", mutate: func(a *ProposeRollbackArgs) { a.Namespace = "Team" }, wantErr: []string{"namespace"}},
		{name: "dotted namespace", mutate: func(a *ProposeRollbackArgs) { a.Namespace = "team.x" }, wantErr: []string{"namespace"}},
		{name: "long namespace", mutate: func(a *ProposeRollbackArgs) { a.Namespace = strings.Repeat("n", 64) }, wantErr: []string{"namespace"}},
		{name: "empty name", mutate: func(a *ProposeRollbackArgs) { a.Name = "" }, wantErr: []string{"name"}},
		{name: "slash in name", mutate: func(a *ProposeRollbackArgs) { a.Name = "web/../../secrets" }, wantErr: []string{"name"}},
		{name: "long name", mutate: func(a *ProposeRollbackArgs) { a.Name = strings.Repeat("n", 254) }, wantErr: []string{"name", "..."}},
		{name: "negative to revision", mutate: func(a *ProposeRollbackArgs) { a.ToRevision = -1 }, wantErr: []string{"revisions must not be negative"}},
		{name: "negative from revision", mutate: func(a *ProposeRollbackArgs) { a.FromRevision = -5 }, wantErr: []string{"revisions must not be negative"}},
		{name: "no summary", mutate: func(a *ProposeRollbackArgs) { a.Summary = "" }, wantErr: []string{"summary is required"}},
		{name: "blank summary", mutate: func(a *ProposeRollbackArgs) { a.Summary = " \n\t" }, wantErr: []string{"summary is required"}},
		{name: "oversized summary", mutate: func(a *ProposeRollbackArgs) { a.Summary = strings.Repeat("s", 5000) }, wantErr: []string{"summary is 5000 bytes; at most 4096"}},
		{name: "oversized rationale", mutate: func(a *ProposeRollbackArgs) { a.Rationale = strings.Repeat("r", maxRationale+1) }, wantErr: []string{"rationale is 4097 bytes"}},
		{name: "unknown risk", mutate: func(a *ProposeRollbackArgs) { a.Risk = "None" }, wantErr: []string{`risk "None": must be Low, Medium or High`}},
		{name: "lower case risk", mutate: func(a *ProposeRollbackArgs) { a.Risk = "low" }, wantErr: []string{"risk"}},
		{name: "too many telemetry refs", mutate: func(a *ProposeRollbackArgs) { a.Telemetry = refs(maxTelemetry + 1) }, wantErr: []string{"33 telemetry refs; at most 32"}},
		{name: "many bad telemetry refs", mutate: func(a *ProposeRollbackArgs) {
			a.Telemetry = make([]TelemetryRef, 100000)
		}, wantErr: []string{"100000 telemetry refs; at most 32"}},
		{name: "telemetry ref without subject", mutate: func(a *ProposeRollbackArgs) { a.Telemetry = []TelemetryRef{{ID: "x"}} }, wantErr: []string{"telemetry[0]"}},
		{name: "oversized telemetry subject", mutate: func(a *ProposeRollbackArgs) {
			a.Telemetry = []TelemetryRef{{Subject: strings.Repeat("s", 1025)}}
		}, wantErr: []string{"telemetry[0]"}},
		{name: "oversized telemetry id", mutate: func(a *ProposeRollbackArgs) {
			a.Telemetry = []TelemetryRef{{Subject: "s", ID: strings.Repeat("i", maxShort+1)}}
		}, wantErr: []string{"telemetry[0]"}},
		{name: "oversized fingerprint", mutate: func(a *ProposeRollbackArgs) { a.Fingerprint = strings.Repeat("f", 129) }, wantErr: []string{"fingerprint is at most 128 bytes"}},
		{name: "oversized agent", mutate: func(a *ProposeRollbackArgs) { a.Agent = strings.Repeat("a", maxShort+1) }, wantErr: []string{"agent at most 253"}},
		{name: "every problem is reported", mutate: func(a *ProposeRollbackArgs) {
			a.Namespace, a.ToRevision, a.Summary, a.Risk = "../x", -1, "", "Extreme"
		}, wantErr: []string{"namespace", "revisions", "summary is required", "risk"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := validRollback()
			tc.mutate(&a)
			_, err := Validate(&a)
			if len(tc.wantErr) == 0 {
				if err != nil {
					t.Fatalf("validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("validate() = %v, want an error wrapping ErrInvalidArgument", err)
			}
			for _, want := range tc.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("validate() = %q, want it to mention %q", err, want)
				}
			}
			// Untrusted text is clipped before it is echoed back.
			if len(err.Error()) > 2048 {
				t.Errorf("error is %d bytes long", len(err.Error()))
			}
		})
	}
}

func TestGetProposalArgsValidate(t *testing.T) {
	tests := []struct {
		args  GetProposalArgs
		valid bool
	}{
		{GetProposalArgs{Namespace: "team", Name: "rollback-web-x7k2p"}, true},
		{GetProposalArgs{Namespace: "", Name: "p"}, false},
		{GetProposalArgs{Namespace: "team", Name: ""}, false},
		{GetProposalArgs{Namespace: "../kube-system", Name: "p"}, false},
		{GetProposalArgs{Namespace: "team", Name: "a/b"}, false},
	}
	for _, tc := range tests {
		err := tc.args.Validate()
		if tc.valid && err != nil {
			t.Errorf("validate(%+v) = %v, want nil", tc.args, err)
		}
		if !tc.valid && !errors.Is(err, ErrInvalidArgument) {
			t.Errorf("validate(%+v) = %v, want ErrInvalidArgument", tc.args, err)
		}
	}
}

func refs(n int) []TelemetryRef {
	out := make([]TelemetryRef, n)
	for i := range out {
		out[i] = TelemetryRef{Subject: "tend.telemetry.test.pod.team.p", Sequence: uint64(i + 1)}
	}
	return out
}

// FuzzProposeRollbackArgs fuzzes the path untrusted tool arguments take:
// JSON decoding into ProposeRollbackArgs, then validate. It must never
// panic, its errors stay small, and whatever validate accepts must be
// within the limits the Proposal CRD and the Kubernetes API enforce. Seeds are in
// testdata/fuzz/FuzzProposeRollbackArgs.
func FuzzProposeRollbackArgs(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		var a ProposeRollbackArgs
		if err := json.Unmarshal(data, &a); err != nil {
			return
		}
		_, err := Validate(&a)
		if err != nil {
			if !errors.Is(err, ErrInvalidArgument) {
				t.Fatalf("validate() = %v, want an error wrapping ErrInvalidArgument", err)
			}
			// The error is echoed to the caller: its size is bounded,
			// whatever the size of the arguments.
			if len(err.Error()) > 8192 {
				t.Fatalf("error of %d bytes for %d bytes of arguments", len(err.Error()), len(data))
			}
			return
		}
		switch {
		case len(validation.IsDNS1123Label(a.Namespace)) > 0:
			t.Fatalf("accepted namespace %q", a.Namespace)
		case len(validation.IsDNS1123Subdomain(a.Name)) > 0:
			t.Fatalf("accepted name %q", a.Name)
		case a.ToRevision < 0 || a.FromRevision < 0:
			t.Fatalf("accepted revisions %d, %d", a.FromRevision, a.ToRevision)
		case strings.TrimSpace(a.Summary) == "" || len(a.Summary) > maxSummary:
			t.Fatalf("accepted a summary of %d bytes", len(a.Summary))
		case len(a.Rationale) > maxRationale:
			t.Fatalf("accepted a rationale of %d bytes", len(a.Rationale))
		case a.Risk != "" && a.Risk != "Low" && a.Risk != "Medium" && a.Risk != "High":
			t.Fatalf("accepted risk %q", a.Risk)
		case len(a.Telemetry) > maxTelemetry:
			t.Fatalf("accepted %d telemetry refs", len(a.Telemetry))
		case len(a.Fingerprint) > 128 || len(a.Agent) > maxShort:
			t.Fatalf("accepted fingerprint of %d bytes, agent of %d", len(a.Fingerprint), len(a.Agent))
		}
		for i, r := range a.Telemetry {
			if r.Subject == "" || len(r.Subject) > 1024 || len(r.ID) > maxShort {
				t.Fatalf("accepted telemetry[%d] %+v", i, r)
			}
		}
		// What validate accepts survives the round trip to the API server.
		out, err := json.Marshal(a)
		if err != nil {
			t.Fatalf("marshal accepted args: %v", err)
		}
		var back ProposeRollbackArgs
		if err := json.Unmarshal(out, &back); err != nil {
			t.Fatalf("unmarshal accepted args: %v", err)
		}
		if _, err := Validate(&back); err != nil {
			t.Fatalf("args valid once are invalid after a round trip: %v", err)
		}
	})
}

// TestPruneImagesArgsValidate: the target and the allow-list become the
// proposal's typed parameters; bad ones get clear errors.
func TestPruneImagesArgsValidate(t *testing.T) {
	pct := func(v int32) *int32 { return &v }
	bytes := func(v int64) *int64 { return &v }
	tests := []struct {
		name    string
		args    PruneImagesArgs
		wantErr []string
	}{
		{name: "percent", args: PruneImagesArgs{TargetUsedPercent: pct(70)}},
		{name: "bytes and an allow-list", args: PruneImagesArgs{TargetUsedBytes: bytes(5 << 30), Keep: []string{"registry.example.com/base/*", "sha256:0123"}}},
		{name: "no target", args: PruneImagesArgs{}, wantErr: []string{"exactly one of targetUsedPercent and targetUsedBytes"}},
		{name: "both targets", args: PruneImagesArgs{TargetUsedPercent: pct(70), TargetUsedBytes: bytes(1)}, wantErr: []string{"exactly one"}},
		{name: "percent out of range", args: PruneImagesArgs{TargetUsedPercent: pct(100)}, wantErr: []string{"targetUsedPercent 100: must be between 1 and 99"}},
		{name: "zero percent", args: PruneImagesArgs{TargetUsedPercent: pct(0)}, wantErr: []string{"between 1 and 99"}},
		{name: "negative bytes", args: PruneImagesArgs{TargetUsedBytes: bytes(-1)}, wantErr: []string{"targetUsedBytes -1: must be positive"}},
		{name: "empty keep", args: PruneImagesArgs{TargetUsedPercent: pct(70), Keep: []string{""}}, wantErr: []string{"keep[0]"}},
		{name: "space in keep", args: PruneImagesArgs{TargetUsedPercent: pct(70), Keep: []string{"ok", "a b", "c d"}}, wantErr: []string{`keep[1] "a b" (and 1 more)`}},
		{name: "too many keep", args: PruneImagesArgs{TargetUsedPercent: pct(70), Keep: make([]string, 65)}, wantErr: []string{"keep has 65 images; at most 64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := tc.args
			a.Node, a.Summary = "worker-1", "image filesystem at 93%"
			d, err := Validate(&a)
			if len(tc.wantErr) > 0 {
				if !errors.Is(err, ErrInvalidArgument) {
					t.Fatalf("validate() = %v, want an error wrapping ErrInvalidArgument", err)
				}
				for _, want := range tc.wantErr {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("validate() = %q, want it to mention %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatalf("validate() = %v", err)
			}
			p := d.Params.Prune
			if d.Target.Kind != "Node" || d.Target.Name != "worker-1" || p == nil || p.TargetUsedPercent != a.TargetUsedPercent || p.TargetUsedBytes != a.TargetUsedBytes || len(p.Keep) != len(a.Keep) {
				t.Errorf("draft %+v, prune %+v: want the node and the arguments", d, p)
			}
			if d.Change == "" {
				t.Error("the draft has no change for its fingerprint")
			}
		})
	}
}
