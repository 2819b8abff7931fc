// Drives tend's MCP server over streamable HTTP with the official MCP
// TypeScript SDK client: initialize, list tools, call a read tool and a
// propose tool. Prints one JSON object for mcp/interop_test.go to check.
//
//   node client.mjs URL TOKEN NAMESPACE DEPLOYMENT
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [url, token, namespace, deployment] = process.argv.slice(2);
if (!url || !token || !namespace || !deployment) {
  console.error("usage: node client.mjs URL TOKEN NAMESPACE DEPLOYMENT");
  process.exit(2);
}

const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
});
const client = new Client({ name: "tend-interop", version: "1.0.0" });
await client.connect(transport);

const { tools } = await client.listTools();
// The SDK checks each structured result against the tool's output schema.
const read = await client.callTool({ name: "get_resource", arguments: { apiVersion: "apps/v1", kind: "Deployment", namespace, name: deployment } });
const propose = await client.callTool({
  name: "propose_scale_workload",
  arguments: {
    namespace, name: deployment, replicas: 3,
    summary: "Load doubled since 09:00; 2 replicas run at 90% CPU.",
    risk: "Low", fingerprint: "interop-scale", agent: "typescript-sdk",
  },
});

console.log(JSON.stringify({
  server: client.getServerVersion(),
  tools: tools.map((t) => ({ name: t.name, readOnly: t.annotations?.readOnlyHint ?? null })),
  read, propose,
}));
await client.close();
