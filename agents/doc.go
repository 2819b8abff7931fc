// Package agents is tend's agent runtime: agents consume telemetry from the
// bus, fold it into one model of the cluster, and judge the model with an
// ordered list of runbooks (MaintenanceRunbooks); when a runbook recognises
// a problem they propose a fix through the MCP server's tools, or, when no
// safe fix exists, record a finding for a human.
//
// An agent never acts: it holds no credentials beyond its own token for the
// MCP server and its bus identity, and the only effects it can have are a
// Proposal that the policy gate decides and a finding that changes nothing.
// Telemetry text (logs, event messages, annotations) is data: runbooks match
// on typed fields and never follow instructions found in text. It imports
// the MCP wire types, never the MCP server.
package agents
