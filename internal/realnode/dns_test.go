package realnode

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/net/dns/dnsmessage"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestDNSAnswersServiceNames checks the stand-in for the cluster's DNS: a
// Service's name resolves to its cluster IP, and every other name, as the
// resolver tries it with each search domain, does not exist.
func TestDNSAnswersServiceNames(t *testing.T) {
	d := &dnsServer{cs: fake.NewClientset(
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "tend-system", Name: "tend-nats"}, Spec: corev1.ServiceSpec{ClusterIP: "10.0.0.42"}},
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "tend-system", Name: "headless"}, Spec: corev1.ServiceSpec{ClusterIP: corev1.ClusterIPNone}},
	)}
	type answer struct {
		RCode dnsmessage.RCode
		A     []string
	}
	tests := []struct {
		name  string
		qtype dnsmessage.Type
		want  answer
	}{
		{"tend-nats.tend-system.svc.cluster.local.", dnsmessage.TypeA, answer{dnsmessage.RCodeSuccess, []string{"10.0.0.42"}}},
		{"TEND-NATS.tend-system.svc.cluster.local.", dnsmessage.TypeA, answer{dnsmessage.RCodeSuccess, []string{"10.0.0.42"}}},
		{"tend-nats.tend-system.svc.cluster.local.", dnsmessage.TypeAAAA, answer{dnsmessage.RCodeSuccess, nil}},
		{"headless.tend-system.svc.cluster.local.", dnsmessage.TypeA, answer{dnsmessage.RCodeSuccess, nil}},
		{"tend-nats.tend-system.svc.tend-system.svc.cluster.local.", dnsmessage.TypeA, answer{dnsmessage.RCodeNameError, nil}},
		{"missing.tend-system.svc.cluster.local.", dnsmessage.TypeA, answer{dnsmessage.RCodeNameError, nil}},
		{"tend-nats.tend-system.svc.", dnsmessage.TypeA, answer{dnsmessage.RCodeNameError, nil}},
		{"example.com.", dnsmessage.TypeA, answer{dnsmessage.RCodeNameError, nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name+" "+tt.qtype.String(), func(t *testing.T) {
			b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: 7, RecursionDesired: true})
			if err := b.StartQuestions(); err != nil {
				t.Fatal(err)
			}
			if err := b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(tt.name), Type: tt.qtype, Class: dnsmessage.ClassINET}); err != nil {
				t.Fatal(err)
			}
			query, err := b.Finish()
			if err != nil {
				t.Fatal(err)
			}
			resp, err := d.answer(query)
			if err != nil {
				t.Fatal(err)
			}
			var m dnsmessage.Message
			if err := m.Unpack(resp); err != nil {
				t.Fatal(err)
			}
			if m.ID != 7 || !m.Response || len(m.Questions) != 1 {
				t.Errorf("header %+v, %d questions", m.Header, len(m.Questions))
			}
			got := answer{RCode: m.RCode}
			for _, a := range m.Answers {
				if r, ok := a.Body.(*dnsmessage.AResource); ok {
					got.A = append(got.A, netip.AddrFrom4(r.A).String())
				}
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
