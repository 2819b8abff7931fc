package bus

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nkeys"
)

func shimRequests() []*ShimRequest {
	return []*ShimRequest{{
		SchemaVersion: SchemaVersion, Verb: VerbRestartContainer, Cluster: "prod", Node: "node-1.example.com", Attempt: "t",
		RestartContainer: &RestartContainerParams{
			Target:             ContainerTarget{Namespace: "shop", Pod: "web-7d9f-abcde", PodUID: "0b5f6c1e-uid", Container: "web", ContainerID: "containerd://4f2a"},
			GracePeriodSeconds: 30,
		},
	}, {
		SchemaVersion: SchemaVersion, Verb: VerbPruneImages, Cluster: "prod", Node: "node-1", Attempt: "t",
		PruneImages: &PruneImagesParams{TargetUsedPercent: 70, Keep: []string{"registry.example.com/base/*", "sha256:0123"}},
	}, {
		SchemaVersion: SchemaVersion, Verb: VerbCollectDiagnostics, Cluster: "prod", Node: "node-1", Attempt: "t",
		CollectDiagnostics: &CollectDiagnosticsParams{Namespace: "shop", Pod: "web-7d9f-abcde", Container: "web", TailLines: 500},
	}, {
		SchemaVersion: SchemaVersion, Verb: VerbCollectDiagnostics, Cluster: "prod", Node: "node-1", Attempt: "t",
		CollectDiagnostics: &CollectDiagnosticsParams{},
	}, {
		SchemaVersion: SchemaVersion, Verb: VerbStatus, Cluster: "prod", Node: "node-1", Attempt: "t",
		Status: &StatusParams{Container: &ContainerTarget{Namespace: "shop", Pod: "web-7d9f-abcde", Container: "web"}},
	}}
}

func TestDecodeShimRequest(t *testing.T) {
	for _, r := range shimRequests() {
		data, err := EncodeShimRequest(r)
		if err != nil {
			t.Fatalf("%s: %v", r.Verb, err)
		}
		got, err := DecodeShimRequest(data)
		if err != nil {
			t.Fatalf("%s: %v", r.Verb, err)
		}
		if diff := cmp.Diff(r, got); diff != "" {
			t.Errorf("%s: round trip (-want +got):\n%s", r.Verb, diff)
		}
	}
	valid := `{"schemaVersion":1,"verb":"restart-container","cluster":"prod","node":"node-1","attempt":"t","restartContainer":{"target":{"namespace":"shop","pod":"web","container":"app"}}}`
	for name, data := range map[string]string{
		"not JSON":                `{"verb":`,
		"unknown field":           strings.Replace(valid, `"attempt"`, `"admin":true,"attempt"`, 1),
		"trailing data":           valid + `{}`,
		"other version":           strings.Replace(valid, `"schemaVersion":1`, `"schemaVersion":2`, 1),
		"unknown verb":            strings.Replace(valid, `"verb":"restart-container"`, `"verb":"format-disk"`, 1),
		"params of other verb":    strings.Replace(valid, `"restartContainer"`, `"collectDiagnostics"`, 1),
		"two params":              strings.Replace(valid, `}}}`, `}},"status":{}}`, 1),
		"no attempt":              strings.Replace(valid, `"attempt":"t"`, `"attempt":""`, 1),
		"no node":                 strings.Replace(valid, `"node":"node-1"`, `"node":""`, 1),
		"node not a name":         strings.Replace(valid, `"node":"node-1"`, `"node":"Node_1 > x"`, 1),
		"pod not a name":          strings.Replace(valid, `"pod":"web"`, `"pod":"../etc"`, 1),
		"no container":            strings.Replace(valid, `"container":"app"`, `"container":""`, 1),
		"negative grace":          strings.Replace(valid, `"container":"app"}`, `"container":"app"},"gracePeriodSeconds":-1`, 1),
		"grace too long":          strings.Replace(valid, `"container":"app"}`, `"container":"app"},"gracePeriodSeconds":601`, 1),
		"force kill with grace":   strings.Replace(valid, `"container":"app"}`, `"container":"app"},"gracePeriodSeconds":5,"forceKill":true`, 1),
		"oversized":               strings.Replace(valid, `"attempt":"t"`, `"attempt":"`+strings.Repeat("a", MaxShimRequestSize)+`"`, 1),
		"long token":              strings.Replace(valid, `"attempt":"t"`, `"attempt":"`+strings.Repeat("a", MaxAttemptTokenSize+1)+`"`, 1),
		"prune without target":    `{"schemaVersion":1,"verb":"prune-images","cluster":"prod","node":"node-1","attempt":"t","pruneImages":{}}`,
		"prune two targets":       `{"schemaVersion":1,"verb":"prune-images","cluster":"prod","node":"node-1","attempt":"t","pruneImages":{"targetUsedBytes":1,"targetUsedPercent":50}}`,
		"prune all and target":    `{"schemaVersion":1,"verb":"prune-images","cluster":"prod","node":"node-1","attempt":"t","pruneImages":{"targetUsedBytes":1,"all":true}}`,
		"prune 100 percent":       `{"schemaVersion":1,"verb":"prune-images","cluster":"prod","node":"node-1","attempt":"t","pruneImages":{"targetUsedPercent":100}}`,
		"keep with space":         `{"schemaVersion":1,"verb":"prune-images","cluster":"prod","node":"node-1","attempt":"t","pruneImages":{"targetUsedBytes":1,"keep":["a b"]}}`,
		"namespace without a pod": `{"schemaVersion":1,"verb":"collect-diagnostics","cluster":"prod","node":"node-1","attempt":"t","collectDiagnostics":{"namespace":"a"}}`,
		"container without a pod": `{"schemaVersion":1,"verb":"collect-diagnostics","cluster":"prod","node":"node-1","attempt":"t","collectDiagnostics":{"container":"a"}}`,
		"tail too long":           `{"schemaVersion":1,"verb":"collect-diagnostics","cluster":"prod","node":"node-1","attempt":"t","collectDiagnostics":{"namespace":"a","pod":"b","tailLines":5001}}`,
	} {
		if _, err := DecodeShimRequest([]byte(data)); !errors.Is(err, ErrBadShimMessage) {
			t.Errorf("%s: got %v, want ErrBadShimMessage", name, err)
		}
	}
}

func TestAttemptToken(t *testing.T) {
	controller, _ := nkeys.CreateUser()
	other, _ := nkeys.CreateUser()
	pub, _ := controller.PublicKey()
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	req := shimRequests()[0]
	digest, err := req.ParamsDigest()
	if err != nil {
		t.Fatal(err)
	}
	claims := AttemptClaims{
		ID: "uid-1/apply/1", Proposal: "shop/restart-web", Cluster: req.Cluster, Node: req.Node, Verb: req.Verb,
		Params: digest, IssuedAt: now, ExpiresAt: now.Add(5 * time.Minute),
	}
	token, err := SignAttempt(controller, claims)
	if err != nil {
		t.Fatal(err)
	}
	got, err := VerifyAttempt(token, []string{pub}, now.Add(time.Minute))
	if err != nil {
		t.Fatalf("a good token: %v", err)
	}
	if diff := cmp.Diff(claims, got); diff != "" {
		t.Errorf("claims (-want +got):\n%s", diff)
	}
	if err := got.Matches(req); err != nil {
		t.Errorf("the token does not match its request: %v", err)
	}

	forged, _ := SignAttempt(other, claims)
	parts := strings.Split(token, ".")
	otherParts := strings.Split(forged, ".")
	changed := claims
	changed.ID = "uid-2/apply/1"
	changedToken, _ := SignAttempt(controller, changed)
	changedParts := strings.Split(changedToken, ".")
	for name, tc := range map[string]struct {
		token string
		at    time.Time
	}{
		"signed by another key":             {forged, now},
		"another key claiming to be ours":   {otherParts[0] + "." + otherParts[1] + "." + parts[2], now},
		"claims changed after signing":      {changedParts[0] + "." + parts[1] + "." + parts[2], now},
		"expired":                           {token, now.Add(5 * time.Minute)},
		"issued in the future":              {token, now.Add(-2 * time.Minute)},
		"not a token":                       {"admin", now},
		"no signature":                      {parts[0] + ".." + parts[2], now},
		"bad encoding":                      {"!!." + parts[1] + "." + parts[2], now},
		"oversized":                         {strings.Repeat("a", MaxAttemptTokenSize+1), now},
		"a signer key that is not a key":    {parts[0] + "." + parts[1] + ".UNOTAKEY", now},
		"four parts":                        {token + ".x", now},
		"claims that are not JSON (signed)": {signRaw(t, controller, []byte("not json")), now},
	} {
		if _, err := VerifyAttempt(tc.token, []string{pub, "UNOTAKEY"}, tc.at); !errors.Is(err, ErrAttempt) {
			t.Errorf("%s: got %v, want ErrAttempt", name, err)
		}
	}

	// A good token for another request does not match.
	for name, change := range map[string]func(r *ShimRequest){
		"other node":      func(r *ShimRequest) { r.Node = "node-2" },
		"other cluster":   func(r *ShimRequest) { r.Cluster = "staging" },
		"other container": func(r *ShimRequest) { r.RestartContainer.Target.Container = "db" },
		"other grace":     func(r *ShimRequest) { r.RestartContainer.GracePeriodSeconds = 1 },
		"other verb": func(r *ShimRequest) {
			r.Verb, r.RestartContainer, r.Status = VerbStatus, nil, &StatusParams{}
		},
	} {
		r := shimRequests()[0]
		change(r)
		if err := got.Matches(r); !errors.Is(err, ErrAttempt) {
			t.Errorf("%s: got %v, want ErrAttempt", name, err)
		}
	}

	for name, c := range map[string]AttemptClaims{
		"no ID":           func() AttemptClaims { c := claims; c.ID = ""; return c }(),
		"ID with a space": func() AttemptClaims { c := claims; c.ID = "a b"; return c }(),
		"lives too long":  func() AttemptClaims { c := claims; c.ExpiresAt = now.Add(time.Hour); return c }(),
		"expires first":   func() AttemptClaims { c := claims; c.ExpiresAt = now.Add(-time.Second); return c }(),
		"no params":       func() AttemptClaims { c := claims; c.Params = ""; return c }(),
	} {
		if _, err := SignAttempt(controller, c); !errors.Is(err, ErrAttempt) {
			t.Errorf("signing %s: got %v, want ErrAttempt", name, err)
		}
	}
}

func signRaw(t *testing.T, kp nkeys.KeyPair, payload []byte) string {
	sig, err := kp.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	enc := base64.RawURLEncoding
	return enc.EncodeToString(payload) + "." + enc.EncodeToString(sig) + "." + pub
}

func TestShimReply(t *testing.T) {
	r := &ShimReply{Verb: VerbPruneImages, Node: "node-1", AttemptID: "a", PruneImages: &PruneImagesResult{
		UsedBytesBefore: 10, TargetUsedBytes: 5, EstimatedUsedBytesAfter: 4, TargetReached: true,
		Removed: []PrunedImage{{ID: "sha256:1", Tags: []string{"a:1"}, SizeBytes: 6}},
	}}
	got, err := DecodeShimReply(EncodeShimReply(r))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(r, got); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	// A reply that would be too large becomes a too-large error reply.
	huge := &ShimReply{Verb: VerbPruneImages, Node: "node-1", AttemptID: "a", PruneImages: &PruneImagesResult{}}
	for i := range MaxNodeImages {
		huge.PruneImages.Removed = append(huge.PruneImages.Removed, PrunedImage{ID: strings.Repeat("x", 1000) + string(rune('a'+i%26))})
	}
	got, err = DecodeShimReply(EncodeShimReply(huge))
	if err != nil {
		t.Fatal(err)
	}
	if got.Error == nil || got.Error.Code != ShimTooLarge || got.AttemptID != "a" || got.PruneImages != nil {
		t.Errorf("a huge reply became %+v, want a too-large error", got)
	}
	for name, data := range map[string]string{
		"error and result": `{"schemaVersion":1,"verb":"status","node":"n","error":{"code":"busy","message":""},"status":{}}`,
		"no result":        `{"schemaVersion":1,"verb":"status","node":"n"}`,
		"unknown field":    `{"schemaVersion":1,"verb":"status","node":"n","status":{},"x":1}`,
		"other version":    `{"schemaVersion":3,"verb":"status","node":"n","status":{}}`,
	} {
		if _, err := DecodeShimReply([]byte(data)); !errors.Is(err, ErrBadShimMessage) {
			t.Errorf("%s: got %v, want ErrBadShimMessage", name, err)
		}
	}
}

func TestShimKeys(t *testing.T) {
	if got, want := ShimLedgerPrefix("prod", "node-1.example.com"), "prod.node-1=2eexample=2ecom"; got != want {
		t.Errorf("ShimLedgerPrefix = %q, want %q", got, want)
	}
	// Distinct nodes never share a prefix, whatever their names.
	if ShimLedgerPrefix("a", "b.c") == ShimLedgerPrefix("a.b", "c") {
		t.Error("two nodes share a ledger prefix")
	}
	k := ShimLedgerKey("prod", "node-1", "uid/apply/1")
	if !strings.HasPrefix(k, "prod.node-1.") || len(k) != len("prod.node-1.")+32 {
		t.Errorf("ShimLedgerKey = %q", k)
	}
	if got, want := ShimNodeFilter("prod", "node-1.example.com"), "tend.shim.prod.node-1~example~com.*"; got != want {
		t.Errorf("ShimNodeFilter = %q, want %q", got, want)
	}
}

// FuzzDecodeShimRequest checks that the shim's decoder never panics, that
// everything it accepts encodes again within bounds, and that it decodes
// the same.
func FuzzDecodeShimRequest(f *testing.F) {
	for _, r := range shimRequests() {
		data, err := EncodeShimRequest(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`{"schemaVersion":1,"verb":"prune-images","cluster":"c","node":"n","attempt":"a","pruneImages":{"targetUsedBytes":1}}`))
	f.Add([]byte(`{"schemaVersion":1,"verb":"prune-images","cluster":"c","node":"n","attempt":"a","pruneImages":{"all":true,"keep":["x*"]}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := DecodeShimRequest(data)
		if err != nil {
			if !errors.Is(err, ErrBadShimMessage) {
				t.Fatalf("error %v does not wrap ErrBadShimMessage", err)
			}
			return
		}
		if _, err := r.ParamsDigest(); err != nil {
			t.Fatalf("an accepted request has no digest: %v", err)
		}
		again, err := EncodeShimRequest(r)
		if err != nil {
			t.Fatalf("Decode accepted what Encode refuses: %v", err)
		}
		r2, err := DecodeShimRequest(again)
		if err != nil {
			t.Fatalf("Decode refused what Encode produced: %v\n%s", err, again)
		}
		if diff := cmp.Diff(r, r2, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("re-encoding changed the request (-first +second):\n%s", diff)
		}
	})
}
