package harness

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"go.opentelemetry.io/otel/trace"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/agents"
	"github.com/tendops/tend/agents/planner"
	tendv1 "github.com/tendops/tend/api/v1alpha1"

	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/evals/scenario"
	"github.com/tendops/tend/evals/sim"
	"github.com/tendops/tend/internal/localstack"
)

// Brains of the agents (see agents.Brains): BrainDeterministic is the
// runbooks alone, the only one that runs without an LLM.
const (
	BrainDeterministic = agents.BrainDeterministic
	BrainLLM           = agents.BrainLLM
	BrainHybrid        = agents.BrainHybrid
	BrainNone          = agents.BrainNone
)

// ErrNoScenarios is returned when there is nothing to run.
var ErrNoScenarios = errors.New("harness: no scenarios")

// Options configure a run of the suite.
type Options struct {
	// Scenarios to run.
	Scenarios []*scenario.Scenario
	// Runs per scenario (n of pass@1).
	Runs int
	// Seed draws the parameters of every run; the report records it.
	Seed uint64
	// Concurrency is how many scenario runs go at once.
	Concurrency int
	// Out is where summary.json, report.md and chart.svg go.
	Out string
	// BinDir holds the control-plane binaries.
	BinDir string
	// WorkDir holds the stack's cluster and NATS store.
	WorkDir string
	// Stack, if set, is reused instead of starting one; its simulator must
	// know the app profiles of every run (see StartStack).
	Stack *Stack
	// Brain of the agents; BrainDeterministic when empty.
	Brain string
	// LLM configures the planner of the llm and hybrid brains: its model
	// (resolved here when not yet), budgets and timeouts.
	LLM planner.Options
	// Tracer, if set, records the planner's spans.
	Tracer trace.Tracer
	// Progress receives one line per step; may be nil.
	Progress io.Writer
	// Logger for the stack's components.
	Logger logr.Logger
}

// Validate checks the options.
func (o *Options) Validate() error {
	if len(o.Scenarios) == 0 {
		return ErrNoScenarios
	}
	if o.Runs < 1 || o.Runs > 100 {
		return fmt.Errorf("runs must be between 1 and 100, not %d", o.Runs)
	}
	if o.Concurrency < 1 {
		return fmt.Errorf("concurrency must be at least 1, not %d", o.Concurrency)
	}
	if o.Brain == "" {
		o.Brain = BrainDeterministic
	}
	b := planner.Brain{Name: o.Brain, LLM: o.LLM}
	if err := b.Resolve(); err != nil {
		return err
	}
	o.LLM = b.LLM
	if o.Out == "" {
		return errors.New("an output directory is required")
	}
	return nil
}

// forBrain returns scs as a suite run with brain sees them: a scenario
// expected to fail only with other brains (a probe of the harness that the
// runbooks heal) is an ordinary scenario here.
func forBrain(scs []*scenario.Scenario, brain string) []*scenario.Scenario {
	out := make([]*scenario.Scenario, len(scs))
	for i, sc := range scs {
		out[i] = sc
		if sc.ExpectedFailure != nil && !sc.ExpectedFailure.For(brain) {
			cp := *sc
			cp.ExpectedFailure = nil
			out[i] = &cp
		}
	}
	return out
}

// instancesFor draws the runs' scenarios as a suite run with brain sees
// them: an instance is drawn from the scenario's source again, and so gets
// back an expectation forBrain took away.
func instancesFor(scs []*scenario.Scenario, seed uint64, runs int, brain string) ([][]*scenario.Scenario, error) {
	ins, err := Instances(scs, seed, runs)
	if err != nil {
		return nil, err
	}
	for i := range ins {
		ins[i] = forBrain(ins[i], brain)
	}
	return ins, nil
}

// Instances draws the scenario of every run: instances[i][r] is run r+1 of
// scs[i].
func Instances(scs []*scenario.Scenario, seed uint64, runs int) ([][]*scenario.Scenario, error) {
	out := make([][]*scenario.Scenario, len(scs))
	for i, sc := range scs {
		for r := 1; r <= runs; r++ {
			in, err := sc.Instance(seed, r)
			if err != nil {
				return nil, fmt.Errorf("scenario %s run %d: %w", sc.Name, r, err)
			}
			out[i] = append(out[i], in)
		}
	}
	return out, nil
}

// Profiles gathers the app profiles of scenarios, for the simulator.
func Profiles(scs []*scenario.Scenario) []sim.Profile {
	var ps []sim.Profile
	for _, s := range scs {
		ps = append(ps, s.Profiles...)
	}
	return ps
}

// Stack is the local stack with the node-side simulators the scenarios
// need (the kubelet's environment resolution, a local-path provisioner),
// and the app profiles its simulator was started with.
type Stack struct {
	*localstack.Stack
	sim      *localstack.Simulator
	profiles map[string]string
	// reader reads the cluster from a watch-fed cache: the oracle looks
	// often, and must not load the API server it measures.
	reader     client.Reader
	stopReader context.CancelFunc
	readerDone chan struct{}
	// changes wakes whoever waits on a namespace when an object the oracle
	// reads changes there (or a node changes).
	changes *notifier
}

// notifier wakes subscribers of a namespace; wake-ups coalesce.
type notifier struct {
	mu   sync.Mutex
	subs map[string][]chan struct{}
}

// subscribe returns a channel that receives after changes in ns, and its
// cancellation.
func (n *notifier) subscribe(ns string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.subs == nil {
		n.subs = map[string][]chan struct{}{}
	}
	n.subs[ns] = append(n.subs[ns], ch)
	return ch, func() {
		n.mu.Lock()
		defer n.mu.Unlock()
		n.subs[ns] = slices.DeleteFunc(n.subs[ns], func(c chan struct{}) bool { return c == ch })
	}
}

// nodesKey is what subscribers of node changes subscribe to.
const nodesKey = "/nodes"

// notify wakes the subscribers of ns.
func (n *notifier) notify(ns string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, chs := range n.subs {
		if k != ns {
			continue
		}
		for _, ch := range chs {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// Stop stops the cache, the simulators and the stack.
func (s *Stack) Stop() {
	if s.stopReader != nil {
		s.stopReader()
		<-s.readerDone
	}
	if s.sim != nil {
		s.sim.Stop()
	}
	s.Stack.Stop()
}

// watched are the kinds the oracle reads, cached from the start.
func watched() []client.Object {
	return []client.Object{&appsv1.Deployment{}, &appsv1.StatefulSet{}, &appsv1.DaemonSet{}, &appsv1.ReplicaSet{}, &appsv1.ControllerRevision{},
		&batchv1.Job{}, &batchv1.CronJob{}, &corev1.Pod{}, &corev1.Service{}, &discoveryv1.EndpointSlice{}, &corev1.ConfigMap{}, &corev1.Secret{},
		&corev1.PersistentVolumeClaim{}, &corev1.ResourceQuota{}, &corev1.LimitRange{}, &networkingv1.NetworkPolicy{}, &policyv1.PodDisruptionBudget{},
		&autoscalingv2.HorizontalPodAutoscaler{}, &tendv1.Proposal{}, &tendv1.Approval{}, &corev1.Node{},
		&rbacv1.ClusterRole{}, &rbacv1.ClusterRoleBinding{}, &rbacv1.Role{}, &rbacv1.RoleBinding{}}
}

// startReader starts the oracle's cache.
func (s *Stack) startReader(ctx context.Context) error {
	ca, err := cache.New(s.Config, cache.Options{Scheme: localstack.Scheme()})
	if err != nil {
		return fmt.Errorf("failed to create the oracle's cache: %w", err)
	}
	s.changes = &notifier{}
	wake := func(obj any) {
		if t, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = t.Obj
		}
		switch o := obj.(type) {
		case *corev1.Node:
			s.changes.notify(nodesKey)
		case client.Object:
			s.changes.notify(o.GetNamespace())
		}
	}
	handler := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    wake,
		UpdateFunc: func(_, obj any) { wake(obj) },
		DeleteFunc: wake,
	}
	for _, o := range watched() {
		inf, err := ca.GetInformer(ctx, o)
		if err != nil {
			return fmt.Errorf("failed to watch %T: %w", o, err)
		}
		// Wake on what moves as a fault takes effect and on the objects
		// whose spec a state predicate reads (an autoscaler, a Service, a
		// NetworkPolicy), which a fault may change in one write.
		switch o.(type) {
		case *corev1.Pod, *appsv1.Deployment, *appsv1.StatefulSet, *appsv1.DaemonSet, *appsv1.ReplicaSet, *batchv1.Job,
			*discoveryv1.EndpointSlice, *corev1.Node, *tendv1.Proposal,
			*autoscalingv2.HorizontalPodAutoscaler, *corev1.Service, *networkingv1.NetworkPolicy:
			if _, err := inf.AddEventHandler(handler); err != nil {
				return fmt.Errorf("failed to watch %T: %w", o, err)
			}
		}
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	s.stopReader, s.readerDone = cancel, make(chan struct{})
	go func() {
		defer close(s.readerDone)
		_ = ca.Start(runCtx)
	}()
	syncCtx, cancelSync := context.WithTimeout(ctx, time.Minute)
	defer cancelSync()
	if !ca.WaitForCacheSync(syncCtx) {
		return errors.New("harness: the oracle's cache did not sync within a minute")
	}
	s.reader = ca
	return nil
}

// knows reports whether the stack's simulator was started with a profile
// identical to each of the scenario's.
func (s *Stack) knows(sc *scenario.Scenario) error {
	for _, p := range sc.Profiles {
		b, err := json.Marshal(p)
		if err != nil {
			return err
		}
		for _, t := range p.Tags {
			if s.profiles[p.Image+":"+t] != string(b) {
				return fmt.Errorf("the stack's simulator does not know the profile of %s:%s that %s uses: start the stack with the runs' instances", p.Image, t, sc.Name)
			}
		}
	}
	return nil
}

// StartStack starts the local stack with a simulator that knows the app
// profiles of every run of the scenarios (their instances for seed and
// runs), proposal verification tuned for evals, and the node-side
// simulators.
func StartStack(ctx context.Context, scs []*scenario.Scenario, seed uint64, runs int, binDir, workDir string, logger logr.Logger, progress func(string, ...any)) (*Stack, error) {
	ins, err := Instances(scs, seed, runs)
	if err != nil {
		return nil, err
	}
	var all []*scenario.Scenario
	for _, in := range ins {
		all = append(all, in...)
	}
	profiles := Profiles(all)
	sfs, err := sim.Faults(profiles)
	if err != nil {
		return nil, err
	}
	known := map[string]string{}
	for _, p := range profiles {
		b, err := json.Marshal(p)
		if err != nil {
			return nil, err
		}
		for _, t := range p.Tags {
			known[p.Image+":"+t] = string(b)
		}
	}
	faults := make([]localstack.Fault, 0, len(sfs))
	for _, f := range sfs {
		faults = append(faults, localstack.Fault{Name: f.Name, When: f.When, Pod: f.Pod, Kind: localstack.FaultKind(f.Kind), Reason: f.Reason,
			ExitCode: f.ExitCode, EventReason: f.EventReason, Message: f.Message, Seconds: f.Seconds, Images: f.Images})
	}
	st, err := localstack.Start(ctx, localstack.Options{
		BinDir:      binDir,
		WorkDir:     workDir,
		ClusterName: "evals",
		Nodes:       4,
		Faults:      faults,
		// Node faults stop heartbeats: the node must go NotReady within a
		// scenario's timeouts.
		RealisticHeartbeats: true,
		Proposal:            controllers.ProposalOptions{StableWindow: 10 * time.Second, VerifyTimeout: 60 * time.Second},
		Progress:            progress,
		Logger:              logger,
	})
	if err != nil {
		return nil, err
	}
	s, err := localstack.StartSimulator(ctx, st.Config, localstack.SimulatorOptions{Faults: faults, Logger: logger.WithName("simulator")})
	if err != nil {
		st.Stop()
		return nil, err
	}
	if progress != nil {
		progress("Simulated kubelet (environment from ConfigMaps and Secrets) and local-path provisioner running")
	}
	hs := &Stack{Stack: st, sim: s, profiles: known}
	if err := hs.startReader(ctx); err != nil {
		hs.Stop()
		return nil, err
	}
	return hs, nil
}

// job is one run of one scenario.
type job struct {
	sc  *scenario.Scenario
	idx int
	run int
}

// Run runs every scenario Runs times and writes the summary, the report
// and the chart to Out. Scenarios run concurrently, each run in its own
// namespace; exclusive scenarios run after them, one run at a time, with
// the gate's breaker reset before each.
func Run(ctx context.Context, o Options) (*Summary, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	out := o.Progress
	if out == nil {
		out = io.Discard
	}
	var mu sync.Mutex
	say := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Fprintf(out, format+"\n", args...)
	}
	started := time.Now()
	o.Scenarios = forBrain(o.Scenarios, o.Brain)
	ins, err := instancesFor(o.Scenarios, o.Seed, o.Runs, o.Brain)
	if err != nil {
		return nil, err
	}
	st := o.Stack
	if st == nil {
		st, err = StartStack(ctx, o.Scenarios, o.Seed, o.Runs, o.BinDir, o.WorkDir, o.Logger, func(f string, a ...any) { say("» "+f, a...) })
		if err != nil {
			return nil, err
		}
		defer st.Stop()
	}
	for _, in := range ins {
		for _, sc := range in {
			if err := st.knows(sc); err != nil {
				return nil, err
			}
		}
	}
	e, err := newEnv(st)
	if err != nil {
		return nil, err
	}
	// The agent runs the brain of this run, and what its planner spends is
	// counted per run; a reused stack gets its brain back after.
	if prev := st.Brain(); prev != o.Brain {
		if err := st.SetBrain(ctx, planner.Brain{Name: o.Brain, LLM: o.LLM, Tracer: o.Tracer}); err != nil {
			return nil, err
		}
		if prev != "" {
			defer func() { _ = st.SetBrain(context.WithoutCancel(ctx), planner.Brain{Name: prev, LLM: o.LLM}) }()
		}
	}
	plans := watchPlans(st)
	defer plans.stop()

	var shared, exclusive []job
	for r := 1; r <= o.Runs; r++ {
		for i, sc := range o.Scenarios {
			j := job{sc: ins[i][r-1], idx: i, run: r}
			if sc.Exclusive {
				exclusive = append(exclusive, j)
			} else {
				shared = append(shared, j)
			}
		}
	}
	// Longest runs first, so that the last ones to finish are short.
	slices.SortStableFunc(shared, func(a, b job) int { return cmp.Compare(longest(b.sc), longest(a.sc)) })
	total := len(shared) + len(exclusive)
	results := make(map[string][]RunResult)
	var done int
	record := func(j job, res RunResult) {
		if o.Brain == BrainLLM || o.Brain == BrainHybrid {
			res.LLM = plans.take(res.Namespace)
		}
		mu.Lock()
		results[j.sc.Name] = append(results[j.sc.Name], res)
		done++
		n := done
		mu.Unlock()
		say("[%2d/%d] %-36s run %d: %s", n, total, j.sc.Name, j.run, res.line())
	}
	say("Running %d scenarios × %d runs, %d at a time, then %d exclusive runs one by one (brain: %s, seed: %d)",
		len(o.Scenarios), o.Runs, o.Concurrency, len(exclusive), o.Brain, o.Seed)
	var notes []string
	if at := min(o.Concurrency, len(shared)); at > 1 {
		if err := e.shareLimits(ctx, at); err != nil {
			return nil, err
		}
		defer func() { _ = e.unshareLimits(context.WithoutCancel(ctx)) }()
		say("Cluster-wide guard limits × %d while runs share the cluster (GatePolicy %s); the defaults for exclusive runs", at, SharedLimitsPolicy)
	}
	sem := make(chan struct{}, o.Concurrency)
	var wg sync.WaitGroup
	for _, j := range shared {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break // the runs in flight see the cancellation and tear down
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, teardown := e.runOne(ctx, j.sc, j.run, false)
			<-sem
			if why := e.resetTrippedBreaker(ctx); why != "" {
				mu.Lock()
				notes = append(notes, fmt.Sprintf("The cluster circuit breaker tripped while runs shared the cluster (%s); the harness reset it. Runs whose proposals met it are reported as interference.", why))
				mu.Unlock()
			}
			record(j, res)
			teardown()
		}()
	}
	// Exclusive runs start once every other run and its namespace are gone,
	// under the default limits.
	wg.Wait()
	if len(exclusive) > 0 && ctx.Err() == nil {
		if err := e.unshareLimits(ctx); err != nil {
			return nil, err
		}
	}
	for _, j := range exclusive {
		if ctx.Err() != nil {
			break
		}
		if err := e.resetBreaker(ctx); err != nil {
			return nil, err
		}
		res, teardown := e.runOne(ctx, j.sc, j.run, true)
		teardown()
		record(j, res)
	}
	if err := e.resetBreaker(context.WithoutCancel(ctx)); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	sum := Summarize(o.Scenarios, results, o.Brain, started, time.Now())
	sum.Seed = o.Seed
	sum.Notes = notes
	if err := Write(o.Out, sum); err != nil {
		return nil, err
	}
	say("Wrote %s, %s and %s", filepath.Join(o.Out, "summary.json"), filepath.Join(o.Out, "report.md"), filepath.Join(o.Out, "chart.svg"))
	return sum, nil
}

// longest bounds how long a run of a scenario can take.
func longest(sc *scenario.Scenario) time.Duration {
	return sc.Timeouts.Baseline.Duration + sc.Timeouts.Manifest.Duration + sc.Timeouts.Mitigate.Duration
}

// env holds the clients of a run of the suite.
type env struct {
	stack *Stack
	// admin applies baselines; injector injects faults; reader reads state.
	admin, injector client.Client
	reader          client.Reader
	mu              sync.Mutex
	// approvers are the clients of scripted approvers, by user.
	approvers map[string]client.Client
}

func newEnv(st *Stack) (*env, error) {
	e := &env{stack: st, admin: st.Client, injector: st.Client, reader: st.reader, approvers: map[string]client.Client{}}
	if e.reader == nil {
		e.reader = st.Client
	}
	if st.Cluster != nil {
		c, err := e.userClient(InjectorUser, []string{"system:masters"})
		if err != nil {
			return nil, err
		}
		e.injector = c
	}
	return e, nil
}

// userClient is a client that the API server authenticates as user, in
// groups, by a client certificate its CA signed.
func (e *env) userClient(user string, groups []string) (client.Client, error) {
	if e.stack.Cluster == nil {
		return nil, errors.New("harness: users other than the admin need the local cluster's CA")
	}
	kc, err := e.stack.Cluster.UserKubeconfig(user, groups)
	if err != nil {
		return nil, err
	}
	cfg, err := localstack.RESTConfig(kc)
	if err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		return nil, fmt.Errorf("failed to create a client for %s: %w", user, err)
	}
	return c, nil
}

// approver is the client of a scripted approver, made once per user.
func (e *env) approver(user string) (client.Client, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if c, ok := e.approvers[user]; ok {
		return c, nil
	}
	c, err := e.userClient(user, []string{localstack.ApproverGroup})
	if err != nil {
		return nil, err
	}
	e.approvers[user] = c
	return c, nil
}

// resetBreaker closes the cluster circuit breaker, as `tend gate
// reset-breaker` does: failures and proposals before it stop counting.
func (e *env) resetBreaker(ctx context.Context) error {
	now := time.Now().UTC().Format(time.RFC3339)
	return controllers.UpdateGateState(ctx, e.admin, localstack.SystemNamespace, func(d map[string]string) {
		d[controllers.KeyBreakerTripped] = "false"
		d[controllers.KeyBreakerReason] = ""
		d[controllers.KeyBreakerResetAt] = now
	})
}

// resetTrippedBreaker resets a tripped cluster breaker and says why it had
// tripped; "" when it had not.
func (e *env) resetTrippedBreaker(ctx context.Context) string {
	gs, err := controllers.ReadGateState(ctx, e.admin, localstack.SystemNamespace)
	if err != nil || !gs.Breaker.Tripped {
		return ""
	}
	if err := e.resetBreaker(context.WithoutCancel(ctx)); err != nil {
		return gs.Breaker.Reason + "; the reset failed: " + err.Error()
	}
	return gs.Breaker.Reason
}

// InjectorUser is the identity faults are injected under.
const InjectorUser = "tend-eval-injector"

func randomID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
