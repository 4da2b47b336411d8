// The ring page: polls /ring, draws every node at its ID's angle on the
// circle and lists it below. Served by the node with everything it needs;
// it talks to nothing but its own origin.
"use strict";

const POLL_MS = 3000;
const R = 220; // the circle's radius in SVG units
const SVG = "http://www.w3.org/2000/svg";
const FULL = 1n << 256n;

// prev holds each node's request counter and when it was read, by ID, to
// turn two polls into a rate.
let prev = new Map();

function el(name, attrs, text) {
  const e = document.createElementNS(SVG, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

// frac is an ID's position as a fraction of the circle, in [0, 1).
function frac(id) {
  return Number(BigInt("0x" + id) >> 200n) / 2 ** 56;
}

// shares returns each node's part of the circle, (predecessor, node], for a
// ring given in ring order.
function shares(ring) {
  if (ring.length === 1) return [1];
  return ring.map((n, i) => {
    const p = BigInt("0x" + ring[(i + ring.length - 1) % ring.length].id);
    const d = (((BigInt("0x" + n.id) - p) % FULL) + FULL) % FULL;
    return Number(d >> 200n) / 2 ** 56;
  });
}

function point(f, r) {
  const a = 2 * Math.PI * f;
  return [r * Math.sin(a), -r * Math.cos(a)];
}

// colour is the arc colour of a share against an even 1/n: blue below,
// green at even, red at twice or more.
function colour(share, n) {
  const x = share * n;
  const hue = x <= 1 ? 120 + 90 * (1 - x) : 120 - 120 * Math.min(x - 1, 1);
  return `hsl(${hue.toFixed(0)}, 65%, 45%)`;
}

function arcPath(from, to) {
  const [x0, y0] = point(from, R);
  const [x1, y1] = point(to, R);
  let span = to - from;
  if (span <= 0) span += 1;
  return `M ${x0.toFixed(1)} ${y0.toFixed(1)} A ${R} ${R} 0 ${span > 0.5 ? 1 : 0} 1 ${x1.toFixed(1)} ${y1.toFixed(1)}`;
}

// splitHostPort splits "host:port" and "[v6]:port".
function splitHostPort(a) {
  const i = a.lastIndexOf(":");
  if (i < 0) return [a, ""];
  return [a.slice(0, i), a.slice(i + 1)];
}

// statusLink is where a node's own /status is: this page's node is the
// first of the walk; another node is reached on its admin address, with the
// host of its ring address when it listens on every interface.
function statusLink(n, first) {
  if (first) return "/status";
  if (!n.admin) return "";
  let [host, port] = splitHostPort(n.admin);
  if (host === "" || host === "0.0.0.0" || host === "[::]") host = splitHostPort(n.address)[0];
  return `${location.protocol}//${host}:${port}/status`;
}

function pct(share) {
  return (100 * share).toFixed(1) + "%";
}

function rate(n, now) {
  const p = prev.get(n.id);
  if (!p || now <= p.at || n.requests < p.requests) return "";
  return ((n.requests - p.requests) / ((now - p.at) / 1000)).toFixed(1);
}

function draw(ring, now) {
  const share = shares(ring);
  const arcs = document.getElementById("arcs");
  const nodes = document.getElementById("nodes");
  const tbody = document.querySelector("#table tbody");
  arcs.replaceChildren();
  nodes.replaceChildren();
  tbody.replaceChildren();
  const next = new Map();
  let primary = 0;
  let replica = 0;
  ring.forEach((n, i) => {
    const f = frac(n.id);
    const pf = frac(ring[(i + ring.length - 1) % ring.length].id);
    const r = rate(n, now);
    const link = statusLink(n, i === 0);
    const rec = n.records || { primary: 0, replica: 0 };
    next.set(n.id, { requests: n.requests || 0, at: now });
    primary += rec.primary;
    replica += rec.replica;

    if (ring.length === 1) {
      arcs.append(el("circle", { class: "arc", r: R, stroke: colour(1, 1) }));
    } else {
      arcs.append(el("path", { class: "arc", d: arcPath(pf, f), stroke: colour(share[i], ring.length) }));
    }

    const g = el("g", {
      class: "node " + (n.ready ? "ready" : "unready"),
      "data-id": n.id,
      "data-address": n.address,
      "data-share": pct(share[i]),
      "data-primary": rec.primary,
      "data-replica": rec.replica,
      "data-ready": n.ready,
      "data-rate": r,
    });
    const [x, y] = point(f, R);
    g.append(el("circle", { class: "dot", cx: x.toFixed(1), cy: y.toFixed(1), r: 7 }));
    const [lx, ly] = point(f, R + 24);
    const anchor = Math.abs(lx) < 30 ? "middle" : lx > 0 ? "start" : "end";
    const top = ly < -R ? ly - 52 : ly > R ? ly + 8 : ly - 22;
    const lines = [
      [n.address, "addr"],
      [`share ${pct(share[i])}`, "share"],
      [`${rec.primary} primary · ${rec.replica} replica`, "records"],
      [`${n.ready ? "ready" : "NOT READY"} · ${r === "" ? "–" : r} req/s`, "health"],
    ];
    const label = el("text", { x: lx.toFixed(1), y: top.toFixed(1), "text-anchor": anchor });
    lines.forEach(([t, cls], k) => {
      label.append(el("tspan", { x: lx.toFixed(1), dy: k === 0 ? 0 : 15, class: cls }, t));
    });
    if (link) {
      const a = el("a", { href: link });
      a.append(label);
      g.append(a);
    } else {
      g.append(label);
    }
    nodes.append(g);

    const tr = document.createElement("tr");
    const cells = [i + 1, n.address, n.id.slice(0, 16), pct(share[i]), rec.primary, rec.replica,
      n.ready ? "yes" : "no", r === "" ? "–" : r];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      if (c === "no") td.className = "no";
      tr.append(td);
    }
    const td = document.createElement("td");
    if (link) {
      const a = document.createElement("a");
      a.href = link;
      a.textContent = "/status";
      td.append(a);
    }
    tr.append(td);
    tbody.append(tr);
  });
  prev = next;
  document.getElementById("summary").textContent =
    `${ring.length} node${ring.length === 1 ? "" : "s"} · ${primary} primary · ${replica} replica`;
}

function setState(text, error) {
  const s = document.getElementById("state");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function poll() {
  try {
    const resp = await fetch("/ring", { cache: "no-store", credentials: "same-origin" });
    if (resp.status === 401) {
      setState("admin token required: open /ui?token=TOKEN once", true);
      return;
    }
    const body = await resp.json();
    if (!resp.ok) {
      setState(`/ring: ${resp.status} ${body.error || ""}`, true);
      return;
    }
    draw(body, Date.now());
    setState(`updated ${new Date().toLocaleTimeString()} · every ${POLL_MS / 1000} s`, false);
  } catch (e) {
    setState(`/ring: ${e.message}`, true);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
