package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/discovery"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/api/crds"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/controllers"
	"github.com/tendops/tend/internal/localstack"
)

// Outcomes of a doctor check.
const (
	checkOK   = "OK"
	checkWarn = "WARN"
	checkFail = "FAIL"
	checkSkip = "SKIP"
)

// doctorCheck is one line of tend doctor's report.
type doctorCheck struct {
	Name   string `json:"name"`
	Result string `json:"result"`
	Detail string `json:"detail"`
}

// minVAPMinor is the first Kubernetes 1.x release that serves
// ValidatingAdmissionPolicy as GA, which tend's approval checks need.
const minVAPMinor = 30

type doctorOptions struct {
	kube    kubeOptions
	system  string
	natsURL string
	nats    bus.Auth
	timeout time.Duration
	out     outputOptions
}

func newDoctorCommand() *cobra.Command {
	o := &doctorOptions{}
	cmd := &cobra.Command{
		Use:   "doctor",
		Short: "Check a cluster (and its NATS) for what tend needs",
		Long: `Check a cluster for what tend needs, and say what is missing and why it matters:

  API server      reachable, and 1.30 or newer (ValidatingAdmissionPolicy is GA there;
                  tend's approval and proposal checks are admission policies)
  admission API   admissionregistration.k8s.io/v1 serves validatingadmissionpolicies
  CRDs            every tend.dev CRD installed and Established
  admission       tend's admission policies and their bindings installed
  RBAC            tend's ClusterRoles installed and the same as this version's
  gate            the gate state ConfigMap (a missing one engages the kill switch) and
                  at least one GatePolicy (with none, every proposal needs a human)
  metrics API     metrics.k8s.io served (usage telemetry and rightsizing need it)
  Secrets         every Secret that tend's in-cluster components mount or read (NATS
                  credentials, the LLM API key) exists and has the keys they name
  NATS            with --nats-url: reachable with the credentials given, and the
                  TELEMETRY, PROPOSALS and AUDIT streams readable

It exits 1 when a check fails; warnings do not fail.`,
		Example: `  tend doctor
  tend doctor --context prod --nats-url tls://nats.tend-system:4222 --nats-creds ./doctor.creds`,
		Args:    cobra.NoArgs,
		PreRunE: func(*cobra.Command, []string) error { return o.out.validate() },
		RunE: func(cmd *cobra.Command, _ []string) error {
			checks := o.run(cmd.Context())
			if !o.out.table() {
				r, err := report("Doctor", map[string]any{"checks": checks})
				if err != nil {
					return err
				}
				if err := o.out.print(cmd.OutOrStdout(), r); err != nil {
					return err
				}
			} else {
				printChecks(cmd.OutOrStdout(), checks)
			}
			var failed []string
			for _, c := range checks {
				if c.Result == checkFail {
					failed = append(failed, c.Name)
				}
			}
			if len(failed) > 0 {
				return fmt.Errorf("%d checks failed: %s", len(failed), strings.Join(failed, ", "))
			}
			return nil
		},
	}
	o.kube.bind(cmd, false)
	f := cmd.Flags()
	systemNamespaceFlag(cmd, &o.system)
	f.StringVar(&o.natsURL, "nats-url", "", "NATS server to check (skipped when empty)")
	f.StringVar(&o.nats.CredsFile, "nats-creds", "", "NATS credentials file to connect with")
	f.StringVar(&o.nats.NKeySeedFile, "nats-nkey", "", "file with an nkey seed to connect with")
	f.StringVar(&o.nats.CAFile, "nats-ca", "", "CA certificate that signs the NATS server's (TLS)")
	f.StringVar(&o.nats.CertFile, "nats-cert", "", "client certificate for mutual TLS")
	f.StringVar(&o.nats.KeyFile, "nats-key", "", "client key for mutual TLS")
	f.DurationVar(&o.timeout, "check-timeout", 10*time.Second, "how long each check may take")
	o.out.bind(cmd)
	return cmd
}

// run runs every check, going on after failures, so one report says all.
func (o *doctorOptions) run(ctx context.Context) []doctorCheck {
	var out []doctorCheck
	add := func(name, result, format string, args ...any) {
		out = append(out, doctorCheck{Name: name, Result: result, Detail: fmt.Sprintf(format, args...)})
	}
	cfg, err := o.kube.restConfig()
	if err != nil {
		add("API server", checkFail, "%v", err)
		return append(out, o.checkNATS(ctx))
	}
	cfg.Timeout = o.timeout
	dc, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		add("API server", checkFail, "%v", err)
		return append(out, o.checkNATS(ctx))
	}
	v, err := dc.ServerVersion()
	if err != nil {
		add("API server", checkFail, "not reachable at %s: %v", cfg.Host, err)
		return append(out, o.checkNATS(ctx))
	}
	major, errMajor := strconv.Atoi(strings.TrimRight(v.Major, "+"))
	minor, errMinor := strconv.Atoi(strings.TrimRight(v.Minor, "+"))
	switch {
	case errMajor != nil || errMinor != nil:
		// Some builds report no major and minor; the admission API check
		// below still says whether what tend needs is served.
		add("API server", checkWarn, "%s at %s does not report its version (major %q, minor %q); tend needs 1.%d or newer", v.GitVersion, cfg.Host, v.Major, v.Minor, minVAPMinor)
	case major < 1 || major == 1 && minor < minVAPMinor:
		add("API server", checkFail, "%s at %s is too old: tend needs 1.%d or newer, where ValidatingAdmissionPolicy is GA", v.GitVersion, cfg.Host, minVAPMinor)
	default:
		add("API server", checkOK, "%s at %s", v.GitVersion, cfg.Host)
	}
	if served(dc, "admissionregistration.k8s.io/v1", "validatingadmissionpolicies") {
		add("admission API", checkOK, "admissionregistration.k8s.io/v1 serves validatingadmissionpolicies")
	} else {
		add("admission API", checkFail, "admissionregistration.k8s.io/v1 does not serve validatingadmissionpolicies: approvals cannot be checked by the API server")
	}
	c, err := client.New(cfg, client.Options{Scheme: localstack.Scheme()})
	if err != nil {
		add("CRDs", checkFail, "%v", err)
		return append(out, o.checkNATS(ctx))
	}
	out = append(out, checkCRDs(ctx, c), checkAdmission(ctx, c, o.system), checkRBAC(ctx, c), checkGate(ctx, c, o.system), checkSecrets(ctx, c, o.system))
	if served(dc, "metrics.k8s.io/v1beta1", "pods") {
		add("metrics API", checkOK, "metrics.k8s.io/v1beta1 serves pod and node usage")
	} else {
		add("metrics API", checkWarn, "metrics.k8s.io is not served (install metrics-server): telemetry carries no CPU or memory usage, and rightsizing has nothing to read")
	}
	return append(out, o.checkNATS(ctx))
}

// served reports whether the group version serves the resource.
func served(dc discovery.DiscoveryInterface, gv, resource string) bool {
	list, err := dc.ServerResourcesForGroupVersion(gv)
	if err != nil {
		return false
	}
	return slices.ContainsFunc(list.APIResources, func(r metav1.APIResource) bool { return r.Name == resource })
}

func checkCRDs(ctx context.Context, c client.Client) doctorCheck {
	want, err := crds.All()
	if err != nil {
		return doctorCheck{Name: "CRDs", Result: checkFail, Detail: err.Error()}
	}
	var missing, notReady []string
	for _, w := range want {
		got := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.Get(ctx, client.ObjectKey{Name: w.Name}, got); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, w.Name)
				continue
			}
			return doctorCheck{Name: "CRDs", Result: checkFail, Detail: fmt.Sprintf("failed to read CRD %s: %v", w.Name, err)}
		}
		established := slices.ContainsFunc(got.Status.Conditions, func(c apiextensionsv1.CustomResourceDefinitionCondition) bool {
			return c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue
		})
		switch {
		case got.DeletionTimestamp != nil:
			notReady = append(notReady, w.Name+" (being deleted)")
		case !established:
			notReady = append(notReady, w.Name)
		}
	}
	switch {
	case len(missing) > 0:
		return doctorCheck{Name: "CRDs", Result: checkFail, Detail: "missing: " + strings.Join(missing, ", ") + " (install the chart, or run tend up --kubeconfig)"}
	case len(notReady) > 0:
		return doctorCheck{Name: "CRDs", Result: checkFail, Detail: "not Established: " + strings.Join(notReady, ", ")}
	}
	return doctorCheck{Name: "CRDs", Result: checkOK, Detail: fmt.Sprintf("%d tend.dev CRDs Established", len(want))}
}

func checkAdmission(ctx context.Context, c client.Client, system string) doctorCheck {
	var missing []string
	want := localstack.AdmissionPolicies(system)
	for _, w := range want {
		got := w.DeepCopyObject().(client.Object)
		if err := c.Get(ctx, client.ObjectKeyFromObject(w), got); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, fmt.Sprintf("%T %s", w, w.GetName()))
				continue
			}
			return doctorCheck{Name: "admission", Result: checkFail, Detail: fmt.Sprintf("failed to read %s: %v", w.GetName(), err)}
		}
	}
	if len(missing) > 0 {
		return doctorCheck{Name: "admission", Result: checkFail, Detail: "missing: " + strings.Join(trimTypes(missing), ", ") + "; without them the API server does not check who approves or proposes"}
	}
	return doctorCheck{Name: "admission", Result: checkOK, Detail: fmt.Sprintf("%d admission policies and bindings installed", len(want))}
}

// trimTypes shortens "*v1.ValidatingAdmissionPolicy name" to
// "ValidatingAdmissionPolicy name".
func trimTypes(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		if _, after, ok := strings.Cut(v, "."); ok {
			v = after
		}
		out[i] = v
	}
	return out
}

func checkRBAC(ctx context.Context, c client.Client) doctorCheck {
	var missing, differ []string
	for _, w := range localstack.ClusterRoles() {
		got := &rbacv1.ClusterRole{}
		if err := c.Get(ctx, client.ObjectKey{Name: w.Name}, got); err != nil {
			if apierrors.IsNotFound(err) {
				missing = append(missing, w.Name)
				continue
			}
			return doctorCheck{Name: "RBAC", Result: checkFail, Detail: fmt.Sprintf("failed to read ClusterRole %s: %v", w.Name, err)}
		}
		if !equality.Semantic.DeepEqual(normalRules(got.Rules), normalRules(w.Rules)) {
			differ = append(differ, w.Name)
		}
	}
	switch {
	case len(missing) > 0:
		return doctorCheck{Name: "RBAC", Result: checkFail, Detail: "ClusterRoles missing: " + strings.Join(missing, ", ")}
	case len(differ) > 0:
		return doctorCheck{Name: "RBAC", Result: checkWarn, Detail: "ClusterRoles differ from this version's (upgrade the chart): " + strings.Join(differ, ", ")}
	}
	return doctorCheck{Name: "RBAC", Result: checkOK, Detail: fmt.Sprintf("%d ClusterRoles installed as this version has them", len(localstack.ClusterRoles()))}
}

// normalRules treats empty and nil lists alike.
func normalRules(rs []rbacv1.PolicyRule) []rbacv1.PolicyRule {
	out := make([]rbacv1.PolicyRule, len(rs))
	for i, r := range rs {
		out[i] = rbacv1.PolicyRule{Verbs: nonNil(r.Verbs), APIGroups: nonNil(r.APIGroups), Resources: nonNil(r.Resources),
			ResourceNames: nonNil(r.ResourceNames), NonResourceURLs: nonNil(r.NonResourceURLs)}
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func checkGate(ctx context.Context, c client.Client, system string) doctorCheck {
	cm := &corev1.ConfigMap{}
	err := c.Get(ctx, client.ObjectKey{Namespace: system, Name: controllers.GateStateName}, cm)
	switch {
	case apierrors.IsNotFound(err):
		return doctorCheck{Name: "gate", Result: checkWarn, Detail: fmt.Sprintf("ConfigMap %s/%s is missing, so the kill switch counts as engaged: nothing is applied (`tend gate kill-switch off` creates it)", system, controllers.GateStateName)}
	case err != nil:
		return doctorCheck{Name: "gate", Result: checkFail, Detail: fmt.Sprintf("failed to read the gate state: %v", err)}
	}
	st := controllers.ParseGateState(cm)
	var gps tendv1.GatePolicyList
	if err := c.List(ctx, &gps); err != nil {
		return doctorCheck{Name: "gate", Result: checkFail, Detail: fmt.Sprintf("failed to list GatePolicies: %v", err)}
	}
	var notes []string
	result := checkOK
	if st.KillSwitch {
		result = checkWarn
		notes = append(notes, "the kill switch is engaged")
	}
	if st.Breaker.Tripped {
		result = checkWarn
		notes = append(notes, "the circuit breaker is open: "+st.Breaker.Reason)
	}
	if len(gps.Items) == 0 {
		result = checkWarn
		notes = append(notes, "no GatePolicy: every proposal needs a human")
	} else {
		notes = append(notes, fmt.Sprintf("%d GatePolicies", len(gps.Items)))
	}
	return doctorCheck{Name: "gate", Result: result, Detail: strings.Join(notes, "; ")}
}

// checkSecrets reads the pod templates of tend's Deployments in the
// system namespace (the chart's, labelled app.kubernetes.io/name=tend) and
// checks that every Secret they mount or read, and every key they name,
// exists: a missing one leaves the component's pods stuck creating, or
// the agent without its LLM key, with nothing in tend's own status to say
// so. Optional references are not required.
func checkSecrets(ctx context.Context, c client.Client, system string) doctorCheck {
	const name = "Secrets"
	var deps appsv1.DeploymentList
	if err := c.List(ctx, &deps, client.InNamespace(system), client.MatchingLabels{"app.kubernetes.io/name": "tend"}); err != nil {
		return doctorCheck{Name: name, Result: checkWarn, Detail: fmt.Sprintf("cannot list the Deployments in %s: %v", system, err)}
	}
	if len(deps.Items) == 0 {
		return doctorCheck{Name: name, Result: checkSkip, Detail: fmt.Sprintf("no tend Deployments in %s (tend runs outside the cluster, e.g. tend up)", system)}
	}
	var problems []string
	secrets := map[string]*corev1.Secret{}
	read := func(ref string) (*corev1.Secret, error) {
		if s, ok := secrets[ref]; ok {
			return s, nil
		}
		s := &corev1.Secret{}
		err := c.Get(ctx, client.ObjectKey{Namespace: system, Name: ref}, s)
		if apierrors.IsNotFound(err) {
			s = nil
		} else if err != nil {
			return nil, err
		}
		secrets[ref] = s
		return s, nil
	}
	checked := 0
	for _, d := range deps.Items {
		for _, ref := range secretRefs(d.Spec.Template.Spec) {
			checked++
			s, err := read(ref.secret)
			switch {
			case err != nil:
				return doctorCheck{Name: name, Result: checkWarn, Detail: fmt.Sprintf("cannot read Secret %s/%s: %v", system, ref.secret, err)}
			case s == nil:
				problems = append(problems, fmt.Sprintf("%s: Secret %s (%s) does not exist", d.Name, ref.secret, ref.use))
			default:
				for _, k := range ref.keys {
					if _, ok := s.Data[k]; !ok {
						problems = append(problems, fmt.Sprintf("%s: Secret %s (%s) has no key %q", d.Name, ref.secret, ref.use, k))
					}
				}
			}
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return doctorCheck{Name: name, Result: checkFail, Detail: strings.Join(problems, "; ")}
	}
	return doctorCheck{Name: name, Result: checkOK, Detail: fmt.Sprintf("%d Secret references of %d Deployments resolve", checked, len(deps.Items))}
}

// secretRef is one required reference of a pod to a Secret.
type secretRef struct {
	secret string
	use    string // what refers to it: a volume or an environment variable
	keys   []string
}

// secretRefs lists the required Secret references of a pod: secret
// volumes (with their items' keys), projected secret sources, and
// environment variables from Secrets.
func secretRefs(pod corev1.PodSpec) []secretRef {
	var out []secretRef
	optional := func(o *bool) bool { return o != nil && *o }
	itemKeys := func(items []corev1.KeyToPath) []string {
		var keys []string
		for _, it := range items {
			keys = append(keys, it.Key)
		}
		return keys
	}
	for _, v := range pod.Volumes {
		switch {
		case v.Secret != nil && !optional(v.Secret.Optional):
			use := "volume " + v.Name
			if v.Name == "llm-key" {
				use = "the LLM API key, volume " + v.Name
			}
			out = append(out, secretRef{secret: v.Secret.SecretName, use: use, keys: itemKeys(v.Secret.Items)})
		case v.Projected != nil:
			for _, src := range v.Projected.Sources {
				if src.Secret != nil && !optional(src.Secret.Optional) {
					out = append(out, secretRef{secret: src.Secret.Name, use: "volume " + v.Name, keys: itemKeys(src.Secret.Items)})
				}
			}
		}
	}
	for _, ctr := range slices.Concat(pod.InitContainers, pod.Containers) {
		for _, e := range ctr.Env {
			if r := e.ValueFrom; r != nil && r.SecretKeyRef != nil && !optional(r.SecretKeyRef.Optional) {
				out = append(out, secretRef{secret: r.SecretKeyRef.Name, use: "env " + e.Name + " of " + ctr.Name, keys: []string{r.SecretKeyRef.Key}})
			}
		}
		for _, e := range ctr.EnvFrom {
			if e.SecretRef != nil && !optional(e.SecretRef.Optional) {
				out = append(out, secretRef{secret: e.SecretRef.Name, use: "envFrom of " + ctr.Name})
			}
		}
	}
	return out
}

// checkNATS connects with the credentials given and reads the streams
// tend's components use.
func (o *doctorOptions) checkNATS(ctx context.Context) doctorCheck {
	if o.natsURL == "" {
		return doctorCheck{Name: "NATS", Result: checkSkip, Detail: "no --nats-url given"}
	}
	opts, err := o.nats.Options()
	if err != nil {
		return doctorCheck{Name: "NATS", Result: checkFail, Detail: err.Error()}
	}
	opts = append(opts, nats.Name("tend-doctor"), nats.Timeout(o.timeout), nats.MaxReconnects(0))
	nc, err := nats.Connect(o.natsURL, opts...)
	if err != nil {
		return doctorCheck{Name: "NATS", Result: checkFail, Detail: fmt.Sprintf("cannot connect to %s: %v", o.natsURL, err)}
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return doctorCheck{Name: "NATS", Result: checkFail, Detail: err.Error()}
	}
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	var problems []string
	for _, name := range []string{bus.StreamTelemetry, bus.StreamProposals, bus.StreamAudit} {
		_, err := js.Stream(ctx, name)
		switch {
		case errors.Is(err, jetstream.ErrStreamNotFound):
			problems = append(problems, name+" does not exist")
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s cannot be read with these credentials: %v", name, err))
		}
	}
	if len(problems) > 0 {
		return doctorCheck{Name: "NATS", Result: checkFail, Detail: fmt.Sprintf("connected to %s, but %s", nc.ConnectedUrlRedacted(), strings.Join(problems, "; "))}
	}
	return doctorCheck{Name: "NATS", Result: checkOK, Detail: fmt.Sprintf("connected to %s; TELEMETRY, PROPOSALS and AUDIT readable", nc.ConnectedUrlRedacted())}
}

func printChecks(out io.Writer, checks []doctorCheck) {
	w := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tRESULT\tDETAIL")
	for _, c := range checks {
		fmt.Fprintf(w, "%s\t%s\t%s\n", c.Name, c.Result, c.Detail)
	}
	_ = w.Flush()
}
