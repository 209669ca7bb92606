// exai dashboard: vanilla JS, no dependencies. Live data comes from /dashboard/events
// (one "overview" event per second) and the JSON API under /api/. The admin token the page
// was opened with (?token=...) is kept and sent with every request.
"use strict";

(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  const headers = token ? { Authorization: "Bearer " + token } : {};
  const withToken = (path) => (token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path);
  const CHART_SECS = 300;
  const series = [];
  let lastTotal = null;
  let listsBusy = false;
  let listsDue = 0;

  // ---- helpers -----------------------------------------------------------------------------
  const $ = (id) => document.getElementById(id);
  const setText = (id, v) => { const e = $(id); if (e) e.textContent = v; };
  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") e.className = v;
      else if (k === "onclick") e.addEventListener("click", v);
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c === null || c === undefined) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }
  const tag = (text) => el("span", { class: "tag " + String(text).replace(/[^a-z_]/gi, "") }, text);
  const empty = (text) => el("div", { class: "empty" }, text);
  function fmtMs(v) {
    if (v === null || v === undefined || Number.isNaN(v)) return "–";
    if (v < 1) return v.toFixed(2) + " ms";
    if (v < 1000) return v.toFixed(v < 10 ? 1 : 0) + " ms";
    return (v / 1000).toFixed(2) + " s";
  }
  function fmtBytes(n) {
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return (i === 0 ? n : n.toFixed(1)) + " " + u[i];
  }
  function fmtDuration(s) {
    const d = Math.floor(s / 86400), h = Math.floor((s % 86400) / 3600), m = Math.floor((s % 3600) / 60);
    if (d) return d + "d " + h + "h";
    if (h) return h + "h " + m + "m";
    return m + "m " + (s % 60) + "s";
  }
  const fmtTime = (ms) => new Date(ms).toLocaleTimeString();
  const fmtDateTime = (ms) => new Date(ms).toLocaleString();
  const plural = (n, word) => n + " " + word + (n === 1 ? "" : "s");
  const pct = (x) => (x === null || x === undefined ? "–" : (x * 100).toFixed(1) + " %");

  async function api(path, opts) {
    const r = await fetch(withToken(path), Object.assign({ headers: headers, cache: "no-store" }, opts || {}));
    const body = await r.json();
    if (!r.ok) throw new Error((body && body.error && body.error.message) || r.statusText);
    return body;
  }
  const post = (path, body) =>
    api(path, { method: "POST", headers: Object.assign({ "Content-Type": "application/json" }, headers), body: JSON.stringify(body || {}) });

  function table(cols, rows) {
    const thead = el("thead", {}, el("tr", {}, ...cols.map((c) => el("th", { class: c.num ? "num" : "" }, c.title))));
    const tbody = el("tbody", {}, ...rows.map((r) => el("tr", {}, ...cols.map((c) => {
      const v = c.get(r);
      return el("td", { class: (c.num ? "num " : "") + (c.cls || "") }, v);
    }))));
    return el("table", {}, thead, tbody);
  }
  function fill(id, node) { const e = $(id); e.replaceChildren(node); }
  function dl(pairs) { return el("dl", {}, ...pairs.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)])); }

  // ---- overview (every second) -------------------------------------------------------------
  function renderOverview(o) {
    setText("version", "v" + o.server.version);
    setText("uptime", fmtDuration(o.server.uptime_secs));
    setText("store", o.server.store);
    setText("sessions-total", o.sessions.total);
    setText("sessions-by-protocol", Object.entries(o.sessions.by_protocol).map(([k, v]) => k + " " + v).join(" · "));
    setText("inflight-used", o.inflight.used);
    setText("inflight-max", o.inflight.max);
    setText("inflight-session", o.inflight.session_max);
    $("inflight-bar").style.width = Math.min(100, o.inflight.utilization * 100).toFixed(1) + "%";
    setText("toollog-queue", o.toollog_queue);
    setText("total-calls", o.calls.total);
    setText("calls-not-ok", o.calls.not_ok);
    setText("calls-by-outcome", Object.entries(o.calls.by_outcome).filter(([, v]) => v > 0).map(([k, v]) => k + " " + v).join(" · ") || "none yet");
    setText("latency-mean", fmtMs(o.calls.mean_ms));
    setText("latency-p95", fmtMs(o.calls.p95_ms));
    setText("connections-open", o.connections.open);
    setText("connections-max", o.connections.max);

    fill("breakers", o.breakers.length
      ? table([
        { title: "provider", get: (b) => b.provider },
        { title: "state", get: (b) => tag(b.state) },
        { title: "last opened", get: (b) => (b.opened_at_ms ? fmtTime(b.opened_at_ms) : "never") },
        { title: "transitions", get: (b) => String(b.transitions) },
      ], o.breakers)
      : empty("no providers configured"));

    // Dedup and cleanup figures come from the store: every node shows the same numbers.
    const d = o.dedup;
    fill("dedup", d.source !== "store"
      ? empty("store totals not read yet")
      : el("div", {},
        dl([["files stored", d.files], ["references", d.references], ["uses without upload", d.reused],
          ["bytes saved", fmtBytes(d.bytes_saved)]]),
        d.files === 0 ? empty("no file uploads yet") : null));
    const c = o.cleanup;
    fill("cleanup", c.source !== "store"
      ? empty("store totals not read yet")
      : el("div", {},
        dl([["runs", c.runs], ["dry runs", c.dry_runs], ["files deleted", c.items.deleted],
          ["deletes failed", c.items.failed], ["skipped", c.items.skipped],
          ["last run", c.last_run ? fmtTime(c.last_run.started_at_ms) + " " + (c.last_run.outcome || "running") : "never"]]),
        c.runs === 0 ? empty("no cleanup run yet") : null));
    fill("actors", table([
      { title: "actor", get: (a) => a.name },
      { title: "state", get: (a) => tag(a.state) },
      { title: "restarts", num: true, get: (a) => a.restarts },
    ], o.actors));

    const w = o.error_watcher;
    setText("errors-summary", w.enabled
      ? "(" + plural(w.events, "event") + ", " + w.dropped + " dropped; analyses " + aiText(w.ai, w.analyses) + ")"
      : "(error watcher off)");
    const a = o.auditor;
    setText("auditor-summary", a.ai.enabled
      ? "(sample " + (a.sample_rate * 100).toFixed(0) + " %, " + a.sampled_calls + " sampled; " + aiText(a.ai, a.analyses) + ")"
      : "(auditor off)");

    if (o.sample) pushSample(o.sample);
    if (lastTotal !== o.calls.total) {
      lastTotal = o.calls.total;
      listsDue = Math.min(listsDue, Date.now() + 1000);
    }
  }
  function aiText(ai, outcomes) {
    if (!ai.enabled) return "off";
    if (!ai.model_wired) return "no model wired";
    return ai.model + ", ≤ " + ai.calls_per_hour + "/h, ok " + outcomes.ok + ", over budget " + outcomes.over_budget;
  }

  // ---- chart -------------------------------------------------------------------------------
  function pushSample(s) {
    if (series.length && series[series.length - 1].t_ms >= s.t_ms) return;
    series.push(s);
    while (series.length > CHART_SECS) series.shift();
    drawChart();
  }
  function drawChart() {
    const canvas = $("chart");
    const dpr = window.devicePixelRatio || 1;
    const w = canvas.clientWidth, h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const css = getComputedStyle(document.documentElement);
    const color = (n) => css.getPropertyValue(n).trim();
    const padL = 44, padR = 54, padT = 8, padB = 22;
    const pw = w - padL - padR, ph = h - padT - padB;
    const maxCalls = Math.max(4, Math.ceil(Math.max(0, ...series.map((s) => s.calls)) / 4) * 4);
    const maxLat = Math.max(1, ...series.map((s) => Math.max(s.p95_ms || 0, s.mean_ms || 0)));
    g.strokeStyle = color("--line");
    g.fillStyle = color("--muted");
    g.font = "11px system-ui, sans-serif";
    g.lineWidth = 1;
    for (let i = 0; i <= 4; i++) {
      const y = padT + ph - (ph * i) / 4;
      g.beginPath(); g.moveTo(padL, y); g.lineTo(padL + pw, y); g.stroke();
      g.textAlign = "right"; g.fillText(String((maxCalls * i) / 4), padL - 6, y + 4);
      g.textAlign = "left"; g.fillText(fmtMs((maxLat * i) / 4), padL + pw + 6, y + 4);
    }
    const now = series.length ? series[series.length - 1].t_ms : Date.now();
    // The window grows with the data from 1 minute up to CHART_SECS.
    const have = series.length ? Math.ceil((now - series[0].t_ms) / 1000) + 1 : 0;
    const win = Math.min(CHART_SECS, Math.max(60, Math.ceil(have / 60) * 60));
    setText("chart-span", win / 60 + " min");
    const x = (t) => padL + pw - ((now - t) / 1000 / win) * pw;
    const bw = Math.max(1, pw / win - 0.5);
    for (const s of series) {
      if (now - s.t_ms >= win * 1000) continue;
      const bx = x(s.t_ms) - bw;
      const okH = (ph * (s.calls - s.errors)) / maxCalls, errH = (ph * s.errors) / maxCalls;
      g.fillStyle = color("--ok"); g.fillRect(bx, padT + ph - okH, bw, okH);
      g.fillStyle = color("--err"); g.fillRect(bx, padT + ph - okH - errH, bw, errH);
    }
    for (const [key, col] of [["p95_ms", "--p95"], ["mean_ms", "--mean"]]) {
      g.strokeStyle = color(col); g.fillStyle = color(col); g.lineWidth = 1.5; g.beginPath();
      let started = false;
      for (const s of series) {
        if (s[key] === null || s[key] === undefined) { started = false; continue; }
        const px = x(s.t_ms) - bw / 2, py = padT + ph - (ph * s[key]) / maxLat;
        if (started) g.lineTo(px, py); else { g.moveTo(px, py); started = true; }
      }
      g.stroke();
      // Seconds with calls get a dot, so isolated seconds are visible too.
      for (const s of series) {
        if (s[key] === null || s[key] === undefined) continue;
        g.beginPath();
        g.arc(x(s.t_ms) - bw / 2, padT + ph - (ph * s[key]) / maxLat, 2.5, 0, 2 * Math.PI);
        g.fill();
      }
    }
    g.fillStyle = color("--muted"); g.textAlign = "center";
    const step = win / 6;
    for (let i = 0; i <= 6; i++) {
      const secs = i * step;
      const label = i === 0 ? "now" : secs % 60 === 0 ? "-" + secs / 60 + "m" : "-" + secs + "s";
      g.fillText(label, padL + pw - (pw * secs) / win, h - 6);
    }
  }

  // ---- lists (every 5 s, sooner after new calls) --------------------------------------------
  async function refreshLists() {
    if (listsBusy) return;
    listsBusy = true;
    listsDue = Date.now() + 5000;
    try {
      const [calls, providers, errors, observations] = await Promise.all([
        api("/api/toolcalls?limit=20"),
        api("/api/providers"),
        api("/api/errors?resolved=false&limit=20"),
        api("/api/auditor/observations?acknowledged=false&limit=20"),
      ]);
      renderCalls(calls.calls);
      renderProviders(providers);
      renderErrors(errors.errors);
      renderObservations(observations.observations);
      api("/api/cluster").then(renderCluster, (e) => {
        fill("cluster", empty("cluster store unavailable: " + e.message));
      });
    } catch (e) {
      setLive(false, "API error: " + e.message);
    } finally {
      listsBusy = false;
    }
  }
  function renderCluster(c) {
    $("cluster-summary").textContent = c.enabled ? "(" + c.nodes.length + " nodes; this is " + c.node_id + ")" : "";
    if (!c.enabled) {
      fill("cluster", empty("single node (cluster.redis_url is not set)"));
      return;
    }
    fill("cluster", c.nodes.length ? table([
      { title: "node", get: (n) => (n.self ? n.id + " (this node)" : n.id) },
      { title: "address", get: (n) => n.address },
      { title: "version", get: (n) => n.version },
      { title: "age", num: true, get: (n) => fmtDuration(n.age_secs) },
      { title: "in flight", num: true, get: (n) => n.inflight },
      { title: "last heartbeat", num: true, get: (n) => fmtMs(n.heartbeat_age_ms) },
    ], c.nodes) : empty("no live nodes"));
  }
  function renderCalls(rows) {
    fill("toolcalls", rows.length ? table([
      { title: "time", get: (c) => fmtTime(c.started_at_ms) },
      { title: "tool", get: (c) => c.tool },
      { title: "protocol", get: (c) => c.protocol },
      { title: "outcome", get: (c) => el("span", {}, tag(c.outcome), c.error_code ? " " + c.error_code : "") },
      { title: "total", num: true, get: (c) => fmtMs(c.total_ms) },
      { title: "global wait", num: true, get: (c) => fmtMs(c.global_wait_ms) },
      { title: "provider wait", num: true, get: (c) => fmtMs(c.provider_wait_ms) },
      { title: "provider", get: (c) => c.provider || "–" },
    ], rows) : empty("no tool calls logged yet"));
  }
  function renderProviders(p) {
    const parts = [];
    if (p.configured === 0) parts.push(empty("no providers configured (no provider API key is set)"));
    const used = p.providers.filter((r) => r.configured || r.calls > 0 || r.requests > 0);
    if (used.length) {
      parts.push(table([
        { title: "provider", get: (r) => r.name },
        { title: "key", get: (r) => (r.configured ? "set" : "–") },
        { title: "breaker", get: (r) => (r.breaker ? tag(r.breaker.state) : "–") },
        { title: "calls", num: true, get: (r) => r.calls },
        { title: "errors", num: true, get: (r) => r.errors },
        { title: "error rate", num: true, get: (r) => pct(r.error_rate) },
        { title: "mean", num: true, get: (r) => fmtMs(r.mean_ms) },
        { title: "p95", num: true, get: (r) => fmtMs(r.p95_ms) },
        { title: "req mean", num: true, get: (r) => fmtMs(r.request_mean_ms) },
      ], used));
    } else if (p.configured > 0) {
      parts.push(empty("no provider calls in the last hour"));
    }
    fill("providers", el("div", {}, ...parts));
  }
  function analysis(e) {
    if (!e.investigation_result) return null;
    const body = el("pre", {}, JSON.stringify(e.investigation_result, null, 2) +
      (e.fix_recommendation ? "\nfix: " + JSON.stringify(e.fix_recommendation, null, 2) : ""));
    return el("details", {}, el("summary", {}, "analysis by " + (e.model_used || "model")), body);
  }
  function renderErrors(rows) {
    fill("errors", rows.length ? table([
      { title: "error", cls: "msg", get: (e) => el("div", {}, el("div", {}, e.error_message), el("div", { class: "muted small" }, e.error_type), analysis(e)) },
      { title: "count", num: true, get: (e) => e.occurrence_count },
      { title: "last seen", get: (e) => el("span", { title: "first seen " + fmtDateTime(e.first_seen_at_ms) }, fmtTime(e.last_occurrence_at_ms)) },
      { title: "", get: (e) => {
        const notes = el("input", { class: "notes", placeholder: "notes", "aria-label": "resolution notes" });
        const btn = el("button", { "data-error-id": String(e.id), onclick: async () => {
          btn.disabled = true;
          try { await post("/api/errors/" + e.id + "/resolve", { notes: notes.value || null }); await refreshLists(); }
          catch (err) { btn.disabled = false; setLive(false, "resolve failed: " + err.message); }
        } }, "Resolve");
        return el("span", {}, notes, " ", btn);
      } },
    ], rows) : empty("no open errors"));
  }
  function renderObservations(rows) {
    fill("observations", rows.length ? table([
      { title: "severity", get: (o) => tag(o.severity) },
      { title: "observation", cls: "msg", get: (o) => el("div", {}, el("div", {}, o.observation),
        o.recommendation ? el("div", { class: "muted small" }, "→ " + o.recommendation) : null,
        el("div", { class: "muted small" }, o.category + (o.model_used ? " · " + o.model_used : "") + " · " + fmtTime(o.created_at_ms))) },
      { title: "", get: (o) => {
        const btn = el("button", { "data-observation-id": String(o.id), onclick: async () => {
          btn.disabled = true;
          try { await post("/api/auditor/observations/" + o.id + "/acknowledge", {}); await refreshLists(); }
          catch (err) { btn.disabled = false; setLive(false, "acknowledge failed: " + err.message); }
        } }, "Acknowledge");
        return btn;
      } },
    ], rows) : empty("no open observations"));
  }

  // ---- live feed -----------------------------------------------------------------------------
  function setLive(on, text) {
    $("live").className = "dot " + (on ? "on" : "off");
    setText("live-text", text);
  }
  function connect() {
    const es = new EventSource(withToken("/dashboard/events"));
    es.addEventListener("overview", (ev) => {
      setLive(true, "live");
      renderOverview(JSON.parse(ev.data));
    });
    es.onerror = () => setLive(false, "reconnecting…");
  }

  async function start() {
    try {
      const ts = await api("/api/timeseries?secs=" + CHART_SECS);
      for (const s of ts.samples) pushSample(s);
      renderOverview(await api("/api/overview"));
    } catch (e) {
      setLive(false, "API error: " + e.message);
    }
    drawChart();
    connect();
    await refreshLists();
    setInterval(() => { if (Date.now() >= listsDue) refreshLists(); }, 500);
    window.addEventListener("resize", drawChart);
  }
  start();
})();
