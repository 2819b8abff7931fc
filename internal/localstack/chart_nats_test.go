package localstack

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/tendops/tend/bus"
)

// TestChartNATSConfigRuns renders the chart's bundled NATS, runs a real
// nats-server on its configuration and its generated passwords, and
// connects as the components: each may do its job on the bus and is
// refused what its documented permissions deny.
func TestChartNATSConfigRuns(t *testing.T) {
	helm := filepath.Join(binDir(t), "helm")
	out, err := exec.Command(helm, "template", "tend", filepath.Join("..", "..", "charts", "tend"),
		"--namespace", SystemNamespace, "--set", "cluster=prod.eu").CombinedOutput()
	if err != nil {
		t.Fatalf("helm template: %v\n%s", err, out)
	}
	var conf string
	passwords := map[string]string{}
	r := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(out)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		var meta struct {
			Kind     string
			Metadata struct{ Name string }
		}
		if err := yaml.Unmarshal(doc, &meta); err != nil {
			t.Fatal(err)
		}
		switch {
		case meta.Kind == "ConfigMap" && meta.Metadata.Name == "tend-nats":
			var cm corev1.ConfigMap
			if err := yaml.Unmarshal(doc, &cm); err != nil {
				t.Fatal(err)
			}
			conf = cm.Data["nats.conf"]
		case meta.Kind == "Secret" && meta.Metadata.Name == "tend-nats-users":
			// The golden renderings mask these; strip the comment.
			var s struct{ Data map[string]string }
			if err := yaml.Unmarshal(doc, &s); err != nil {
				t.Fatal(err)
			}
			for user, v := range s.Data {
				pw, err := base64.StdEncoding.DecodeString(strings.Fields(v)[0])
				if err != nil {
					t.Fatal(err)
				}
				passwords[user] = string(pw)
			}
		}
	}
	if conf == "" || len(passwords) != 4 {
		t.Fatalf("the chart renders no NATS config or not four users (%d)", len(passwords))
	}
	dir := t.TempDir()
	conf = strings.Replace(conf, "store_dir: /data", "store_dir: "+strconv.Quote(filepath.Join(dir, "js")), 1)
	conf = regexp.MustCompile(`(?m)^port: 4222$`).ReplaceAllString(conf, "port: -1")
	conf = regexp.MustCompile(`(?m)^http_port: 8222$`).ReplaceAllString(conf, "")
	for user, pw := range passwords {
		t.Setenv(strings.ToUpper(user)+"_PASSWORD", pw)
	}
	path := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server does not take the chart's configuration: %v\n%s", err, conf)
	}
	opts.NoSigs, opts.NoLog = true, true
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	t.Cleanup(srv.Shutdown)
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}

	connect := func(user string) (*nats.Conn, jetstream.JetStream, chan error) {
		errs := make(chan error, 8)
		a, err := bus.Auth{User: user, Password: passwords[user]}.Options()
		if err != nil {
			t.Fatal(err)
		}
		a = append(a, nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { errs <- err }))
		nc, js, err := bus.Connect(t.Context(), srv.ClientURL(), "test-"+user, a...)
		if err != nil {
			t.Fatalf("connect as %s: %v", user, err)
		}
		t.Cleanup(nc.Close)
		return nc, js, errs
	}
	if nc, err := nats.Connect(srv.ClientURL(), nats.UserInfo("sensor", "wrong"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("a wrong password connects")
	}
	_, ctlJS, _ := connect("controller")
	if err := bus.EnsureStreams(t.Context(), ctlJS, bus.StreamsConfig{}); err != nil {
		t.Fatalf("the controller cannot set up the streams: %v", err)
	}
	sensorNC, sensorJS, sensorErrs := connect("sensor")
	e := &bus.Envelope{ID: "pod-1", Object: bus.ObjectRef{Kind: bus.KindPod, Namespace: "shop", Name: "web-1", UID: "uid-1"},
		Pod: &bus.PodState{Phase: "Running"}}
	if _, err := bus.NewPublisher(sensorJS, "prod.eu", "sensor").Publish(t.Context(), e); err != nil {
		t.Errorf("the sensor cannot publish telemetry of its cluster: %v", err)
	}
	for _, subject := range []string{bus.AuditSubject("prod.eu"), bus.TelemetrySubject("staging", bus.KindPod, "shop", "web-1")} {
		if err := sensorNC.Publish(subject, []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
		_ = sensorNC.Flush()
		select {
		case err := <-sensorErrs:
			if !errors.Is(err, nats.ErrPermissionViolation) {
				t.Errorf("sensor publishing to %s: %v, want a permissions violation", subject, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("the sensor may publish to %s", subject)
		}
	}
	agentNC, _, agentErrs := connect("agent")
	if err := agentNC.Publish(bus.ShimSubject("prod.eu", "node-1", "restart-container"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	_ = agentNC.Flush()
	select {
	case err := <-agentErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Errorf("agent publishing a shim request: %v, want a permissions violation", err)
		}
	case <-time.After(5 * time.Second):
		t.Error("the agent may send shim requests")
	}
}
