// promptwall UI: a small single-page app over /api/*. Every value from the
// store is escaped before it reaches the page (model names, executables and
// users are chosen by local processes).
"use strict";

const $ = (sel, el = document) => el.querySelector(sel);
const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const nf = new Intl.NumberFormat();
const num = (n) => (n == null ? "–" : nf.format(n));
const usd = (n) => (n == null ? "–" : new Intl.NumberFormat(undefined, { style: "currency", currency: "USD", maximumFractionDigits: n < 1 ? 4 : 2 }).format(n));
const when = (ts) => (ts ? new Date(ts).toLocaleString() : "–");
const compact = new Intl.NumberFormat(undefined, { notation: "compact" });
const pill = (v) => `<span class="pill v-${esc(v)}">${esc(v)}</span>`;
const COLORS = ["var(--c1)", "var(--c2)", "var(--c3)", "var(--c4)", "var(--c5)", "var(--c6)", "var(--c7)", "var(--c8)"];

let live = null; // the Live page's EventSource

function since() { return $("#since").value; }

async function api(path, params = {}) {
  const q = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== "" && v != null));
  const resp = await fetch(`/api/${path}?${q}`, { credentials: "same-origin" });
  const body = await resp.json().catch(() => ({ error: `HTTP ${resp.status}` }));
  if (!resp.ok) throw new Error(body.error || `HTTP ${resp.status}`);
  return body;
}

function table(cols, rows, empty = "Nothing in this period.") {
  if (!rows.length) return `<div class="empty">${esc(empty)}</div>`;
  const head = cols.map((c) => `<th class="${c.num ? "num" : ""}">${esc(c.label)}</th>`).join("");
  const body = rows.map((r) => `<tr>${cols.map((c) => `<td class="${c.num ? "num" : ""}">${c.html(r)}</td>`).join("")}</tr>`).join("");
  return `<table><thead><tr>${head}</tr></thead><tbody>${body}</tbody></table>`;
}

function cards(items) {
  return `<div class="cards">${items.map(([label, value, id]) => `<div class="card"${id ? ` id="${id}"` : ""}><div class="l">${esc(label)}</div><div class="n">${value}</div></div>`).join("")}</div>`;
}

// Stacked bars per bucket, one colour per key (top 7, the rest as "other").
function stackedBars(points, value, title) {
  const totals = new Map();
  for (const p of points) totals.set(p.key ?? "unknown", (totals.get(p.key ?? "unknown") || 0) + value(p));
  const keys = [...totals.entries()].sort((a, b) => b[1] - a[1]).map(([k]) => k);
  const shown = keys.slice(0, 7);
  const keyOf = (k) => (shown.includes(k ?? "unknown") ? k ?? "unknown" : "other");
  const buckets = [...new Set(points.map((p) => p.bucket))].sort();
  if (!buckets.length) return `<div class="empty">No ${esc(title)} in this period.</div>`;
  const stacks = buckets.map((b) => {
    const parts = new Map();
    for (const p of points.filter((p) => p.bucket === b)) parts.set(keyOf(p.key), (parts.get(keyOf(p.key)) || 0) + value(p));
    return { b, parts, total: [...parts.values()].reduce((a, c) => a + c, 0) };
  });
  const legendKeys = keys.length > 7 ? [...shown, "other"] : shown;
  const color = (k) => COLORS[legendKeys.indexOf(k) % COLORS.length];
  const max = Math.max(...stacks.map((s) => s.total), 1e-9);
  const W = 900, H = 220, L = 56, B = 28, bw = Math.max(2, Math.min(40, (W - L - 10) / stacks.length - 2));
  let bars = "";
  stacks.forEach((s, i) => {
    let y = H - B;
    const x = L + i * ((W - L - 10) / stacks.length);
    for (const k of legendKeys) {
      const v = s.parts.get(k) || 0;
      if (!v) continue;
      const h = ((H - B - 10) * v) / max;
      y -= h;
      bars += `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${bw.toFixed(1)}" height="${h.toFixed(1)}" fill="${color(k)}"><title>${esc(k)} · ${esc(label(s.b))}: ${esc(compact.format(v))}</title></rect>`;
    }
  });
  const ticks = [0, 0.5, 1].map((f) => `<text x="${L - 6}" y="${(H - B - (H - B - 10) * f + 4).toFixed(1)}" text-anchor="end">${esc(compact.format(max * f))}</text><line class="axis" x1="${L}" x2="${W}" y1="${(H - B - (H - B - 10) * f).toFixed(1)}" y2="${(H - B - (H - B - 10) * f).toFixed(1)}"/>`).join("");
  const step = Math.ceil(stacks.length / 8);
  const xs = stacks.map((s, i) => (i % step ? "" : `<text x="${(L + i * ((W - L - 10) / stacks.length)).toFixed(1)}" y="${H - 8}">${esc(label(s.b))}</text>`)).join("");
  const legend = legendKeys.map((k) => `<span><i style="background:${color(k)}"></i>${esc(k)}</span>`).join("");
  return `<svg viewBox="0 0 ${W} ${H}" width="100%" role="img" aria-label="${esc(title)} over time">${ticks}${bars}${xs}</svg><div class="legend">${legend}</div>`;
}

// `2025-01-31T12` (UTC hour) or `2025-01-31` as the viewer's local time.
function label(bucket) {
  const d = new Date(bucket.length === 13 ? `${bucket}:00:00Z` : `${bucket}T00:00:00Z`);
  return bucket.length === 13 ? d.toLocaleString(undefined, { month: "short", day: "numeric", hour: "2-digit" }) : d.toLocaleDateString();
}

function rowLink(r) {
  return `#/request/${encodeURIComponent(r.machine_id)}/${encodeURIComponent(r.id)}`;
}

const liveCols = [
  { label: "time", html: (r) => `<a href="${rowLink(r)}">${esc(when(r.ts))}</a>` },
  { label: "user", html: (r) => esc(r.user ?? "–") },
  { label: "tool", html: (r) => esc(r.tool ?? "–") },
  { label: "provider", html: (r) => esc(r.provider ?? "–") },
  { label: "model", html: (r) => esc(r.model ?? "–") },
  { label: "verdict", html: (r) => pill(r.verdict) },
  { label: "findings", html: (r) => esc(Object.entries(r.findings || {}).map(([k, n]) => `${k}×${n}`).join(", ")) },
  { label: "tokens in / out", num: true, html: (r) => `${num(r.input_tokens)} / ${num(r.output_tokens)}` },
  { label: "cost", num: true, html: (r) => usd(r.cost_usd) },
  { label: "ms", num: true, html: (r) => num(Math.round(r.duration_ms)) },
];

function liveRow(r) {
  const tr = document.createElement("tr");
  tr.className = "fresh";
  tr.dataset.key = r.key;
  tr.dataset.requestId = r.request_id;
  tr.innerHTML = liveCols.map((c) => `<td class="${c.num ? "num" : ""}">${c.html(r)}</td>`).join("");
  return tr;
}

const pages = {
  async live(el) {
    el.innerHTML = `<h1>Live requests</h1>
      <div class="filters" role="search">
        <input id="f-user" placeholder="user" aria-label="user">
        <input id="f-tool" placeholder="tool" aria-label="tool">
        <input id="f-provider" placeholder="provider" aria-label="provider">
        <select id="f-verdict" aria-label="verdict"><option value="">any verdict</option>
          ${["allowed", "redacted", "blocked", "limited", "error", "passthrough"].map((v) => `<option>${v}</option>`).join("")}</select>
        <span class="muted" id="live-state">connecting…</span>
      </div>
      <div class="panel"><table id="live"><thead><tr>${liveCols.map((c) => `<th class="${c.num ? "num" : ""}">${c.label}</th>`).join("")}</tr></thead><tbody></tbody></table></div>`;
    const connect = () => {
      if (live) live.close();
      $("#live tbody").innerHTML = "";
      const q = new URLSearchParams({ since: since(), limit: "100" });
      for (const f of ["user", "tool", "provider", "verdict"]) if ($(`#f-${f}`).value) q.set(f, $(`#f-${f}`).value);
      live = new EventSource(`/api/live?${q}`);
      live.addEventListener("open", () => ($("#live-state").textContent = "live"));
      live.addEventListener("error", () => ($("#live-state").textContent = "reconnecting…"));
      live.addEventListener("row", (e) => {
        const body = $("#live tbody");
        if (!body) return;
        body.prepend(liveRow(JSON.parse(e.data)));
        while (body.rows.length > 500) body.deleteRow(-1);
        $("#live-state").textContent = `live · ${body.rows.length} shown`;
      });
    };
    for (const f of ["user", "tool", "provider", "verdict"]) $(`#f-${f}`).addEventListener("change", connect);
    // Arriving from a tool's link on the Agents page: show that tool.
    const tool = sessionStorage.getItem("pw-tool");
    if (tool) { $("#f-tool").value = tool; sessionStorage.removeItem("pw-tool"); }
    connect();
  },

  async request(el, machine, id) {
    const r = await api("row", { machine, id });
    const kv = (pairs) => `<dl class="kv">${pairs.filter(([, v]) => v != null && v !== "").map(([k, v]) => `<dt>${esc(k)}</dt><dd>${v}</dd>`).join("")}</dl>`;
    const attempts = r.routing?.attempts || [];
    el.innerHTML = `<h1>Request ${esc(r.request_id || r.id)} ${pill(r.verdict)}</h1>
      <div class="grid2">
        <div class="panel"><h2>Who</h2>${kv([
          ["user", esc(r.user)], ["login user", esc(r.login_user)], ["tool", esc(r.tool)], ["executable", esc(r.exe)],
          ["pid", esc(r.pid)], ["command line", esc(r.cmdline)], ["machine", esc(r.machine_id)], ["container", esc([r.container_name, r.container_image, r.container_id && r.container_id.slice(0, 12)].filter(Boolean).join(" · "))],
          ["listener", esc(r.listener)]])}</div>
        <div class="panel"><h2>What</h2>${kv([
          ["when", esc(when(r.ts))], ["provider", esc(r.provider)], ["host", esc(r.host)], ["request", `${esc(r.method)} ${esc(r.path)}`],
          ["API shape", esc(r.shape)], ["model", esc(r.model)], ["status", esc(r.status)],
          ["tokens in / out", `${num(r.input_tokens)} / ${num(r.output_tokens)}`],
          ["cache read / write", `${num(r.cache_read_tokens)} / ${num(r.cache_write_tokens)}`],
          ["estimated cost", usd(r.cost_usd)], ["duration", `${num(r.duration_ms)} ms`], ["time to first byte", r.ttfb_ms == null ? "" : `${num(r.ttfb_ms)} ms`],
          ["error", esc(r.error)]])}</div>
      </div>
      <div class="grid2">
        <div class="panel"><h2>Inspection</h2>${kv([
          ["verdict", pill(r.verdict)],
          ["findings", esc(Object.entries(r.findings || {}).map(([k, n]) => `${k} × ${n}`).join(", ") || "none")],
          ["secret fingerprints", esc((r.fingerprints || []).map((f) => `${f.kind} ${f.fp}`).join(", "))]])}
          <p class="muted">Secret values are never stored: a fingerprint lets you find the same secret elsewhere.</p></div>
        <div class="panel"><h2>Route</h2>${r.route ? kv([
          ["rule", esc(r.route)], ["upstream", esc(r.upstream)], ["requested model", esc(r.routing?.requested_model)],
          ["upstream model", esc(r.routing?.upstream_model)],
          ["translation", r.routing?.translation ? esc(`${r.routing.translation.from} → ${r.routing.translation.to}`) : ""],
          ["notes", esc((r.routing?.notes || []).join("; "))]]) +
          table([{ label: "attempt", html: (a) => esc(a.upstream) }, { label: "status", html: (a) => esc(a.status) },
            { label: "ms", num: true, html: (a) => num(a.ms) }, { label: "outcome", html: (a) => esc(a.outcome) }], attempts, "one attempt")
          : `<p class="muted">Not routed: sent where the client addressed it.</p>`}</div>
      </div>
      <div class="panel"><h2>Bodies</h2>${r.bodies_hidden ? `<p class="muted">Hidden: start the UI with --show-bodies to see captured bodies.</p>`
        : r.request_body || r.response_body ? `<h2>request (as the provider saw it)</h2><pre>${esc(r.request_body)}</pre><h2>answer</h2><pre>${esc(r.response_body)}</pre>`
        : `<p class="muted">Not captured ([audit] capture_bodies is off).</p>`}</div>
      <p class="muted">Row ${esc(r.id)} · hash ${esc(r.hash)}</p>`;
  },

  async agents(el) {
    const { agents } = await api("agents", { since: since() });
    const max = Math.max(1, ...agents.map((a) => a.requests));
    const total = agents.reduce((a, c) => a + c.requests, 0);
    el.innerHTML = `<h1>Agents</h1>
      <p class="muted">From kernel attribution of each connection: the process that connected, not a header it chose to send.</p>
      ${cards([["tools seen", num(agents.filter((a) => a.tool).length), "agents-tools"], ["requests", num(total), "agents-requests"],
        ["most users", esc(agents.length ? [...agents].sort((a, b) => b.users - a.users)[0].tool ?? "unknown" : "–")]])}
      <div class="panel">${table([
        { label: "tool", html: (a) => `<a href="#/live" data-tool="${esc(a.tool ?? "")}">${esc(a.tool ?? "unattributed")}</a>` },
        { label: "machines", num: true, html: (a) => num(a.machines) },
        { label: "users", num: true, html: (a) => num(a.users) },
        { label: "requests", num: true, html: (a) => num(a.requests) },
        { label: "", html: (a) => `<span class="bar" style="width:${Math.round((160 * a.requests) / max)}px"></span>` },
        { label: "first seen", html: (a) => esc(when(a.first_seen)) },
        { label: "last seen", html: (a) => esc(when(a.last_seen)) }], agents)}</div>`;
    el.querySelectorAll("[data-tool]").forEach((a) => a.addEventListener("click", () => sessionStorage.setItem("pw-tool", a.dataset.tool)));
  },

  async spend(el) {
    const by = sessionStorage.getItem("pw-spend-by") || "tool";
    const bucket = ["1h", "24h"].includes(since()) ? "hour" : "day";
    const [{ points }, users, models, tools] = await Promise.all([
      api("series", { by, bucket, since: since() }), api("top", { by: "user", since: since(), limit: 10 }),
      api("top", { by: "model", since: since(), limit: 10 }), api("top", { by: "tool", since: since(), limit: 10 })]);
    const sum = (f) => tools.rows.reduce((a, r) => a + f(r), 0);
    const hasCost = points.some((p) => p.cost_usd > 0);
    const topCols = (what) => [
      { label: what, html: (r) => esc(r.key ?? "unknown") }, { label: "requests", num: true, html: (r) => num(r.requests) },
      { label: "tokens in", num: true, html: (r) => num(r.input_tokens) }, { label: "tokens out", num: true, html: (r) => num(r.output_tokens) },
      { label: "cost", num: true, html: (r) => usd(r.cost_usd) }];
    el.innerHTML = `<h1>Spend</h1>
      ${cards([["requests", num(sum((r) => r.requests)), "spend-requests"], ["input tokens", num(sum((r) => r.input_tokens)), "spend-input"],
        ["output tokens", num(sum((r) => r.output_tokens)), "spend-output"], ["estimated cost", usd(sum((r) => r.cost_usd)), "spend-cost"]])}
      <div class="panel"><h2>${hasCost ? "Estimated cost" : "Tokens"} per ${bucket} by
        <select id="spend-by" aria-label="group by">${["tool", "user", "model", "machine"].map((b) => `<option${b === by ? " selected" : ""}>${b}</option>`).join("")}</select></h2>
        ${stackedBars(points, hasCost ? (p) => p.cost_usd : (p) => p.input_tokens + p.output_tokens, hasCost ? "cost" : "tokens")}</div>
      <div class="grid2">
        <div class="panel"><h2>Top spenders</h2>${table(topCols("user"), users.rows)}</div>
        <div class="panel"><h2>By model</h2>${table(topCols("model"), models.rows)}</div>
      </div>
      <div class="panel"><h2>By tool</h2>${table(topCols("tool"), tools.rows)}</div>
      <div class="panel" id="budgets"><h2>Budgets</h2><p class="muted">Asking the daemon…</p></div>`;
    api("daemon").then((d) => {
      const limits = d.limits || [];
      $("#budgets").innerHTML = `<h2>Budgets</h2>` + (d.error ? `<p class="muted">${esc(d.error)}</p>` : table([
        { label: "limit", html: (l) => esc(l.limit) }, { label: "who", html: (l) => esc(`${l.per} ${l.key}`) },
        { label: "measure", html: (l) => esc(l.measure) },
        { label: "used", num: true, html: (l) => `${num(Math.round(l.used))} / ${num(l.max)}` },
        { label: "", html: (l) => `<span class="bar" style="width:${Math.round(Math.min(1, (l.used + l.reserved) / Math.max(l.max, 1e-9)) * 160)}px;background:${l.used >= l.max ? "var(--bad)" : l.used >= 0.8 * l.max ? "var(--warn)" : "var(--accent)"}"></span>` },
        { label: "resets in", num: true, html: (l) => esc(`${Math.round(l.resets_in)} s`) }], limits, "No limit has counted anything yet ([quota] in the config)."));
    }).catch((e) => ($("#budgets").innerHTML = `<h2>Budgets</h2><p class="error">${esc(e.message)}</p>`));
    $("#spend-by").addEventListener("change", (e) => { sessionStorage.setItem("pw-spend-by", e.target.value); route(); });
  },

  async protection(el) {
    const bucket = ["1h", "24h"].includes(since()) ? "hour" : "day";
    const p = await api("protection", { since: since(), bucket });
    const blocked = p.points.reduce((a, c) => a + c.blocked, 0);
    const redacted = p.points.reduce((a, c) => a + c.redacted, 0);
    const byVerdict = p.points.flatMap((pt) => [
      { bucket: pt.bucket, key: "blocked", v: pt.blocked }, { bucket: pt.bucket, key: "redacted", v: pt.redacted }]).filter((x) => x.v > 0);
    el.innerHTML = `<h1>Protection</h1>
      ${cards([["requests blocked", num(blocked), "prot-blocked"], ["requests redacted", num(redacted), "prot-redacted"],
        ["secrets pasted again", num(p.repeated.length), "prot-repeated"]])}
      <div class="panel"><h2>Blocks and redactions per ${bucket}</h2>${stackedBars(byVerdict, (x) => x.v, "blocks and redactions")}</div>
      <div class="grid2">
        <div class="panel"><h2>By kind</h2>${table([
          { label: "kind", html: (r) => esc(r.key) }, { label: "requests", num: true, html: (r) => num(r.requests) },
          { label: "blocked", num: true, html: (r) => num(r.blocked) }, { label: "redacted", num: true, html: (r) => num(r.redacted) }], p.kinds)}</div>
        <div class="panel"><h2>The same secret, again</h2>${table([
          { label: "kind", html: (r) => esc(r.kind) }, { label: "fingerprint", html: (r) => `<code>${esc(r.fingerprint.slice(0, 16))}…</code>` },
          { label: "times", num: true, html: (r) => num(r.times) }, { label: "who", html: (r) => esc(r.users.join(", ")) },
          { label: "last", html: (r) => esc(when(r.last_seen)) }], p.repeated, "No secret was blocked twice.")}</div>
      </div>
      <div class="panel" id="learned"><h2>Learned passthroughs</h2><p class="muted">Asking the daemon…</p></div>`;
    api("daemon").then((d) => {
      const learned = d.learned_passthrough || [];
      $("#learned").innerHTML = `<h2>Learned passthroughs</h2>` + (d.error ? `<p class="muted">${esc(d.error)}</p>` :
        `<p class="muted">Programs that rejected the org CA; their connections pass uninspected (or stay blocked), so they need the CA installed.</p>` +
        table(Object.keys(learned[0] || {}).map((k) => ({ label: k, html: (r) => esc(typeof r[k] === "object" ? JSON.stringify(r[k]) : r[k]) })), learned, "None: every program trusts the org CA."));
    }).catch(() => {});
  },

  async setup(el) {
    const s = await api("setup");
    const ca = s.ca || {};
    const d = s.daemon || {};
    const dot = (on) => `<span class="status-dot ${on ? "on" : "off"}"></span>`;
    el.innerHTML = `<h1>Setup and health</h1>
      <div class="grid2">
        <div class="panel"><h2>Org CA</h2>${ca.error ? `<p class="error">${esc(ca.error)}</p>` : `<dl class="kv">
          <dt>subject</dt><dd>${esc(ca.subject)}</dd><dt>SHA-256</dt><dd><code>${esc(ca.fingerprint_sha256)}</code></dd>
          <dt>valid until</dt><dd>${esc(ca.not_after)} (${esc(ca.days_left)} days)</dd></dl>`}</div>
        <div class="panel"><h2>Daemon</h2>${d.error ? `<p>${dot(false)}${esc(d.error)}</p>` : `<dl class="kv">
          <dt>state</dt><dd>${dot(true)}running ${esc(d.version)}, up ${num(d.uptime_secs)} s</dd>
          <dt>requests</dt><dd>${num(d.counts?.requests)}</dd>
          <dt>interception</dt><dd>${d.intercept ? esc(`${d.intercept.mode}, fail ${d.intercept.fail}`) : "off (explicit mode)"}</dd></dl>`}
          <p class="muted">Configured: interception ${s.intercept.enabled ? "on" : "off"}, fail ${esc(s.intercept.fail)}; store ${esc(s.store)}.</p></div>
      </div>
      <div class="panel"><h2>Checks</h2>
        <p class="muted"><code>promptwall doctor</code> on the machine serving this page (eBPF loading skipped).</p>
        <button id="run-doctor" type="button">Run checks</button>
        <div id="doctor" data-state="idle"></div></div>
      <div class="panel"><h2>Install on a new machine</h2><pre>${esc(s.install.join("\n"))}</pre>
        <p class="muted">Then run <code>promptwall doctor</code> there; it checks the redirect, the CA and the store.</p></div>`;
    $("#run-doctor").addEventListener("click", async () => {
      const out = $("#doctor");
      $("#run-doctor").disabled = true;
      out.dataset.state = "running";
      out.innerHTML = `<p class="muted">running… (the TLS checks start real clients)</p>`;
      try {
        const { checks } = await api("doctor");
        const mark = { pass: "on", skip: "skip", warn: "warn", fail: "off" };
        out.innerHTML = table([
          { label: "check", html: (c) => esc(c.id) },
          { label: "result", html: (c) => `<span class="status-dot ${mark[c.outcome] || "skip"}"></span>${esc(c.outcome)}` },
          { label: "detail", html: (c) => esc(c.detail) },
          { label: "fix", html: (c) => esc(c.fix || "") }], checks, "No checks ran.");
        out.dataset.state = "done";
      } catch (e) {
        out.innerHTML = `<p class="error">${esc(e.message)}</p>`;
        out.dataset.state = "failed";
      }
      $("#run-doctor").disabled = false;
    });
  },
};

async function route() {
  if (live) { live.close(); live = null; }
  const [, name = "live", ...rest] = location.hash.split("/");
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.page === name || (name === "request" && a.dataset.page === "live")));
  const el = $("#page");
  const page = pages[name] || pages.live;
  el.dataset.page = name;
  el.dataset.ready = "no";
  try {
    await page(el, ...rest.map(decodeURIComponent));
  } catch (e) {
    el.innerHTML = `<h1>Could not load this page</h1><p class="error">${esc(e.message)}</p>`;
  }
  el.dataset.ready = "yes";
}

function applyTheme(t) {
  if (t) document.documentElement.dataset.theme = t; else delete document.documentElement.dataset.theme;
}

applyTheme(localStorage.getItem("pw-theme"));
$("#theme").addEventListener("click", () => {
  const dark = getComputedStyle(document.documentElement).colorScheme === "dark";
  const next = dark ? "light" : "dark";
  localStorage.setItem("pw-theme", next);
  applyTheme(next);
});
$("#since").value = localStorage.getItem("pw-since") || "7d";
$("#since").addEventListener("change", () => { localStorage.setItem("pw-since", since()); route(); });
window.addEventListener("hashchange", route);
api("me").then((m) => ($("#who").textContent = `Signed in as ${m.viewer} · store ${m.store}`)).catch(() => {});
route();
