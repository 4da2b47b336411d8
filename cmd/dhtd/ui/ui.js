// The ring page: polls /ring, draws every node at its positions' angles on
// the circle (a node stands at several ring positions, virtual nodes) and
// lists each node once below. Served by the node with everything it needs;
// it talks to nothing but its own origin.
"use strict";

const POLL_MS = 3000;
const R = 220; // the circle's radius in SVG units
const SVG = "http://www.w3.org/2000/svg";
const FULL = 1n << 256n;

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

// rate is a node's client requests per second (the node's own mean over
// its last 10 s), "" from a node that does not say.
function rate(n) {
  return typeof n.request_rate === "number" ? n.request_rate.toFixed(1) : "";
}

// MARKS tell the nodes' dots apart (a node's dots share one); a node that
// is not ready is drawn red whatever its mark.
const MARKS = ["#1f3a93", "#8e44ad", "#d35400", "#00796b", "#6d4c41", "#ad1457", "#827717", "#37474f"];

// LABEL_H is the height of a node's label (four lines) plus a gap.
const LABEL_H = 64;
const MAX_LABELS = 16;

// placeLabels puts each node's label beside it, outside the circle, moved
// up or down as little as needed not to overlap its neighbours on the same
// side, with a line from the node to its label. Beyond MAX_LABELS nodes
// the circle would be unreadable: a node then has only a tooltip, and the
// table below says the rest.
function placeLabels(labels) {
  if (labels.length > MAX_LABELS) {
    for (const l of labels) l.g.append(el("title", {}, l.lines.map(([t]) => t).join("\n")));
    return;
  }
  for (const side of [1, -1]) {
    const mine = labels.filter((l) => (l.lx >= 0 ? 1 : -1) === side).sort((a, b) => a.ly - b.ly);
    let floor = -Infinity;
    for (const l of mine) {
      // Centred on a node at 3 or 9 o'clock, above one at the top, below
      // one at the bottom: never across the circle.
      const want = l.ly - LABEL_H / 2 + (LABEL_H / 2) * (l.ly / (R + 24)) + 8;
      l.top = Math.max(want, floor, -325);
      floor = l.top + LABEL_H;
    }
    // Pushed past the bottom: move the column up as a whole.
    const over = mine.length ? mine[mine.length - 1].top + LABEL_H - (R + 100) : 0;
    if (over > 0) for (const l of mine) l.top -= over;
    for (const l of mine) {
      const anchor = side > 0 ? "start" : "end";
      const lx = side * Math.max(Math.abs(l.lx), 40);
      const text = el("text", { x: lx.toFixed(1), y: (l.top + 12).toFixed(1), "text-anchor": anchor });
      l.lines.forEach(([t, cls], k) => {
        text.append(el("tspan", { x: lx.toFixed(1), dy: k === 0 ? 0 : 15, class: cls }, t));
      });
      const mid = l.top + 8;
      l.g.prepend(el("line", { class: "leader", x1: l.x.toFixed(1), y1: l.y.toFixed(1),
        x2: (lx - side * 4).toFixed(1), y2: mid.toFixed(1) }));
      if (l.link) {
        const a = el("a", { href: l.link });
        a.append(text);
        l.g.append(a);
      } else {
        l.g.append(text);
      }
    }
  }
}

// nodesOf groups the walk's positions (in ring order, with each one's part
// of the circle in share) by node, a node being an address: one entry per
// node in the order its first position comes, with the index of every one
// of its positions, their total share, the view of its node ID's position
// (records, requests and admin address are the node's), and ready only if
// every position is.
function nodesOf(ring, share) {
  const byAddr = new Map();
  ring.forEach((p, i) => {
    let n = byAddr.get(p.address);
    if (!n) {
      const id = p.positions && p.positions.length ? p.positions[0] : p.id;
      n = { id, address: p.address, view: p, at: [], share: 0, ready: true };
      byAddr.set(p.address, n);
    }
    n.at.push(i);
    n.share += share[i];
    n.ready = n.ready && p.ready;
    if (p.id === n.id) n.view = p;
  });
  return [...byAddr.values()];
}

function draw(ring) {
  const share = shares(ring);
  const nodes = nodesOf(ring, share);
  const arcs = document.getElementById("arcs");
  const dots = document.getElementById("nodes");
  const tbody = document.querySelector("#table tbody");
  arcs.replaceChildren();
  dots.replaceChildren();
  tbody.replaceChildren();
  let primary = 0;
  let replica = 0;
  let positions = 0;
  const labels = [];
  nodes.forEach((n, k) => {
    const r = rate(n.view);
    const link = statusLink(n.view, k === 0);
    const rec = n.view.records || { primary: 0, replica: 0 };
    primary += rec.primary;
    replica += rec.replica;
    positions += n.at.length;
    const stroke = colour(n.share, nodes.length);
    const mark = MARKS[k % MARKS.length];

    const g = el("g", {
      class: "node " + (n.ready ? "ready" : "unready"),
      "data-id": n.id,
      "data-address": n.address,
      "data-positions": n.at.length,
      "data-share": pct(n.share),
      "data-primary": rec.primary,
      "data-replica": rec.replica,
      "data-ready": n.ready,
      "data-rate": r,
    });
    let anchor = null;
    for (const i of n.at) {
      const f = frac(ring[i].id);
      if (ring.length === 1) {
        arcs.append(el("circle", { class: "arc", r: R, stroke }));
      } else {
        const pf = frac(ring[(i + ring.length - 1) % ring.length].id);
        arcs.append(el("path", { class: "arc", d: arcPath(pf, f), stroke }));
      }
      const [x, y] = point(f, R);
      const own = ring[i].id === n.id; // the node ID's position: the larger dot, and the label
      g.append(el("circle", { class: own ? "dot" : "dot further", cx: x.toFixed(1), cy: y.toFixed(1), r: own ? 7 : 4, fill: mark }));
      if (own || anchor === null) anchor = { f, x, y };
    }
    const [lx, ly] = point(anchor.f, R + 24);
    const at = n.at.length > 1 ? ` at ${n.at.length} positions` : "";
    labels.push({ g, x: anchor.x, y: anchor.y, lx, ly, lines: [
      [n.address, "addr"],
      [`share ${pct(n.share)}${at}`, "share"],
      [`${rec.primary} primary · ${rec.replica} replica`, "records"],
      [`${n.ready ? "ready" : "NOT READY"} · ${r === "" ? "–" : r} req/s`, "health"],
    ], link });
    dots.append(g);

    const tr = document.createElement("tr");
    const cells = [k + 1, n.address, n.id.slice(0, 16), n.at.length, pct(n.share), rec.primary, rec.replica,
      n.ready ? "yes" : "no", r === "" ? "–" : r];
    for (const c of cells) {
      const td = document.createElement("td");
      td.textContent = String(c);
      if (c === "no") td.className = "no";
      tr.append(td);
    }
    const swatch = document.createElement("span");
    swatch.className = "mark";
    swatch.style.background = mark;
    tr.firstChild.prepend(swatch);
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
  placeLabels(labels);
  const at = positions > nodes.length ? ` at ${positions} positions` : "";
  document.getElementById("summary").textContent =
    `${nodes.length} node${nodes.length === 1 ? "" : "s"}${at} · ${primary} primary · ${replica} replica`;
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
    draw(body);
    setState(`updated ${new Date().toLocaleTimeString()} · every ${POLL_MS / 1000} s`, false);
  } catch (e) {
    setState(`/ring: ${e.message}`, true);
  } finally {
    setTimeout(poll, POLL_MS);
  }
}

poll();
