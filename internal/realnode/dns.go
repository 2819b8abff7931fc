package realnode

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// dnsServer stands in for the cluster's DNS add-on (CoreDNS), which has no
// image on this machine: it answers A queries for
// <service>.<namespace>.svc.<ClusterDomain> with the Service's cluster IP,
// read from the API server, over UDP. Any other name does not exist.
type dnsServer struct {
	conn net.PacketConn
	cs   kubernetes.Interface
	done chan struct{}
}

func startDNS(t testing.TB, addr string, cs kubernetes.Interface) *dnsServer {
	conn, err := net.ListenPacket("udp4", addr)
	if err != nil {
		t.Fatalf("failed to listen for DNS on %s: %v", addr, err)
	}
	d := &dnsServer{conn: conn, cs: cs, done: make(chan struct{})}
	go d.serve()
	return d
}

func (d *dnsServer) close() {
	_ = d.conn.Close()
	<-d.done
}

func (d *dnsServer) serve() {
	defer close(d.done)
	buf := make([]byte, 1500)
	for {
		n, from, err := d.conn.ReadFrom(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if resp, err := d.answer(buf[:n]); err == nil {
			_, _ = d.conn.WriteTo(resp, from)
		}
	}
}

// answer builds the response to one query.
func (d *dnsServer) answer(query []byte) ([]byte, error) {
	var p dnsmessage.Parser
	h, err := p.Start(query)
	if err != nil {
		return nil, err
	}
	q, err := p.Question()
	if err != nil {
		return nil, err
	}
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	ip, found := d.lookup(q.Name.String())
	if !found {
		rh.RCode = dnsmessage.RCodeNameError
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if err := b.StartQuestions(); err != nil {
		return nil, err
	}
	if err := b.Question(q); err != nil {
		return nil, err
	}
	if err := b.StartAnswers(); err != nil {
		return nil, err
	}
	if found && q.Type == dnsmessage.TypeA && q.Class == dnsmessage.ClassINET && ip.IsValid() {
		if err := b.AResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 5}, dnsmessage.AResource{A: ip.As4()}); err != nil {
			return nil, err
		}
	}
	return b.Finish()
}

// lookup resolves a Service's name to its cluster IP (invalid for a
// headless Service); found is false for a name that is no Service's.
func (d *dnsServer) lookup(name string) (ip netip.Addr, found bool) {
	rest, ok := strings.CutSuffix(strings.ToLower(name), ".svc."+ClusterDomain+".")
	if !ok {
		return netip.Addr{}, false
	}
	svc, ns, ok := strings.Cut(rest, ".")
	if !ok || strings.Contains(ns, ".") {
		return netip.Addr{}, false
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	s, err := d.cs.CoreV1().Services(ns).Get(ctx, svc, metav1.GetOptions{})
	if err != nil {
		// A Service that does not exist does not resolve; neither, for a
		// client that retries, does one we could not read.
		return netip.Addr{}, false
	}
	addr, err := netip.ParseAddr(s.Spec.ClusterIP)
	if err != nil || !addr.Is4() {
		return netip.Addr{}, true
	}
	return addr, true
}
