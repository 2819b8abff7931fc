package bus

import "testing"

func TestSubjects(t *testing.T) {
	tests := []struct {
		name string
		got  string
		want string
	}{
		{"pod", TelemetrySubject("prod", KindPod, "shop", "web-7d9f-abcde"), "tend.telemetry.prod.pod.shop.web-7d9f-abcde"},
		{"dotted names", TelemetrySubject("prod.eu", KindDeployment, "shop", "api.v2"), "tend.telemetry.prod~eu.deployment.shop.api~v2"},
		{"cluster-scoped", TelemetrySubject("prod", KindNode, "", "node-1.example.com"), "tend.telemetry.prod.node._.node-1~example~com"},
		{"wildcards and spaces", TelemetrySubject("a*b", KindEvent, "n>s", "x y\tz"), "tend.telemetry.a_b.event.n_s.x_y_z"},
		{"filter", TelemetryFilter("prod.eu"), "tend.telemetry.prod~eu.>"},
		{"partition filter", TelemetryPartitionFilter("prod.eu", 7), "tend.telemetry.prod~eu.7.>"},
		{"stored filter", StoredTelemetryFilter("prod", KindNode, "", "node-1"), "tend.telemetry.prod.*.node._.node-1"},
		{"object subject of a stored message", ObjectSubject("tend.telemetry.prod.3.pod.shop.web"), "tend.telemetry.prod.pod.shop.web"},
		{"object subject as published", ObjectSubject("tend.telemetry.prod.pod.shop.web"), "tend.telemetry.prod.pod.shop.web"},
		{"object subject of another stream", ObjectSubject("tend.audit.prod"), "tend.audit.prod"},
		{"dead letter", DeadLetterSubject("agent-maintenance"), "tend.deadletter.agent-maintenance"},
		{"proposals", ProposalsSubject("prod", "applied"), "tend.proposals.prod.applied"},
		{"audit", AuditSubject("prod"), "tend.audit.prod"},
		{"shim", ShimSubject("prod", "node-1.example.com", "restart"), "tend.shim.prod.node-1~example~com.restart"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %q, want %q", tt.got, tt.want)
			}
		})
	}
}

func TestToken(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"", "_"},
		{"web-1", "web-1"},
		{"a.b.c", "a~b~c"},
		{"*", "_"},
		{">", "_"},
		{"a b", "a_b"},
		{"a\tb", "a_b"},
		{"a\nb\x00c\x7f", "a_b_c_"},
		{"a\u00a0b", "a_b"},
		{"bad\xffutf8", "bad_utf8"},
		{"café", "café"},
		{"\ufffd", "\ufffd"},
	}
	for _, tt := range tests {
		if got := Token(tt.in); got != tt.want {
			t.Errorf("Token(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
