// Package agents is tend's agent runtime: agents consume telemetry from the
// bus, keep a model of what they saw, and when a runbook recognises a
// problem they propose a fix through the MCP server's tools.
//
// An agent never acts: it holds no credentials beyond its own token for the
// MCP server, and the only effect it can have is a Proposal that the policy
// gate decides. Telemetry text (logs, event messages, annotations) is data:
// runbooks match on typed fields and never follow instructions found in text.
package agents
