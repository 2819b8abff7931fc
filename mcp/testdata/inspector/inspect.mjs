// Lists tend's MCP tools with the official MCP Inspector's CLI mode, then
// validates every tool's input and output schema strictly: ajv in strict
// mode compiles it (an unknown keyword or format is an error), and every
// property has a type, none is nullable. Prints a JSON report; exits 1 on
// any problem. Usage: node inspect.mjs URL TOKEN
import { spawnSync } from "node:child_process";
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import Ajv from "ajv";
import addFormats from "ajv-formats";

const [url, token] = process.argv.slice(2);
const cli = fileURLToPath(new URL("./node_modules/@modelcontextprotocol/inspector-cli/build/cli.js", import.meta.url));
const run = spawnSync(process.execPath, [cli, "--cli", url, "--transport", "http", "--method", "tools/list",
  "--header", `Authorization: Bearer ${token}`], {
  // The CLI finds its own package.json relative to the working directory
  // (inspector-cli, installed on its own): run it from its build/.
  cwd: dirname(cli), encoding: "utf8", timeout: 60000 });
// inspector-cli 1.x announces its own deprecation (the 2.x line needs
// Node 22.19, newer than Debian's): that notice is about the inspector, not
// the server, and is dropped; anything else on stderr is reported.
const notice = /deprecated|Upgrade:|security fixes only/;
const stderr = (run.stderr ?? "").split("\n").filter((l) => l.trim() && !notice.test(l)).join("\n");
const report = { exit: run.status, stderr, tools: [], problems: [] };
if (run.status !== 0) {
  report.problems.push(`inspector exited ${run.status}: ${stderr}`);
  console.log(JSON.stringify(report));
  process.exit(1);
}
if (/warn/i.test(stderr)) report.problems.push(`inspector warned: ${stderr}`);
const { tools } = JSON.parse(run.stdout);

// untyped and nullable fields, at every depth.
function walk(tool, where, s) {
  if (s === true || s === false || s === undefined) return;
  if (s.nullable !== undefined) report.problems.push(`${tool}: ${where} is nullable`);
  if (Array.isArray(s.type) && s.type.includes("null")) report.problems.push(`${tool}: ${where} may be null`);
  if (s.type === undefined && s.$ref === undefined && !s.anyOf && !s.oneOf && !s.allOf && s.const === undefined)
    report.problems.push(`${tool}: ${where} has no type`);
  for (const [k, p] of Object.entries(s.properties ?? {})) walk(tool, `${where}.${k}`, p);
  if (s.items) walk(tool, `${where}[]`, s.items);
  if (s.additionalProperties && typeof s.additionalProperties === "object") walk(tool, `${where}.*`, s.additionalProperties);
  for (const k of ["anyOf", "oneOf", "allOf"]) (s[k] ?? []).forEach((b, i) => walk(tool, `${where}.${k}[${i}]`, b));
  for (const [k, d] of Object.entries(s.$defs ?? s.definitions ?? {})) walk(tool, `#/$defs/${k}`, d);
}

for (const t of tools) {
  report.tools.push({ name: t.name, title: t.title ?? t.annotations?.title ?? null });
  for (const [which, schema] of [["inputSchema", t.inputSchema], ["outputSchema", t.outputSchema]]) {
    if (!schema) {
      if (which === "inputSchema") report.problems.push(`${t.name}: no input schema`);
      continue;
    }
    const ajv = new Ajv({ strict: true, allErrors: true });
    addFormats(ajv);
    try {
      ajv.compile(schema);
    } catch (e) {
      report.problems.push(`${t.name}: ${which} does not compile strictly: ${e.message}`);
    }
    walk(t.name, which, schema);
  }
}
console.log(JSON.stringify(report));
process.exit(report.problems.length ? 1 : 0);
