package mcp_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/tendops/tend/bus"
	"github.com/tendops/tend/mcp"
)

// TestStdioActsAsTheKubeconfigUser serves MCP over pipes, as `tend mcp
// --stdio` does, with an envtest user's own credentials: the proposer is
// that user, and the user's own permissions bound every call.
func TestStdioActsAsTheKubeconfigUser(t *testing.T) {
	c := startCluster(t)
	c.serve(t, time.Second) // starts the bus the stdio server reads telemetry from
	pub := bus.NewPublisher(c.js, repeatCluster, "test")
	if _, err := pub.Publish(t.Context(), &bus.Envelope{
		ID:         "web/1",
		Object:     bus.ObjectRef{Kind: bus.KindDeployment, Namespace: teamNS, Name: "web", UID: "u1"},
		Deployment: &bus.DeploymentState{Replicas: 1},
	}); err != nil {
		t.Fatalf("publish telemetry: %v", err)
	}
	for _, tc := range []struct {
		name, user, fingerprint string
		allowed                 bool
	}{
		{"agent-a may propose", "agent-a", "stdio-agent", true},
		{"reader may not", "reader", "stdio-reader", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := c.agentUser
			if tc.user == "reader" {
				u = c.readerUser
			}
			uc, err := client.NewWithWatch(u.Config(), client.Options{Scheme: c.scheme})
			if err != nil {
				t.Fatal(err)
			}
			self, err := mcp.Self(t.Context(), uc)
			if err != nil {
				t.Fatalf("Self: %v", err)
			}
			if self.Username != tc.user {
				t.Fatalf("Self = %q, want %q", self.Username, tc.user)
			}
			srv, err := mcp.New(mcp.Options{
				Client: uc, Authorizer: &mcp.SelfAuthorizer{Client: uc, Self: self},
				DecisionWait: 100 * time.Millisecond, ToolNamespaces: []string{teamNS},
				Telemetry: c.js, Cluster: repeatCluster,
			})
			if err != nil {
				t.Fatal(err)
			}
			inR, inW := io.Pipe()
			outR, outW := io.Pipe()
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- srv.ServeStdio(ctx, self, inR, outW) }()
			t.Cleanup(func() {
				cancel()
				_ = inW.Close()
				<-done
			})
			lines := bufio.NewScanner(outR)
			lines.Buffer(make([]byte, 1<<20), 1<<20)
			send := func(msg string) {
				if _, err := io.WriteString(inW, msg+"\n"); err != nil {
					t.Fatal(err)
				}
			}
			recv := func() map[string]any {
				if !lines.Scan() {
					t.Fatalf("no response: %v", lines.Err())
				}
				var m map[string]any
				if err := json.Unmarshal(lines.Bytes(), &m); err != nil {
					t.Fatalf("response %q: %v", lines.Text(), err)
				}
				return m
			}
			send(`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"desktop","version":"0"}}}`)
			recv()
			send(`{"jsonrpc":"2.0","method":"notifications/initialized"}`)
			args, _ := json.Marshal(rollbackArgs(tc.fingerprint))
			send(`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"propose_rollback","arguments":` + string(args) + `}}`)
			resp := recv()
			result, _ := resp["result"].(map[string]any)
			isErr, _ := result["isError"].(bool)
			// A tool not offered to the caller is refused as not found.
			isErr = isErr || resp["error"] != nil
			text, _ := json.Marshal(result["content"])
			if tc.allowed == isErr {
				t.Fatalf("propose_rollback as %s: %s", tc.user, text)
			}
			// Telemetry reaches a stdio client too, checked as the user's own
			// right to get the object.
			send(`{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"get_telemetry","arguments":{"kind":"deployment","namespace":"team","name":"web"}}}`)
			tel, _ := recv()["result"].(map[string]any)
			telText, _ := json.Marshal(tel)
			telErr, _ := tel["isError"].(bool)
			if tc.allowed == telErr || (tc.allowed && !strings.Contains(string(telText), `web/1`)) {
				t.Errorf("get_telemetry as %s: %s", tc.user, telText)
			}
			made := c.proposals(t, tc.fingerprint)
			if !tc.allowed {
				if len(made) != 0 {
					t.Errorf("reader: %s, %d proposals; want none", text, len(made))
				}
				return
			}
			if len(made) != 1 || made[0].Spec.Proposer.Username != tc.user {
				t.Errorf("proposals %+v, want one proposed by %s", made, tc.user)
			}
		})
	}
}
