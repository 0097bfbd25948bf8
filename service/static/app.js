// The model page: draws /stats (table + chart), classifies the typed text with every model through
// POST /classify. No framework, no build step. An API key typed into the page is kept in sessionStorage
// and sent as "Authorization: Bearer <key>".
"use strict";

const KEY = "slimtext-api-key";
const SVG = "http://www.w3.org/2000/svg";
const COLORS = { full: "#d1495b", lowrank: "#2e86ab", int8: "#edae49" };
let models = [];

const $ = (id) => document.getElementById(id);

function el(tag, attrs, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function fmtBytes(b) {
  if (b >= 1024 * 1024) return (b / 1024 / 1024).toFixed(2) + " MiB";
  return (b / 1024).toFixed(b < 10240 ? 1 : 0) + " KiB";
}
const fmtCount = (n) => (n >= 1e6 ? (n / 1e6).toFixed(2) + " M" : n >= 1e3 ? (n / 1e3).toFixed(1) + " k" : String(n));
const fmtPct = (x) => (x == null ? "–" : (100 * x).toFixed(2) + " %");
const fmtMs = (x) => (x == null ? "–" : x < 1 ? (x * 1000).toFixed(0) + " µs" : x.toFixed(2) + " ms");

function setStatus(text, isError) {
  const s = $("status");
  s.textContent = text;
  s.className = isError ? "error" : "";
}

async function api(path, options) {
  const headers = Object.assign({}, (options && options.headers) || {});
  const key = sessionStorage.getItem(KEY);
  if (key) headers["Authorization"] = "Bearer " + key;
  const r = await fetch(path, Object.assign({}, options, { headers }));
  let body = null;
  try { body = await r.json(); } catch (e) { /* not JSON */ }
  if (!r.ok) {
    const err = new Error((body && body.message) || r.status + " " + r.statusText);
    err.status = r.status;
    throw err;
  }
  return body;
}

function authHint(err) {
  return err.status === 401 || err.status === 403
    ? "This service needs an API key: type it above and press Use (" + err.message + ")."
    : "Could not reach the service: " + err.message;
}

function renderTable(stats) {
  const body = $("models").tBodies[0];
  body.replaceChildren(...stats.models.map((m) => {
    const name = el("td", {}, m.name);
    if (m.default) name.append(el("span", { class: "badge" }, "default"));
    const lat = m.latency || {};
    return el("tr", { "data-model": m.name },
      name, el("td", {}, m.kind), el("td", {}, m.rank == null ? "–" : m.rank),
      el("td", { class: "bytes" }, fmtBytes(m.onnx_bytes)), el("td", {}, fmtCount(m.params)),
      el("td", {}, fmtBytes(m.rss_growth_bytes)), el("td", {}, fmtPct(m.dev_accuracy)),
      el("td", {}, fmtPct(m.test_accuracy)),
      el("td", { class: "requests" }, m.requests + (m.errors ? " (" + m.errors + " err)" : "")),
      el("td", { class: "p50" }, fmtMs(lat.p50_ms)), el("td", { class: "p99" }, fmtMs(lat.p99_ms)));
  }));
}

function sizeTicks(lo, hi) {  // powers of two in KiB between lo and hi: 256 KiB, 512 KiB, 1 MiB, ...
  const ticks = [];
  for (let e = Math.floor(Math.log2(lo)); e <= Math.ceil(Math.log2(hi)); e++) {
    const v = Math.pow(2, e);
    if (v >= lo && v <= hi) ticks.push(v);
  }
  return ticks;
}

function renderChart(stats) {
  const pts = stats.models
    .map((m) => ({ m, acc: m.test_accuracy != null ? m.test_accuracy : m.dev_accuracy, kib: m.onnx_bytes / 1024 }))
    .filter((p) => p.acc != null && p.kib > 0);
  const box = $("chart");
  if (!pts.length) { box.replaceChildren(el("p", { class: "hint" }, "No model has a recorded accuracy.")); return; }
  const W = 720, H = 340, L = 64, R = 170, T = 28, B = 50;
  let x0 = Math.log10(Math.min(...pts.map((p) => p.kib)) / 1.6), x1 = Math.log10(Math.max(...pts.map((p) => p.kib)) * 1.6);
  let y0 = Math.min(...pts.map((p) => p.acc)) * 100, y1 = Math.max(...pts.map((p) => p.acc)) * 100;
  const pad = Math.max(1, (y1 - y0) * 0.25);
  y0 = Math.floor(y0 - pad); y1 = Math.ceil(y1 + pad);
  const X = (kib) => L + ((Math.log10(kib) - x0) / (x1 - x0)) * (W - L - R);
  const Y = (pct) => T + (1 - (pct - y0) / (y1 - y0)) * (H - T - B);
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "img",
    "aria-label": "test accuracy against ONNX file size" });
  for (const t of sizeTicks(Math.pow(10, x0), Math.pow(10, x1))) {
    svg.append(el("svg:line", { class: "grid", x1: X(t), x2: X(t), y1: T, y2: H - B }));
    svg.append(el("svg:text", { x: X(t), y: H - B + 16, "text-anchor": "middle" },
      t >= 1024 ? t / 1024 + " MiB" : t + " KiB"));
  }
  const step = (y1 - y0) > 10 ? 5 : (y1 - y0) > 4 ? 1 : 0.5;
  for (let v = Math.ceil(y0 / step) * step; v <= y1; v += step) {
    svg.append(el("svg:line", { class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    svg.append(el("svg:text", { x: L - 6, y: Y(v) + 4, "text-anchor": "end" }, v.toFixed(step < 1 ? 1 : 0)));
  }
  svg.append(el("svg:line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
  svg.append(el("svg:line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
  svg.append(el("svg:text", { x: (L + W - R) / 2, y: H - 8, "text-anchor": "middle" }, "ONNX file size (log scale)"));
  svg.append(el("svg:text", { x: 14, y: (T + H - B) / 2, "text-anchor": "middle",
    transform: `rotate(-90 14 ${(T + H - B) / 2})` }, "test accuracy (%)"));
  svg.append(el("svg:text", { x: W - R, y: 16, "text-anchor": "end", fill: "#666" }, "better: up and to the left ↖"));
  for (const p of pts) {
    const g = el("svg:g", { class: "point", "data-model": p.m.name });
    const cx = X(p.kib), cy = Y(p.acc * 100);
    g.append(el("svg:circle", { cx, cy, r: 6, fill: COLORS[p.m.kind] || "#555" }));
    g.append(el("svg:text", { x: cx + 10, y: cy - 2 }, p.m.name));
    g.append(el("svg:text", { x: cx + 10, y: cy + 12, fill: "#666" }, (100 * p.acc).toFixed(2) + " %, " + fmtBytes(p.m.onnx_bytes)));
    g.append(el("svg:title", {}, `${p.m.name}: ${(100 * p.acc).toFixed(2)} %, ${fmtBytes(p.m.onnx_bytes)}`));
    svg.append(g);
  }
  box.replaceChildren(svg);
}

async function refresh() {
  try {
    const stats = await api("stats");
    const names = stats.models.map((m) => m.name).join();
    if (names !== models.map((m) => m.name).join()) renderChart(stats);
    models = stats.models;
    renderTable(stats);
    if ($("status").className === "error") setStatus("");
  } catch (err) {
    setStatus(authHint(err), true);
  }
}

function renderResult(m, res) {
  const card = el("div", { class: "result", "data-model": m.name }, el("h3", {}, m.name));
  if (res.error) {
    card.append(el("p", { class: "error" }, res.error));
    return card;
  }
  const p = res.predictions[0];
  card.append(el("div", { class: "label" }, p.label), el("div", { class: "hint" }, "score " + p.score.toFixed(4) + ", " + p.n_tokens + " tokens"));
  const sorted = Object.entries(p.probabilities).sort((a, b) => b[1] - a[1]);
  for (const [label, prob] of sorted) {
    const bar = el("div", { class: "bar" }, el("div", { style: `width:${(100 * prob).toFixed(1)}%` }));
    card.append(el("div", { class: "prob" }, el("span", {}, label), bar, el("span", {}, (100 * prob).toFixed(1) + " %")));
  }
  return card;
}

async function classifyAll(event) {
  event.preventDefault();
  const text = $("text").value;
  if (!text.trim()) { setStatus("Type a sentence first.", true); return; }
  if (!models.length) await refresh();
  const answers = await Promise.all(models.map((m) =>
    api("classify", { method: "POST", headers: { "content-type": "application/json" },
                      body: JSON.stringify({ texts: [text], model: m.name }) })
      .catch((err) => ({ error: authHint(err) }))));
  $("results").replaceChildren(...models.map((m, i) => renderResult(m, answers[i])));
  refresh();
}

document.addEventListener("DOMContentLoaded", () => {
  $("api-key").value = sessionStorage.getItem(KEY) || "";
  $("key-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const key = $("api-key").value.trim();
    if (key) sessionStorage.setItem(KEY, key); else sessionStorage.removeItem(KEY);
    refresh();
  });
  $("try-form").addEventListener("submit", classifyAll);
  $("text").addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) classifyAll(e); });
  refresh();
  setInterval(refresh, 3000);
});
