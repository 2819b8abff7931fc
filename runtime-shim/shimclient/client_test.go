package shimclient

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/tendops/tend/bus"
)

func TestRetryable(t *testing.T) {
	for err, want := range map[error]bool{
		&Error{Code: bus.ShimBusy}:                                   true,
		&Error{Code: bus.ShimUnavailable}:                            true,
		fmt.Errorf("wrapped: %w", &Error{Code: bus.ShimUnavailable}): true,
		&Error{Code: bus.ShimUnauthorized}:                           false,
		&Error{Code: bus.ShimNotFound}:                               false,
		&Error{Code: bus.ShimConflict}:                               false,
		fmt.Errorf("%w: node-1", ErrNoShim):                          true,
		fmt.Errorf("%w: restart", ErrTimeout):                        true,
		ErrBadReply:                                                  false,
		errors.New("anything else"):                                  false,
	} {
		if got := Retryable(err); got != want {
			t.Errorf("Retryable(%v) = %v, want %v", err, got, want)
		}
	}
}

func TestNew(t *testing.T) {
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	pubOnly, _ := nkeys.FromPublicKey(pub)
	nc := &nats.Conn{}
	for name, o := range map[string]Options{
		"no cluster":         {Conn: nc, Signer: kp},
		"no connection":      {Cluster: "c", Signer: kp},
		"no signer":          {Cluster: "c", Conn: nc},
		"a public key only":  {Cluster: "c", Conn: nc, Signer: pubOnly},
		"a token lives long": {Cluster: "c", Conn: nc, Signer: kp, TokenLifetime: time.Hour},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := New(Options{Cluster: "c", Conn: nc, Signer: kp}); err != nil {
		t.Error(err)
	}
}

func TestTimeout(t *testing.T) {
	restart := &bus.ShimRequest{Verb: bus.VerbRestartContainer, RestartContainer: &bus.RestartContainerParams{GracePeriodSeconds: 120}}
	if got := Timeout(restart); got <= 120*time.Second {
		t.Errorf("a restart with a 120s grace period waits %s", got)
	}
	if got := Timeout(&bus.ShimRequest{Verb: bus.VerbRestartContainer, RestartContainer: &bus.RestartContainerParams{}}); got <= bus.DefaultGracePeriodSeconds*time.Second {
		t.Errorf("a restart with the default grace period waits %s", got)
	}
}
