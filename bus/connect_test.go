package bus

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// User nkeys made for this test only: seeds and public keys.
const (
	ingestNkeySeed     = "SUABHK5RDP6JJOGRJO7PMQJ2IEHB2UROG6RIQQ7MXVLHAS6U53U6MNMQ24"
	ingestNkeyPub      = "UDBG7HX6F2XTVAEU2XRTUOLPLHFF5BJTSH26ZX3GWVU5QPNUDSKHHGOH"
	controllerNkeySeed = "SUADKPJTLBLGVBCLBQQS6RREBSJLY4Y3TJRUMRUT6QQ4R6NAGNPFFYZ3JQ"
	controllerNkeyPub  = "UAKAKRRLN4G5R4HW2CBONPUMX7K5QSTUVWBLSPJV6CCRBWK34MXPQL3S"
	unknownNkeySeed    = "SUAD4C6LJEO6NZMFYFBGN2YRGO2LGKU7GEWK2LTJEPMZ2K2GXKYAYWBVVI"
)

// testPKI writes a CA, a server certificate for 127.0.0.1 and a client
// certificate to dir, and returns the server's TLS configuration, which
// requires a client certificate from the CA.
func testPKI(t *testing.T, dir string) *tls.Config {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "tend test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	issue := func(serial int64, cn string, usage x509.ExtKeyUsage) (certPEM, keyPEM []byte) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		keyDER, err := x509.MarshalECPrivateKey(key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	}
	write := func(name string, data []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write("ca.pem", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}))
	clientCert, clientKey := issue(2, "tend-ingest", x509.ExtKeyUsageClientAuth)
	write("client.pem", clientCert)
	write("client-key.pem", clientKey)
	write("ingest.nk", []byte(ingestNkeySeed))
	write("controller.nk", []byte(controllerNkeySeed))
	write("unknown.nk", []byte(unknownNkeySeed))
	serverCert, serverKey := issue(3, "nats", x509.ExtKeyUsageServerAuth)
	pair, err := tls.X509KeyPair(serverCert, serverKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return &tls.Config{Certificates: []tls.Certificate{pair}, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
}

// TestConnectTLSAndNkey connects to a server that requires mutual TLS and
// knows two nkey users, the controller and the ingest: with the CA, the
// client certificate and its seed each connects and does its job; without
// any of them, or with an unknown seed, the ingest does not connect.
func TestConnectTLSAndNkey(t *testing.T) {
	dir := t.TempDir()
	var users []EmbeddedNkeyUser
	for c, pub := range map[Component]string{ComponentIngest: ingestNkeyPub, ComponentController: controllerNkeyPub} {
		perms, err := ComponentPermissions(c, "prod", "")
		if err != nil {
			t.Fatal(err)
		}
		users = append(users, EmbeddedNkeyUser{PublicKey: pub, Permissions: perms})
	}
	srv, err := StartEmbedded(EmbeddedOptions{StoreDir: t.TempDir(), TLS: testPKI(t, dir), NkeyUsers: users})
	if err != nil {
		t.Fatalf("StartEmbedded: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	file := func(name string) string { return filepath.Join(dir, name) }
	tlsAuth := func(seed string) Auth {
		return Auth{NKeySeedFile: file(seed), CAFile: file("ca.pem"), CertFile: file("client.pem"), KeyFile: file("client-key.pem")}
	}
	connectWith := func(name string, a Auth) (*nats.Conn, jetstream.JetStream, error) {
		opts, err := a.Options()
		if err != nil {
			return nil, nil, err
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		nc, js, err := Connect(ctx, srv.URL(), name, opts...)
		if err == nil {
			t.Cleanup(nc.Close)
		}
		return nc, js, err
	}

	good := tlsAuth("ingest.nk")
	for name, a := range map[string]Auth{
		"no CA":                 {NKeySeedFile: good.NKeySeedFile, CertFile: good.CertFile, KeyFile: good.KeyFile},
		"no client certificate": {NKeySeedFile: good.NKeySeedFile, CAFile: good.CAFile},
		"no nkey":               {CAFile: good.CAFile, CertFile: good.CertFile, KeyFile: good.KeyFile},
		"unknown nkey":          tlsAuth("unknown.nk"),
	} {
		if _, _, err := connectWith("ingest", a); err == nil {
			t.Errorf("%s: connected", name)
		}
	}

	_, controllerJS, err := connectWith("controller", tlsAuth("controller.nk"))
	if err != nil {
		t.Fatalf("the controller cannot connect: %v", err)
	}
	if err := EnsureStreams(t.Context(), controllerJS, StreamsConfig{}); err != nil {
		t.Fatalf("the controller cannot set up the streams: %v", err)
	}
	nc, ingestJS, err := connectWith("ingest", good)
	if err != nil {
		t.Fatalf("the ingest cannot connect with TLS and its nkey: %v", err)
	}
	if _, err := nc.TLSConnectionState(); err != nil {
		t.Errorf("the ingest's connection is not TLS: %v", err)
	}
	seq, err := NewPublisher(ingestJS, "prod", "ingest").Publish(t.Context(), alertEnvelope())
	if err != nil {
		t.Fatalf("the ingest cannot publish an alert: %v", err)
	}
	s, err := controllerJS.Stream(t.Context(), StreamTelemetry)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := s.GetMsg(t.Context(), seq)
	if err != nil {
		t.Fatalf("the alert is not in the stream: %v", err)
	}
	if env, err := Decode(msg.Data); err != nil || env.ID != alertEnvelope().ID {
		t.Errorf("stored %v, %v; want the alert", env, err)
	}
}
