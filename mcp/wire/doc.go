// Package wire holds the MCP tools' wire types: the tool names, their
// arguments and results, and the checks an argument must pass before the
// server acts on it. Agents and other MCP clients import it to call tend's
// tools with typed values; the server decodes into the same types.
//
// It must never import the MCP server, the controllers or anything that
// talks to a cluster: it is data and validation only.
package wire
