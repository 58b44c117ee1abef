// The dashboard's metrics view: this node's Prometheus /metrics polled and charted from
// the differences between scrapes, and the deployment's from the S2 metrics API, drawn as
// hand-made SVG charts. Loaded before app.js, whose helpers (h, s, api, msg, every, ...)
// it calls once the view opens.
'use strict';

/** Prometheus text format: name → [{labels, value}]. */
function parseProm(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    }
    const value = m[3] === '+Inf' ? Infinity : m[3] === '-Inf' ? -Infinity : Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

function total(prom, name, where = () => true) {
  return (prom.get(name) || []).filter((x) => where(x.labels)).reduce((a, x) => a + x.value, 0);
}

/** Cumulative bucket counts by bound, summed over a histogram's series. */
function buckets(prom, name) {
  const by = new Map();
  for (const { labels, value } of prom.get(`${name}_bucket`) || []) {
    const le = labels.le === '+Inf' ? Infinity : Number(labels.le);
    by.set(le, (by.get(le) || 0) + value);
  }
  return [...by.entries()].sort((a, b) => a[0] - b[0]);
}

/** The q-quantile of what a histogram observed between two scrapes, or null for none. */
function quantile(prev, cur, q) {
  const before = new Map(prev);
  const deltas = cur.map(([le, c]) => [le, c - (before.get(le) || 0)]);
  const n = deltas.length ? deltas[deltas.length - 1][1] : 0;
  if (n <= 0 || deltas.some(([, d]) => d < 0)) return null;
  let lower = 0;
  let below = 0;
  for (const [le, c] of deltas) {
    if (c >= q * n) {
      if (!Number.isFinite(le)) return lower;
      return lower + (le - lower) * ((q * n - below) / Math.max(c - below, 1));
    }
    lower = le;
    below = c;
  }
  return lower;
}

function chart(title, fmt, series, attrs = {}) {
  const W = 560;
  const H = 180;
  const L = 64;
  const R = 10;
  const T = 10;
  const B = 22;
  const pts = series.flatMap((x) => x.points.filter((p) => p[1] !== null && Number.isFinite(p[1])));
  const svg = s('svg', { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': title });
  const box = h('div', { class: 'chart', ...attrs }, h('h3', {}, title), svg);
  if (pts.length < 2) {
    svg.append(s('text', { x: W / 2, y: H / 2, 'text-anchor': 'middle', class: 'tick' }, 'Collecting data…'));
    return box;
  }
  // Time spans every point, gaps included, so that charts polled together line up.
  const times = series.flatMap((x) => x.points.map((p) => p[0]));
  const t0 = Math.min(...times);
  const t1 = Math.max(t0 + 1, ...times);
  const top = Math.max(...pts.map((p) => p[1])) * 1.1 || 1;
  const x = (t) => L + ((t - t0) / (t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - v / top) * (H - T - B);
  for (const f of [0, 0.5, 1]) {
    svg.append(s('line', { x1: L, x2: W - R, y1: y(top * f), y2: y(top * f), class: f ? 'grid' : 'axis' }));
    svg.append(s('text', { x: L - 6, y: y(top * f) + 3, 'text-anchor': 'end', class: 'tick' }, fmt(top * f)));
  }
  const clock = (t) => new Date(t).toLocaleTimeString();
  svg.append(s('text', { x: L, y: H - 6, class: 'tick' }, clock(t0)));
  svg.append(s('text', { x: W - R, y: H - 6, 'text-anchor': 'end', class: 'tick' }, clock(t1)));
  series.forEach((ser, i) => {
    let d = '';
    let pen = 'M';
    for (const [t, v] of ser.points) {
      if (v === null || !Number.isFinite(v)) { pen = 'M'; continue; }
      d += `${pen}${x(t).toFixed(1)},${y(v).toFixed(1)} `;
      pen = 'L';
    }
    if (d) svg.append(s('path', { d, class: `line s${i % 6}` }, s('title', {}, ser.name)));
  });
  box.append(h('div', { class: 'legend' }, series.map((ser, i) => h('span', {}, h('i', { class: `s${i % 6}` }), ser.name))));
  return box;
}

function card(k, v) {
  return h('div', { class: 'card' }, h('div', { class: 'v' }, v), h('div', { class: 'k' }, k));
}

const NODE_HISTORY = 150;
const NODE_POLL_MS = 2000;

/** Charts of this node's /metrics, from the differences between successive scrapes. */
function nodeMetrics(signal, cards, charts, status) {
  const samples = [];
  const ops = ['get', 'put', 'list', 'delete'];
  every(signal, NODE_POLL_MS, async () => {
    const res = await fetch('/metrics', { signal, cache: 'no-store' });
    if (!res.ok) {
      status.replaceChildren(msg('error', `GET /metrics answered ${res.status}.`));
      return;
    }
    const prom = parseProm(await res.text());
    status.replaceChildren();
    samples.push({ t: Date.now(), prom });
    if (samples.length > NODE_HISTORY + 1) samples.shift();
    cards.replaceChildren(
      card('commits', fmtNum(total(prom, 'sluice_commit_bytes_count'))),
      card('commit conflicts', fmtNum(total(prom, 'sluice_commit_conflicts_total'))),
      card('cached chunks', fmtBytes(total(prom, 'sluice_cache_chunk_bytes'))),
      card('appends in flight', fmtBytes(total(prom, 'sluice_append_inflight_bytes'))),
      card('read buffers', fmtBytes(total(prom, 'sluice_read_buffered_bytes'))));
    // Per interval between two scrapes; a counter that went down (a restart, or another
    // node answering behind a balancer) leaves a gap.
    const rate = (name, where) => samples.slice(1).map((cur, i) => {
      const prev = samples[i];
      const d = total(cur.prom, name, where) - total(prev.prom, name, where);
      return [cur.t, d < 0 ? null : d / ((cur.t - prev.t) / 1000)];
    });
    const latency = (q) => samples.slice(1).map((cur, i) => {
      const v = quantile(buckets(samples[i].prom, 'sluice_append_ack_duration_seconds'), buckets(cur.prom, 'sluice_append_ack_duration_seconds'), q);
      return [cur.t, v === null ? null : v * 1000];
    });
    charts.replaceChildren(
      chart('Append ack latency', fmtMs, [{ name: 'p50', points: latency(0.5) }, { name: 'p99', points: latency(0.99) }], { id: 'chart-ack' }),
      chart('Object-store requests / s', fmtNum, ops.map((op) => ({ name: op, points: rate('sluice_store_requests_total', (l) => l.op === op) })), { id: 'chart-requests' }),
      chart('Object-store bytes / s', fmtBytes, ['read', 'written'].map((dir) => ({ name: dir, points: rate('sluice_store_bytes_total', (l) => l.direction === dir) })), { id: 'chart-bytes' }),
      chart('Commits / s', fmtNum, [{ name: 'commits', points: rate('sluice_commit_bytes_count') }, { name: 'conflicts', points: rate('sluice_commit_conflicts_total') }], { id: 'chart-commits' }));
  });
}

/** One metric set of the S2 metrics API, drawn as charts, cards and labels; false when
 * the node does not implement the API (501). */
async function metricSet(signal, path, set, into) {
  const end = Math.floor(Date.now() / 1000);
  let res;
  try {
    res = await api('GET', path, { signal, query: { set, interval: 'minute', start: end - 3600, end } });
  } catch (e) {
    if (isAbort(e)) throw e;
    const unimplemented = e instanceof ApiError && e.status === 501;
    into.replaceChildren(unimplemented
      ? msg('info', `Not available: this node answers ${path}?set=${set} with 501 ${e.code || ''}.`)
      : msg('error', `${set}: ${e}`));
    return !unimplemented;
  }
  const fmt = (unit) => (unit === 'bytes' ? fmtBytes : fmtNum);
  const series = new Map();
  const cards = [];
  const labels = [];
  for (const m of res.values || []) {
    const [kind, v] = Object.entries(m)[0] || [];
    if (kind === 'scalar') cards.push(card(v.name, fmt(v.unit)(v.value)));
    else if (kind === 'label') labels.push(h('p', {}, h('b', {}, v.name), ': ', v.values.length ? v.values.join(', ') : 'none'));
    else if (kind === 'accumulation' || kind === 'gauge') {
      const key = `${kind} ${v.unit}`;
      if (!series.has(key)) series.set(key, { unit: v.unit, list: [] });
      series.get(key).list.push({ name: v.name, points: v.values.map(([t, x]) => [t * 1000, x]) });
    }
  }
  const charts = [...series.entries()].map(([key, { unit, list }]) =>
    chart(`${set} (${unit}${key.startsWith('accumulation') ? ' per minute' : ''})`, fmt(unit), list));
  into.replaceChildren();
  append(into, [
    cards.length ? h('div', { class: 'cards' }, cards) : null,
    labels,
    charts.length ? h('div', { class: 'charts' }, charts) : null,
    !cards.length && !labels.length && !charts.length ? h('p', { class: 'muted' }, `${set}: no data in the last hour.`) : null]);
  return true;
}

async function metricsView(signal) {
  const cards = h('div', { class: 'cards', id: 'node-cards' });
  const charts = h('div', { class: 'charts', id: 'node-charts' });
  const nodeStatus = h('div');
  const account = h('div', { id: 'deployment-account' }, h('p', { class: 'muted' }, 'Loading…'));
  const basinSel = h('select', { id: 'metrics-basin', 'aria-label': 'Basin' });
  const basin = h('div', { id: 'deployment-basin' });
  main.replaceChildren(
    h('h1', {}, 'Metrics'),
    h('div', { class: 'panel' },
      h('h2', {}, 'This node'),
      h('p', { class: 'muted' }, 'From GET /metrics every 2 s, of the node that answered it (behind a balancer each poll may reach another node).'),
      nodeStatus, cards, charts),
    h('div', { class: 'panel', id: 'deployment' },
      h('h2', {}, 'The deployment'),
      h('p', { class: 'muted' }, 'From the S2 metrics API (GET /v1/metrics), the last hour by minute.'),
      account,
      h('div', { class: 'row' }, h('b', {}, 'Basin'), basinSel),
      basin));
  nodeMetrics(signal, cards, charts, nodeStatus);
  let implemented = true;
  const loadAccount = async () => {
    const a = h('div');
    const b = h('div');
    const found = await Promise.all([metricSet(signal, '/v1/metrics', 'account-ops', a), metricSet(signal, '/v1/metrics', 'active-basins', b)]);
    implemented = found.some(Boolean);
    account.replaceChildren(...(implemented ? [a, b]
      : [msg('info', 'Not available: this node answers GET /v1/metrics with 501 not_implemented.')]));
  };
  const loadBasin = async () => {
    if (!implemented) return basin.replaceChildren();
    if (!basinSel.value) return basin.replaceChildren(h('p', { class: 'muted' }, 'No basin to show.'));
    const path = `/v1/metrics/${encodeURIComponent(basinSel.value)}`;
    const parts = ['append-throughput', 'read-throughput', 'storage'].map(() => h('div'));
    await Promise.all(['append-throughput', 'read-throughput', 'storage'].map((set, i) => metricSet(signal, path, set, parts[i])));
    basin.replaceChildren(...parts);
  };
  basinSel.addEventListener('change', () => loadBasin().catch((e) => { if (!isAbort(e)) basin.replaceChildren(msg('error', String(e))); }));
  try {
    const { items } = await listAll('/v1/basins', 'basins', { signal, max: 1000 });
    basinSel.replaceChildren(...items.map((b) => h('option', { value: b.name }, b.name)));
  } catch (e) {
    if (isAbort(e)) throw e;
    basin.replaceChildren(msg('error', `Could not list basins: ${e}`));
  }
  every(signal, 60000, async () => {
    await loadAccount();
    basinSel.parentElement.hidden = !implemented;
    await loadBasin();
  });
}

