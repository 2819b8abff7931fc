package controllers

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/go-logr/logr"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/tendops/tend/bus"
)

// +kubebuilder:rbac:groups="";events.k8s.io,resources=events,verbs=create;patch;update

// ReasonFinding is the reason of the Event a finding becomes.
const ReasonFinding = "TendFinding"

// FindingEvents turns the agents' findings (the FINDINGS stream) into
// Warning Events on the objects they are about, so that `kubectl describe`
// and `tend findings` show them. Agents cannot write to the cluster; the
// controller records for them, and only on an object that exists.
type FindingEvents struct {
	Client   client.Client
	JS       jetstream.JetStream
	Cluster  string
	Recorder events.EventRecorder
	// Durable names the consumer; "tend-findings" when empty.
	Durable string
}

var (
	_ manager.Runnable               = (*FindingEvents)(nil)
	_ manager.LeaderElectionRunnable = (*FindingEvents)(nil)
)

// NeedLeaderElection is false: replicas share the durable consumer.
func (f *FindingEvents) NeedLeaderElection() bool { return false }

// findingKinds maps a finding's object kind to its group and version.
var findingKinds = map[string]schema.GroupVersion{
	"Deployment": {Group: "apps", Version: "v1"}, "StatefulSet": {Group: "apps", Version: "v1"}, "DaemonSet": {Group: "apps", Version: "v1"},
	"Pod": {Version: "v1"}, "Node": {Version: "v1"}, "Service": {Version: "v1"}, "Namespace": {Version: "v1"},
	"Job": {Group: "batch", Version: "v1"}, "CronJob": {Group: "batch", Version: "v1"},
	"HorizontalPodAutoscaler": {Group: "autoscaling", Version: "v2"},
	"NetworkPolicy":           {Group: "networking.k8s.io", Version: "v1"},
}

// Start consumes findings until ctx is done.
func (f *FindingEvents) Start(ctx context.Context) error {
	durable := f.Durable
	if durable == "" {
		durable = "tend-findings"
	}
	log := logr.FromContextOrDiscard(ctx).WithValues("consumer", durable)
	cons, err := f.JS.CreateOrUpdateConsumer(ctx, bus.StreamFindings, jetstream.ConsumerConfig{
		Durable:       durable,
		FilterSubject: bus.FindingsSubject(f.Cluster),
		AckPolicy:     jetstream.AckExplicitPolicy,
		DeliverPolicy: jetstream.DeliverNewPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    10,
	})
	if err != nil {
		return fmt.Errorf("failed to create or update consumer %s: %w", durable, err)
	}
	return consumeUntilDone(ctx, log, cons, durable, f.handle)
}

func (f *FindingEvents) handle(ctx context.Context, msg jetstream.Msg) {
	log := logr.FromContextOrDiscard(ctx)
	settle := func(err error) {
		if err != nil {
			log.Error(err, "Failed to settle finding message")
		}
	}
	rec, err := bus.DecodeFinding(msg.Data())
	if err != nil {
		log.V(1).Info("Terminating malformed finding", "error", err.Error())
		settle(msg.TermWithReason(truncate(err.Error(), 256)))
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	switch err := f.record(ctx, rec); {
	case err == nil:
		settle(msg.Ack())
	case apierrors.IsNotFound(err):
		// The object is gone: nothing to describe.
		settle(msg.Ack())
	default:
		log.V(1).Info("Recording a finding failed, retrying", "error", err.Error())
		settle(msg.NakWithDelay(time.Second))
	}
}

// record puts the finding on its object as a Warning Event.
func (f *FindingEvents) record(ctx context.Context, rec *bus.Finding) error {
	gv, ok := findingKinds[string(rec.Object.Kind)]
	if !ok {
		return nil
	}
	obj := &metav1.PartialObjectMetadata{}
	obj.SetGroupVersionKind(gv.WithKind(string(rec.Object.Kind)))
	if err := f.Client.Get(ctx, client.ObjectKey{Namespace: rec.Object.Namespace, Name: rec.Object.Name}, obj); err != nil {
		return err
	}
	note := rec.Fault
	if rec.Advice != "" {
		// Fault and advice are two sentences, whether or not the fault
		// ends its own.
		if !strings.HasSuffix(note, ".") {
			note += "."
		}
		note += " " + rec.Advice
	}
	f.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, ReasonFinding, "Diagnose", "%s", truncate(note, 1000))
	return nil
}
