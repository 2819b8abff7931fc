package shim

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/runtime-shim/critest"
	"github.com/tendops/tend/runtime-shim/shimclient"
)

// TestRefusals sends the shim what it must refuse, from identities that may
// not act and as bad input, and checks that nothing happened and that the
// shim still serves.
func TestRefusals(t *testing.T) {
	e := newEnv(t)
	e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	pod := e.ctrd.RunPod("shop", "web-1")
	id := pod.Start("app", critest.Registry+"/web:1", 0)
	e.startShim(e.shimOptions(testNode), nil)
	target := bus.ContainerTarget{Namespace: "shop", Pod: "web-1", Container: "app"}
	restart := bus.RestartContainerParams{Target: target, GracePeriodSeconds: 10}
	subject := bus.ShimSubject(testCluster, testNode, bus.VerbRestartContainer)
	signed := func(signer nkeys.KeyPair, node string, now time.Time, p bus.RestartContainerParams) []byte {
		req := &bus.ShimRequest{SchemaVersion: bus.SchemaVersion, Verb: bus.VerbRestartContainer, Cluster: testCluster, Node: node, RestartContainer: &p}
		digest, err := req.ParamsDigest()
		if err != nil {
			t.Fatal(err)
		}
		req.Attempt, err = bus.SignAttempt(signer, bus.AttemptClaims{ID: "a-" + node + "-" + now.Format(time.RFC3339Nano), Cluster: testCluster, Node: node,
			Verb: req.Verb, Params: digest, IssuedAt: now, ExpiresAt: now.Add(time.Minute)})
		if err != nil {
			t.Fatal(err)
		}
		data, err := bus.EncodeShimRequest(req)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}

	t.Run("an agent cannot send a request", func(t *testing.T) {
		errs := make(chan error, 4)
		agent, _ := e.connect("agent", nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		_, err := agent.Request(subject, signed(e.signer, testNode, time.Now(), restart), 2*time.Second)
		if err == nil {
			t.Fatal("an agent got a reply from the shim")
		}
		select {
		case err := <-errs:
			if !errors.Is(err, nats.ErrPermissionViolation) || !strings.Contains(err.Error(), subject) {
				t.Errorf("got %v, want a permissions violation on %s", err, subject)
			}
		case <-time.After(5 * time.Second):
			t.Error("the server did not refuse the agent's publish")
		}
	})

	t.Run("an identity without the controller's key", func(t *testing.T) {
		rogueNC, rogueJS := e.connect("rogue")
		rogueKey, _ := nkeys.CreateUser()
		rogue, err := shimclient.New(shimclient.Options{Cluster: testCluster, Conn: rogueNC, JS: rogueJS, Signer: rogueKey})
		if err != nil {
			t.Fatal(err)
		}
		_, err = rogue.RestartContainer(t.Context(), testNode, attempt(t), restart)
		wantCode(t, err, bus.ShimUnauthorized)
		// Its own key, claiming to be the controller's.
		data := signed(rogueKey, testNode, time.Now(), restart)
		pub, _ := e.signer.PublicKey()
		forged := strings.Replace(string(data), keyOf(t, rogueKey), pub, 1)
		r := request(t, rogueNC, subject, []byte(forged))
		if r.Error == nil || r.Error.Code != bus.ShimUnauthorized {
			t.Errorf("a token signed by another key, claiming the controller's: %+v", r)
		}
	})

	t.Run("a token for another request", func(t *testing.T) {
		// Signed by the controller for the container "app", sent for "db".
		data := signed(e.signer, testNode, time.Now(), restart)
		other := strings.Replace(string(data), `"container":"app"`, `"container":"db"`, 1)
		r := request(t, e.ctrlNC, subject, []byte(other))
		if r.Error == nil || r.Error.Code != bus.ShimUnauthorized {
			t.Errorf("got %+v, want unauthorized", r)
		}
		// Expired.
		r = request(t, e.ctrlNC, subject, signed(e.signer, testNode, time.Now().Add(-2*time.Minute), restart))
		if r.Error == nil || r.Error.Code != bus.ShimUnauthorized || !strings.Contains(r.Error.Message, "expired") {
			t.Errorf("an expired token: %+v", r)
		}
	})

	t.Run("a request for another node", func(t *testing.T) {
		r := request(t, e.ctrlNC, subject, signed(e.signer, otherNode, time.Now(), restart))
		if r.Error == nil || r.Error.Code != bus.ShimWrongNode {
			t.Errorf("got %+v, want wrong-node", r)
		}
	})

	t.Run("bad input", func(t *testing.T) {
		valid := signed(e.signer, testNode, time.Now(), restart)
		for name, tc := range map[string]struct {
			subject string
			data    []byte
			code    bus.ShimErrorCode
		}{
			"not JSON":       {subject, []byte("{"), bus.ShimMalformed},
			"unknown field":  {subject, []byte(strings.Replace(string(valid), `"attempt"`, `"sudo":true,"attempt"`, 1)), bus.ShimMalformed},
			"unknown verb":   {bus.ShimSubject(testCluster, testNode, "format-disk"), valid, bus.ShimMalformed},
			"verb mismatch":  {bus.ShimSubject(testCluster, testNode, bus.VerbStatus), valid, bus.ShimMalformed},
			"oversized":      {subject, []byte(`{"pad":"` + strings.Repeat("x", bus.MaxShimRequestSize) + `"}`), bus.ShimTooLarge},
			"empty":          {subject, nil, bus.ShimMalformed},
			"no attempt":     {subject, []byte(strings.Replace(string(valid), `"attempt":"`, `"attempt":"x`, 1)), bus.ShimUnauthorized},
			"another schema": {subject, []byte(strings.Replace(string(valid), `"schemaVersion":1`, `"schemaVersion":9`, 1)), bus.ShimMalformed},
		} {
			r := request(t, e.ctrlNC, tc.subject, tc.data)
			if r.Error == nil || r.Error.Code != tc.code || r.Node != testNode {
				t.Errorf("%s: got %+v, want %s", name, r, tc.code)
			}
		}
	})

	t.Run("a container that is not on this node", func(t *testing.T) {
		p := restart
		p.Target.Pod = "web-2"
		_, err := e.client.RestartContainer(t.Context(), testNode, attempt(t), p)
		wantCode(t, err, bus.ShimNotFound)
		p = restart
		p.Target.PodUID = "not-the-uid"
		_, err = e.client.RestartContainer(t.Context(), testNode, attempt(t), p)
		wantCode(t, err, bus.ShimConflict)
	})

	t.Run("another node's shim", func(t *testing.T) {
		errs := make(chan error, 4)
		other, _ := e.connect("shim-"+otherNode, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		if _, err := other.SubscribeSync(bus.ShimNodeFilter(testCluster, testNode)); err != nil {
			t.Fatal(err)
		}
		if err := other.Publish(bus.TelemetrySubject(testCluster, bus.KindContainers, "", testNode), []byte("{}")); err != nil {
			t.Fatal(err)
		}
		if err := other.Flush(); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			select {
			case err := <-errs:
				if !errors.Is(err, nats.ErrPermissionViolation) {
					t.Errorf("got %v, want a permissions violation", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("node-2's shim could subscribe to node-1's requests or publish its telemetry")
			}
		}
	})

	// Nothing happened to the container, and the shim still serves.
	if st := e.ctrd.ContainerStatus(id); st.GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Fatalf("the container is %s after the refusals", st.GetState())
	}
	if _, err := e.client.RestartContainer(t.Context(), testNode, attempt(t), restart); err != nil {
		t.Fatalf("the shim no longer serves: %v", err)
	}
}

// TestRuntimeUnavailable points a shim at a missing CRI socket, then at a
// containerd that does not answer (stopped with SIGSTOP): each request gets a
// retryable error reply, and the shim serves again once the runtime answers.
func TestRuntimeUnavailable(t *testing.T) {
	e := newEnv(t)
	e.ctrd.ImportImage(critest.Registry+"/web:1", critest.ImageOptions{})
	pod := e.ctrd.RunPod("shop", "web-1")
	id := pod.Start("app", critest.Registry+"/web:1", 0)
	restart := bus.RestartContainerParams{Target: bus.ContainerTarget{Namespace: "shop", Pod: "web-1", Container: "app"}, GracePeriodSeconds: 10}

	opts := e.shimOptions(testNode)
	opts.Runtime = NewCRI("unix://"+t.TempDir()+"/missing.sock", 2*time.Second)
	missing := e.startShim(opts, nil)
	_, err := e.client.Status(t.Context(), testNode, bus.StatusParams{})
	wantCode(t, err, bus.ShimUnavailable)
	if !shimclient.Retryable(err) {
		t.Errorf("%v is not retryable", err)
	}
	_, err = e.client.RestartContainer(t.Context(), testNode, attempt(t), restart)
	wantCode(t, err, bus.ShimUnavailable)
	missing.stop(t)

	opts = e.shimOptions(testNode)
	opts.Runtime = NewCRI(e.ctrd.Endpoint, 2*time.Second)
	e.startShim(opts, nil)
	if _, err := e.client.Status(t.Context(), testNode, bus.StatusParams{}); err != nil {
		t.Fatal(err)
	}
	e.ctrd.Pause()
	a := attempt(t)
	_, err = e.client.RestartContainer(t.Context(), testNode, a, restart)
	wantCode(t, err, bus.ShimUnavailable)
	_, err = e.client.Status(t.Context(), testNode, bus.StatusParams{})
	wantCode(t, err, bus.ShimUnavailable)
	e.ctrd.Resume()
	res, err := e.client.RestartContainer(t.Context(), testNode, a, restart)
	if err != nil {
		t.Fatalf("the same attempt once the runtime answers: %v", err)
	}
	if res.ContainerID != id || res.AlreadyStopped {
		t.Errorf("result %+v", res)
	}
}

func request(t *testing.T, nc *nats.Conn, subject string, data []byte) *bus.ShimReply {
	t.Helper()
	msg, err := nc.Request(subject, data, 30*time.Second)
	if err != nil {
		t.Fatalf("request on %s: %v", subject, err)
	}
	r, err := bus.DecodeShimReply(msg.Data)
	if err != nil {
		t.Fatalf("reply: %v", err)
	}
	return r
}

func keyOf(t *testing.T, kp nkeys.KeyPair) string {
	pub, err := kp.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return pub
}

// TestStoppedShimTakesNoRequests: once Start returns, the server routes no
// request to the stopped shim, even while its connection is still open. A
// request then finds nobody at once, instead of waiting out its timeout
// for an answer that never comes (a shim restarted on the same node would
// otherwise lose requests to the one before it).
func TestStoppedShimTakesNoRequests(t *testing.T) {
	e := newEnv(t)
	for i := range 20 {
		r := e.startShim(e.shimOptions(testNode), nil)
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Fatalf("shim: %v", err)
			}
			r.done <- nil // for the cleanup's stop
		case <-time.After(30 * time.Second):
			t.Fatal("the shim did not stop in 30s")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		_, err := e.client.Status(ctx, testNode, bus.StatusParams{})
		cancel()
		if !errors.Is(err, shimclient.ErrNoShim) {
			t.Fatalf("round %d: a status request after the shim stopped: %v, want %v", i, err, shimclient.ErrNoShim)
		}
	}
}
