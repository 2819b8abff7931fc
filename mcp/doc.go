// Package mcp is tend's MCP tool server: the only way an agent reaches the
// cluster. It serves read tools and propose tools over streamable HTTP
// (mark3labs/mcp-go), authenticating every caller with the Kubernetes
// TokenReview API and authorizing every call with a SubjectAccessReview.
//
// It must never mutate workloads, nodes or containers. The only write it
// makes is creating a Proposal, whose proposer is the authenticated caller,
// never a value the caller supplies. Arguments are untrusted and are
// validated before use; bad arguments become tool errors, never panics.
package mcp
