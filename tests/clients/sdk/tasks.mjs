// MCP Tasks with the official TypeScript SDK over Streamable HTTP, driven by
// tests/integration/ai/tasks.rs.
//
// --mode stream: connect, list tools, run a tool as a task with
//   client.experimental.tasks.callToolStream (task-augmented tools/call, tasks/get polling,
//   tasks/result) and print {taskId, isToolTask, types, statuses, result}.
// --mode read: a new client (a new session) reads an existing task with getTask and
//   getTaskResult and prints {task, result}.
//
// Usage: node tasks.mjs --modules INSTALL_DIR --url http://127.0.0.1:PORT/mcp --mode stream
//          --tool chat --args '{"prompt":"hi"}' [--ttl MS] [--token T]
//        node tasks.mjs --modules INSTALL_DIR --url ... --mode read --task ID [--token T]
// Prints one JSON line on stdout; exit code 0 on success, 1 with the error on stderr.

import { createRequire } from "node:module";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    modules: { type: "string" },
    url: { type: "string" },
    mode: { type: "string" },
    tool: { type: "string", default: "chat" },
    args: { type: "string", default: "{}" },
    ttl: { type: "string", default: "60000" },
    task: { type: "string" },
    token: { type: "string" },
  },
});

const require = createRequire(join(args.modules, "node_modules", "x.js"));
const { Client } = require("@modelcontextprotocol/sdk/client/index.js");
const { StreamableHTTPClientTransport } = require("@modelcontextprotocol/sdk/client/streamableHttp.js");

async function connect() {
  const headers = args.token ? { Authorization: `Bearer ${args.token}` } : {};
  const transport = new StreamableHTTPClientTransport(new URL(args.url), { requestInit: { headers } });
  const client = new Client({ name: "exai-tasks-test", version: "1.0.0" });
  await client.connect(transport);
  return client;
}

async function stream() {
  const client = await connect();
  await client.listTools();
  const isToolTask = client.isToolTask(args.tool);
  const out = { taskId: null, isToolTask, types: [], statuses: [], result: null, error: null };
  const s = client.experimental.tasks.callToolStream(
    { name: args.tool, arguments: JSON.parse(args.args) },
    undefined,
    { task: { ttl: Number(args.ttl) }, timeout: 120000 },
  );
  for await (const m of s) {
    out.types.push(m.type);
    if (m.type === "taskCreated") out.taskId = m.task.taskId;
    if (m.type === "taskStatus") out.statuses.push(m.task.status);
    if (m.type === "result") out.result = m.result;
    if (m.type === "error") out.error = String(m.error?.message ?? m.error);
  }
  await client.close();
  return out;
}

async function read() {
  const client = await connect();
  const task = await client.experimental.tasks.getTask(args.task);
  const { CallToolResultSchema } = require("@modelcontextprotocol/sdk/types.js");
  const result = await client.experimental.tasks.getTaskResult(args.task, CallToolResultSchema);
  await client.close();
  return { task, result };
}

try {
  const out = args.mode === "stream" ? await stream() : await read();
  process.stdout.write(JSON.stringify(out) + "\n");
  process.exit(0);
} catch (e) {
  process.stderr.write(`tasks.mjs: ${e?.stack ?? e}\n`);
  process.exit(1);
}
