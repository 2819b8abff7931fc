package localstack

// The standing attack suite: one test file per invariant of tend's promise
// (attack_<invariant>_test.go), each playing an attacker against the whole
// local stack (real control plane, admission policies, authenticated NATS,
// every component running) and asserting the end state of the cluster, not
// only the error the attacker saw. They share one stack, started on first
// use and stopped by TestMain.

import (
	"context"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/agents"
	tendv1 "github.com/tendops/tend/api/v1alpha1"
	"github.com/tendops/tend/controllers"
)

var shared struct {
	once  sync.Once
	st    *Stack
	err   error
	stop  context.CancelFunc
	dir   string
	logCh chan string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.st != nil {
		shared.st.Stop()
		shared.stop()
	}
	if shared.dir != "" {
		_ = os.RemoveAll(shared.dir)
	}
	os.Exit(code)
}

// attackStack returns the shared stack, starting it on first use. Its
// verification window is long, so that a test can act on a proposal while
// it verifies.
func attackStack(t *testing.T) *Stack {
	t.Helper()
	if testing.Short() {
		t.Skip("the attack suite needs the local control plane")
	}
	bin := binDir(t)
	shared.once.Do(func() {
		ctx, cancel := context.WithCancel(context.Background())
		shared.stop = cancel
		dir, err := os.MkdirTemp("", "tend-attack-")
		if err != nil {
			shared.err = err
			return
		}
		shared.dir = dir
		shared.st, shared.err = Start(ctx, Options{
			BinDir:      bin,
			WorkDir:     dir,
			ClusterName: "attack",
			Nodes:       2,
			Proposal:    controllers.ProposalOptions{StableWindow: 20 * time.Second, VerifyTimeout: 3 * time.Minute},
			// TestLoopEndToEnd runs a stack of its own in this process.
			SkipControllerNameValidation: true,
		})
	})
	if shared.err != nil {
		t.Fatalf("failed to start the local stack: %v", shared.err)
	}
	return shared.st
}

// newG returns a Gomega whose Eventually waits long enough for a loaded
// 2-core machine.
func newG(t *testing.T) *WithT {
	g := NewWithT(t)
	g.SetDefaultEventuallyTimeout(90 * time.Second)
	g.SetDefaultEventuallyPollingInterval(250 * time.Millisecond)
	g.SetDefaultConsistentlyDuration(5 * time.Second)
	return g
}

// attackNamespace creates a namespace of the test's own.
func attackNamespace(t *testing.T, st *Stack, labels map[string]string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "attack-", Labels: labels}}
	if err := st.Client.Create(t.Context(), ns); err != nil {
		t.Fatalf("failed to create namespace: %v", err)
	}
	return ns.Name
}

// demoDeployment creates Deployment name of image DemoImage:version with
// replicas (newDemoDeployment).
func demoDeployment(t *testing.T, g *WithT, st *Stack, ns, name, version string, replicas int32, env ...corev1.EnvVar) *appsv1.Deployment {
	t.Helper()
	d := newDemoDeployment(ns, name, version, replicas, env...)
	g.Expect(st.Client.Create(t.Context(), d)).To(Succeed())
	return d
}

// newDemoDeployment is Deployment name of replicas pods labelled app=name,
// whose one container, web, runs DemoImage:version with env and asks for
// 10m of CPU.
func newDemoDeployment(ns, name, version string, replicas int32, env ...corev1.EnvVar) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: appsv1.DeploymentSpec{
			Replicas: ptr.To(replicas),
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{{
					Name: "web", Image: DemoImage + ":" + version, Env: env,
					Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("10m")}},
				}}},
			},
		},
	}
}

// waitHealthy waits until the Deployment's rollout is complete and ready.
func waitHealthy(g *WithT, st *Stack, d *appsv1.Deployment) {
	g.Eventually(func(g Gomega) {
		live := &appsv1.Deployment{}
		g.Expect(st.Client.Get(context.Background(), client.ObjectKeyFromObject(d), live)).To(Succeed())
		want := ptr.Deref(live.Spec.Replicas, 1)
		g.Expect(live.Status.ObservedGeneration).To(BeNumerically(">=", live.Generation))
		g.Expect(live.Status.ReadyReplicas).To(Equal(want))
		g.Expect(live.Status.UpdatedReplicas).To(Equal(want))
		g.Expect(live.Status.Replicas).To(Equal(want))
	}).Should(Succeed())
}

// setImage rolls the Deployment out to another version of the demo image.
func setImage(t *testing.T, g *WithT, st *Stack, d *appsv1.Deployment, version string) {
	t.Helper()
	g.Eventually(func(g Gomega) {
		live := &appsv1.Deployment{}
		g.Expect(st.Client.Get(t.Context(), client.ObjectKeyFromObject(d), live)).To(Succeed())
		live.Spec.Template.Spec.Containers[0].Image = DemoImage + ":" + version
		g.Expect(st.Client.Update(t.Context(), live)).To(Succeed())
	}).Should(Succeed())
}

// deployment reads the live Deployment.
func deployment(g Gomega, st *Stack, d *appsv1.Deployment) *appsv1.Deployment {
	live := &appsv1.Deployment{}
	g.Expect(st.Client.Get(context.Background(), client.ObjectKeyFromObject(d), live)).To(Succeed())
	return live
}

// user returns a client acting as a certificate user of the cluster.
func user(t *testing.T, st *Stack, name string, groups ...string) client.Client {
	t.Helper()
	kc, err := st.Cluster.UserKubeconfig(name, groups)
	if err != nil {
		t.Fatalf("failed to make a kubeconfig for %s: %v", name, err)
	}
	cfg, err := RESTConfig(kc)
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(cfg, client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// grant binds a Role with rules to a user in namespace ns.
func grant(t *testing.T, st *Stack, ns, user string, rules ...rbacv1.PolicyRule) {
	t.Helper()
	name := "attack-" + rand.String(6)
	if err := st.Client.Create(t.Context(), &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	if err := st.Client.Create(t.Context(), &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	}); err != nil {
		t.Fatal(err)
	}
}

// agentTools is an MCP session as the maintenance agent's service account.
func agentTools(t *testing.T, st *Stack) *agents.ToolClient {
	t.Helper()
	tools, err := agents.DialTools(t.Context(), st.MCPURL, "attack-test", serviceAccountToken(st.Client, SystemNamespace, AgentAccount))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tools.Close() })
	return tools
}

// proposalsIn lists the proposals of a namespace.
func proposalsIn(g Gomega, st *Stack, ns string) []tendv1.Proposal {
	var list tendv1.ProposalList
	g.Expect(st.Client.List(context.Background(), &list, client.InNamespace(ns))).To(Succeed())
	return list.Items
}

// proposal reads a proposal again.
func proposal(g Gomega, st *Stack, ns, name string) *tendv1.Proposal {
	p := &tendv1.Proposal{}
	g.Expect(st.Client.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, p)).To(Succeed())
	return p
}

// waitPhase waits until the proposal reaches phase.
func waitPhase(g *WithT, st *Stack, ns, name string, phase tendv1.Phase) *tendv1.Proposal {
	var p *tendv1.Proposal
	g.Eventually(func(g Gomega) tendv1.Phase {
		p = proposal(g, st, ns, name)
		return p.Status.Phase
	}).Should(Equal(phase), func() string { return fmt.Sprintf("proposal %s/%s: %s", ns, name, p.Status.Message) })
	return p
}

var proposalsRule = func(verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{tendv1.GroupVersion.Group}, Resources: []string{"proposals"}, Verbs: verbs}
}

// rbacRule is a rule on one resource of group.
func rbacRule(group, resource string, verbs ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{group}, Resources: []string{resource}, Verbs: verbs}
}

// serviceAccountClient acts as one of tend's service accounts, as its
// component does.
func serviceAccountClient(t *testing.T, st *Stack, account string) client.Client {
	t.Helper()
	c, err := client.New(st.as(account), client.Options{Scheme: Scheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
