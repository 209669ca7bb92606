// Browser test of the exai dashboard, driven by tests/integration/dashboard.rs.
//
// Opens /dashboard?token=... in the system's headless Chromium (playwright-core, no browser
// download), waits for the live feed, generates tool-call traffic over Streamable HTTP,
// forces an error, and checks that the page shows the new numbers, lists the error and the
// seeded auditor observation, and that Resolve / Acknowledge work, then narrows the window to
// 400 px and checks nothing overflows horizontally. Fails on any console error, uncaught page
// error or failed request. Takes full-page screenshots (wide and 400 px).
//
// Usage: node check_dashboard.mjs --modules INSTALL_DIR --base http://127.0.0.1:PORT --token T
//          --chromium /usr/bin/chromium --out DIR [--copy-screenshot PATH] [--calls N]
// Prints one JSON summary line on stdout; exit code 0 on success.

import { createRequire } from "node:module";
import { mkdtempSync, rmSync, copyFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";

const { values: args } = parseArgs({
  options: {
    base: { type: "string" },
    token: { type: "string" },
    chromium: { type: "string", default: "/usr/bin/chromium" },
    out: { type: "string" },
    "copy-screenshot": { type: "string" },
    calls: { type: "string", default: "7" },
    // Where playwright-core is installed (scripts/test.sh installs it outside the repo).
    modules: { type: "string" },
  },
});
const { chromium } = createRequire(join(args.modules, "package.json"))("playwright-core");
const base = args.base;
const token = args.token;
const calls = Number(args.calls);
const T = 20000;

function fail(msg) { throw new Error(msg); }

async function mcpTraffic(n) {
  // Streamable HTTP: initialize, then n `version` calls and one failing call.
  const h = { "content-type": "application/json", accept: "application/json, text/event-stream" };
  const init = await fetch(base + "/mcp", {
    method: "POST", headers: h,
    body: JSON.stringify({ jsonrpc: "2.0", id: 0, method: "initialize",
      params: { protocolVersion: "2025-11-25", capabilities: {}, clientInfo: { name: "dashboard-test", version: "1" } } }),
  });
  const sid = init.headers.get("mcp-session-id");
  if (!sid) fail("no Mcp-Session-Id from initialize: " + init.status);
  await init.text();
  const sh = Object.assign({}, h, { accept: "application/json", "mcp-session-id": sid, "mcp-protocol-version": "2025-11-25" });
  const send = async (id, name, args) => {
    const r = await fetch(base + "/mcp", { method: "POST", headers: sh,
      body: JSON.stringify({ jsonrpc: "2.0", id, method: "tools/call", params: { name, arguments: args } }) });
    return r.json();
  };
  for (let i = 1; i <= n; i++) {
    const r = await send(i, "version", {});
    if (r.result.isError) fail("version call failed: " + JSON.stringify(r));
    // Spread the calls over a few seconds so the chart shows them as a series.
    await new Promise((res) => setTimeout(res, 350));
  }
  const bad = await send(n + 1, "version", { surprise: 1 });
  if (!bad.result.isError) fail("the invalid call should fail");
  return n + 1;
}

async function forceError(message) {
  const r = await fetch(base + "/admin/debug/error", {
    method: "POST",
    headers: { "content-type": "application/json", authorization: "Bearer " + token },
    body: JSON.stringify({ message }),
  });
  if (r.status !== 202) fail("forcing an error answered " + r.status);
}

const problems = [];
let closing = false;
const userDataDir = mkdtempSync(join(tmpdir(), "exai-chromium-"));
let context;
const summary = {};
try {
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: args.chromium,
    headless: true,
    viewport: { width: 1400, height: 1000 },
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("console", (m) => { if (m.type() === "error") problems.push("console error: " + m.text()); });
  page.on("pageerror", (e) => problems.push("page error: " + e.message));
  page.on("requestfailed", (r) => {
    // The event stream is cut when the page closes at the end; anything else is a problem.
    if (!closing) problems.push("request failed: " + r.url() + " " + (r.failure() && r.failure().errorText));
  });
  page.on("response", (r) => { if (r.status() >= 400) problems.push("HTTP " + r.status() + " for " + r.url()); });

  const resp = await page.goto(base + "/dashboard?token=" + encodeURIComponent(token), { waitUntil: "load", timeout: T });
  if (!resp || resp.status() !== 200) fail("dashboard answered " + (resp && resp.status()));
  await page.waitForFunction(() => document.getElementById("live-text").textContent === "live", null, { timeout: T });
  await page.waitForFunction(() => /^\d+$/.test(document.getElementById("total-calls").textContent), null, { timeout: T });
  const before = Number(await page.textContent("#total-calls"));
  summary.calls_before = before;

  const sent = await mcpTraffic(calls);
  await forceError("dashboard test error 1234 at /tmp/dashboard-test");
  // The live feed must show exactly the new calls.
  await page.waitForFunction((n) => document.getElementById("total-calls").textContent === String(n),
    before + sent, { timeout: T });
  summary.calls_after = Number(await page.textContent("#total-calls"));
  summary.not_ok = Number(await page.textContent("#calls-not-ok"));
  summary.sessions = await page.textContent("#sessions-by-protocol");
  // Recent calls, the error and the seeded observation appear in the lists.
  await page.waitForFunction(() => [...document.querySelectorAll("#toolcalls td")].some((td) => td.textContent === "version"),
    null, { timeout: T });
  await page.waitForSelector("#errors button[data-error-id]", { timeout: T });
  summary.error_text = await page.textContent("#errors");
  await page.waitForSelector("#observations button[data-observation-id]", { timeout: T });
  summary.observation_text = await page.textContent("#observations");
  summary.providers_text = await page.textContent("#providers");
  summary.breakers_text = await page.textContent("#breakers");
  // Let the chart collect a few per-second samples including the traffic, then screenshot.
  await page.waitForTimeout(1500);
  const shot = join(args.out, "dashboard.png");
  await page.screenshot({ path: shot, fullPage: true });
  summary.screenshot = shot;
  if (args["copy-screenshot"]) {
    copyFileSync(shot, args["copy-screenshot"]);
    summary.copied_to = args["copy-screenshot"];
  }

  // Operator actions.
  await page.fill("#errors input.notes", "seen in the browser test");
  await page.click("#errors button[data-error-id]");
  await page.waitForFunction(() => document.getElementById("errors").textContent.includes("no open errors"), null, { timeout: T });
  await page.click("#observations button[data-observation-id]");
  await page.waitForFunction(() => document.getElementById("observations").textContent.includes("no open observations"),
    null, { timeout: T });
  summary.actions = "resolved and acknowledged";

  // A narrow phone-sized window: nothing may push the page sideways.
  await page.setViewportSize({ width: 400, height: 900 });
  await page.waitForTimeout(300);
  const narrow = await page.evaluate(() => {
    const doc = document.documentElement;
    const width = doc.clientWidth;
    const wide = [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > width + 0.5 && !e.closest(".card"))
      .slice(0, 5)
      .map((e) => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") + (e.className ? "." + e.className : ""));
    return { client_width: width, scroll_width: doc.scrollWidth, body_scroll_width: document.body.scrollWidth, wide };
  });
  summary.narrow = narrow;
  if (narrow.scroll_width > narrow.client_width || narrow.body_scroll_width > narrow.client_width) {
    problems.push("horizontal overflow at 400 px: " + JSON.stringify(narrow));
  }
  await page.screenshot({ path: join(args.out, "dashboard-400px.png"), fullPage: true });
  closing = true;
} catch (e) {
  problems.push("failed: " + (e && e.stack ? e.stack : String(e)));
} finally {
  if (context) await context.close().catch(() => {});
  rmSync(userDataDir, { recursive: true, force: true });
}
summary.problems = problems;
console.log(JSON.stringify(summary));
process.exit(problems.length ? 1 : 0);
