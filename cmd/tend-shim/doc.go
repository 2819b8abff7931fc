// Command tend-shim runs the runtime shim (package shim in runtime-shim/) on
// one node: flags, NATS and CRI connections, signals; nothing else.
//
// It must never hold logic of its own beyond wiring, and must stay a small
// static binary: it imports bus and the shim only, never the controllers,
// agents, MCP server or client-go.
package main
