package actions

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"
	"k8s.io/utils/ptr"

	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// realShimClient is the runtime shim's client on an embedded NATS server
// no shim serves: enough for what needs a client but sends nothing.
func realShimClient(t *testing.T) *shimclient.Client {
	t.Helper()
	srv, err := bus.StartEmbedded(bus.EmbeddedOptions{StoreDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	nc, js, err := bus.Connect(t.Context(), srv.URL(), "test-controller")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	signer, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	c, err := shimclient.New(shimclient.Options{Cluster: "test", Conn: nc, JS: js, Signer: signer})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func nodeProposal(a tendv1.Action, params tendv1.Parameters) *tendv1.Proposal {
	return &tendv1.Proposal{Spec: tendv1.ProposalSpec{Action: a, Parameters: params,
		Target: tendv1.TargetRef{APIVersion: "v1", Kind: "Node", Name: "worker-1", UID: "u1"}}}
}

func podProposal(a tendv1.Action, params tendv1.Parameters) *tendv1.Proposal {
	return &tendv1.Proposal{Spec: tendv1.ProposalSpec{Action: a, Parameters: params,
		Target: tendv1.TargetRef{APIVersion: "v1", Kind: "Pod", Namespace: "shop", Name: "web-1", UID: "u1"}}}
}

// TestNodeActionsValidate: parameters that do not fit a node action are
// invalid with a message naming the problem, before anything is read or
// sent; without a shim client, every node action is refused NoRuntimeShim.
func TestNodeActionsValidate(t *testing.T) {
	byAction := map[tendv1.Action]Action{}
	for _, a := range Catalogue(Options{Shim: realShimClient(t)}) {
		byAction[a.Info().Action] = a
	}
	prune := func(p tendv1.PruneParameters) tendv1.Parameters { return tendv1.Parameters{Prune: &p} }
	container := func(name string) tendv1.Parameters {
		return tendv1.Parameters{Container: &tendv1.ContainerParameters{Container: name}}
	}
	tests := []struct {
		name string
		p    *tendv1.Proposal
		// want is a substring of the error; empty means valid.
		want string
	}{
		{"prune in percent", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70), Keep: []string{"registry.example.com/base/*"}})), ""},
		{"prune in bytes", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedBytes: ptr.To[int64](1 << 30)})), ""},
		{"prune without a target", nodeProposal(tendv1.ActionPruneImages, tendv1.Parameters{}), "needs a target"},
		{"prune with both targets", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70), TargetUsedBytes: ptr.To[int64](1)})), "exactly one"},
		{"prune to 100%", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](100)})), "targetUsedPercent"},
		{"prune to no bytes", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedBytes: ptr.To[int64](0)})), "must be positive"},
		{"prune keeping a name with a space", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70), Keep: []string{"a b"}})), "keep[0]"},
		{"prune keeping too many", nodeProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70), Keep: make([]string, 65)})), "keep"},
		{"prune with another action's parameters", nodeProposal(tendv1.ActionPruneImages, tendv1.Parameters{Scale: &tendv1.ScaleParameters{Replicas: 1},
			Prune: &tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70)}}), "only prune parameters"},
		{"prune of a pod", podProposal(tendv1.ActionPruneImages, prune(tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70)})), "acts on [Node]"},
		{"restart a container", podProposal(tendv1.ActionRestartContainer, container("web")), ""},
		{"restart without a container", podProposal(tendv1.ActionRestartContainer, tendv1.Parameters{}), "needs the container's name"},
		{"restart a container named badly", podProposal(tendv1.ActionRestartContainer, container("Web_1")), "restartContainer.target.container"},
		{"restart on a node", nodeProposal(tendv1.ActionRestartContainer, container("web")), "acts on [Pod]"},
		{"restart with prune parameters", podProposal(tendv1.ActionRestartContainer, tendv1.Parameters{Container: &tendv1.ContainerParameters{Container: "web"},
			Prune: &tendv1.PruneParameters{TargetUsedPercent: ptr.To[int32](70)}}), "only a container"},
		{"diagnostics of a pod", podProposal(tendv1.ActionCollectDiagnostics, tendv1.Parameters{}), ""},
		{"diagnostics of a container", podProposal(tendv1.ActionCollectDiagnostics, container("web")), ""},
		{"diagnostics of a node", nodeProposal(tendv1.ActionCollectDiagnostics, tendv1.Parameters{}), ""},
		{"diagnostics of a node's container", nodeProposal(tendv1.ActionCollectDiagnostics, container("web")), "take no container"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := byAction[tt.p.Spec.Action].Validate(tt.p)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidParameters) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want invalid parameters mentioning %q", err, tt.want)
			}
		})
	}

	for _, a := range Catalogue(Options{}) {
		if !a.Info().Shim {
			continue
		}
		p := nodeProposal(a.Info().Action, tendv1.Parameters{})
		if refusal, ok := errors.AsType[*Refusal](a.Validate(p)); !ok || refusal.Code != ReasonNoRuntimeShim {
			t.Errorf("%s without a shim client: %v, want a %s refusal", a.Info().Action, a.Validate(p), ReasonNoRuntimeShim)
		}
	}
}

// TestShimFailed: how a shim call's error becomes the controller's.
func TestShimFailed(t *testing.T) {
	shimErr := func(code bus.ShimErrorCode) error {
		return &shimclient.Error{Node: "worker-1", Verb: bus.VerbPruneImages, Code: code, Message: "what the shim said"}
	}
	tests := []struct {
		err error
		// retry: returned as it is, to be sent again; refusal: its code;
		// otherwise rejected (the proposal fails).
		retry   bool
		refusal string
	}{
		{err: shimErr(bus.ShimBusy), retry: true},
		{err: shimErr(bus.ShimUnavailable), retry: true},
		{err: fmt.Errorf("%w: worker-1", shimclient.ErrNoShim), retry: true},
		{err: fmt.Errorf("%w: prune-images on worker-1", shimclient.ErrTimeout), retry: true},
		{err: shimErr(bus.ShimNotFound), refusal: ReasonNotOnNode},
		{err: shimErr(bus.ShimConflict), refusal: ReasonRuntimeConflict},
		{err: shimErr(bus.ShimUnauthorized)},
		{err: shimErr(bus.ShimMalformed)},
		{err: shimErr(bus.ShimWrongNode)},
		{err: shimErr(bus.ShimInternal)},
		{err: fmt.Errorf("%w: a reply for another attempt", shimclient.ErrBadReply)},
	}
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			got := shimFailed("worker-1", bus.VerbPruneImages, tt.err)
			refusal, refused := errors.AsType[*Refusal](got)
			switch {
			case tt.retry:
				if !shimclient.Retryable(got) || refused || errors.Is(got, ErrRejected) {
					t.Errorf("got %v, want it retried", got)
				}
			case tt.refusal != "":
				if !refused || refusal.Code != tt.refusal || !strings.Contains(refusal.Message, "what the shim said") {
					t.Errorf("got %v, want a %s refusal with the shim's message", got, tt.refusal)
				}
			default:
				if !errors.Is(got, ErrRejected) || !errors.Is(got, tt.err) {
					t.Errorf("got %v, want it rejected, wrapping the shim's error", got)
				}
			}
		})
	}
}
