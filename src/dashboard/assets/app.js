// The Sluice dashboard: a client of this node's S2 REST API and Prometheus /metrics.
// Every URL is an absolute path on the page's origin, so the page works on any node and
// through a balancer. No framework and no build step: views build DOM nodes with `h`
// (text is never parsed as HTML), and a hash route (#/basins/<basin>/streams/<stream>)
// picks the view. A view's requests, timers and live reads stop when the route changes.
'use strict';

const TOKEN_KEY = 'sluice.dashboard.token';
const main = document.getElementById('main');
const app = { config: null, token: sessionStorage.getItem(TOKEN_KEY) || '', view: null };

// ---------------------------------------------------------------- DOM helpers --

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

function msg(kind, ...text) {
  return h('div', { class: `msg ${kind}`, role: kind === 'error' ? 'alert' : 'status' }, ...text);
}

/** `#/a/b` from route parts, each part encoded (stream names may hold `/`). */
function href(...parts) {
  return '#/' + parts.map(encodeURIComponent).join('/');
}

function crumbs(...items) {
  const out = [];
  items.forEach((item, i) => {
    if (i) out.push(' / ');
    out.push(Array.isArray(item) ? h('a', { href: href(...item.slice(1)) }, item[0]) : item);
  });
  return h('div', { class: 'crumbs' }, out);
}

function kv(entries) {
  if (!entries.length) return h('p', { class: 'muted' }, 'Nothing set (defaults apply).');
  return h('dl', { class: 'kv' }, entries.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

/** Leaves of a JSON value as `a.b.c` → text, for showing a config. */
function flatten(value, prefix = '', out = []) {
  if (value !== null && typeof value === 'object' && !Array.isArray(value)) {
    const keys = Object.keys(value);
    if (!keys.length && prefix) out.push([prefix, '{}']);
    for (const k of keys) flatten(value[k], prefix ? `${prefix}.${k}` : k, out);
  } else if (prefix) {
    out.push([prefix, value === null ? 'null' : typeof value === 'string' ? value : JSON.stringify(value)]);
  }
  return out;
}

/** A button that asks once more before running `action`. */
function confirmButton(label, action, attrs = {}) {
  let armed = false;
  let timer = 0;
  const button = h('button', { type: 'button', class: 'danger', ...attrs }, label);
  button.addEventListener('click', async () => {
    if (!armed) {
      armed = true;
      button.textContent = `Confirm ${label.toLowerCase()}`;
      button.classList.add('confirm');
      timer = setTimeout(() => {
        armed = false;
        button.textContent = label;
        button.classList.remove('confirm');
      }, 5000);
      return;
    }
    clearTimeout(timer);
    button.disabled = true;
    try {
      await action();
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

function fmtTime(t) {
  if (t === undefined || t === null || t === '') return '';
  const d = typeof t === 'number' ? new Date(t) : new Date(t);
  return Number.isNaN(d.getTime()) ? String(t) : d.toLocaleString();
}

function fmtBytes(n) {
  if (!Number.isFinite(n)) return String(n);
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (Math.abs(n) >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

function fmtNum(n) {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (Math.abs(n) >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return Number.isInteger(n) ? String(n) : n.toFixed(n < 10 ? 2 : 1);
}

const fmtMs = (n) => `${fmtNum(n)} ms`;

// ----------------------------------------------------------------------- API --

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
  toString() {
    return `${this.status}${this.code ? ` ${this.code}` : ''}: ${this.message}`;
  }
}

const isAbort = (e) => e && e.name === 'AbortError';

// Leaving a view aborts its requests, so an event handler of that view still awaiting one
// (a delete's reload, say) ends in an AbortError: that is no error.
window.addEventListener('unhandledrejection', (ev) => {
  if (isAbort(ev.reason)) ev.preventDefault();
});

function headersFor({ basin, json, accept } = {}) {
  const headers = {};
  if (app.token) headers.authorization = `Bearer ${app.token}`;
  if (basin) headers['s2-basin'] = basin;
  if (json) headers['content-type'] = 'application/json';
  if (accept) headers.accept = accept;
  return headers;
}

function withQuery(path, query) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query || {})) if (v !== undefined && v !== null) q.set(k, String(v));
  const text = q.toString();
  return text ? `${path}?${text}` : path;
}

/** Throws [ApiError] for an error answer; a 401 also signs the tab out. */
async function check(res) {
  if (res.ok) return res;
  const text = await res.text();
  let body = null;
  try { body = JSON.parse(text); } catch { /* not JSON */ }
  const err = new ApiError(res.status, body && body.code, (body && body.message) || text || res.statusText);
  if (res.status === 401 && app.config && app.config.tokens_required) signOut(`The node refused the token: ${err.message}`);
  throw err;
}

async function api(method, path, { basin, body, query, signal } = {}) {
  const res = await fetch(withQuery(path, query), {
    method,
    headers: headersFor({ basin, json: body !== undefined, accept: 'application/json' }),
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
  });
  await check(res);
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

/** Every page of a listing (`basins`, `streams`, `access_tokens`), up to `max` items. */
async function listAll(path, key, { basin, signal, max = 10000 } = {}) {
  const items = [];
  let startAfter;
  for (;;) {
    const page = await api('GET', path, { basin, signal, query: { limit: 1000, start_after: startAfter } });
    const got = page[key] || [];
    items.push(...got);
    if (!page.has_more || !got.length || items.length >= max) return { items, more: !!page.has_more };
    const last = got[got.length - 1];
    startAfter = last.name || last.id;
  }
}

const basinPath = (b) => `/v1/basins/${encodeURIComponent(b)}`;
const streamPath = (s, tail = '') => `/v1/streams/${encodeURIComponent(s)}${tail}`;

// ----------------------------------------------------------- session, routing --

function signOut(reason) {
  app.token = '';
  sessionStorage.removeItem(TOKEN_KEY);
  route(reason);
}

function renderSession() {
  const el = document.getElementById('session');
  if (!app.config) return el.replaceChildren();
  if (!app.config.tokens_required) {
    el.replaceChildren(h('span', { class: 'badge' }, 'access tokens off'));
  } else if (app.token) {
    el.replaceChildren(
      h('span', {}, `token …${app.token.slice(-4)}`),
      h('button', { type: 'button', id: 'sign-out', onclick: () => signOut() }, 'Sign out'),
    );
  } else {
    el.replaceChildren(h('span', {}, 'signed out'));
  }
}

function parseRoute() {
  const raw = location.hash.replace(/^#\/?/, '');
  return raw ? raw.split('/').map(decodeURIComponent) : [];
}

const ROUTES = [
  { match: (p) => p.length === 0 || (p.length === 1 && p[0] === 'basins'), nav: 'basins', view: () => basinsView },
  { match: (p) => p.length === 2 && p[0] === 'basins', nav: 'basins', view: () => basinView },
  { match: (p) => p.length === 4 && p[0] === 'basins' && p[2] === 'streams', nav: 'basins', view: () => streamView },
  { match: (p) => p.length === 5 && p[0] === 'basins' && p[2] === 'streams' && p[4] === 'live', nav: 'basins', view: () => liveView },
  { match: (p) => p.length === 1 && p[0] === 'tokens', nav: 'tokens', view: () => tokensView },
  { match: (p) => p.length === 1 && p[0] === 'metrics', nav: 'metrics', view: () => metricsView },
];

function route(loginMessage) {
  if (app.view) app.view.abort();
  const ctl = new AbortController();
  app.view = ctl;
  renderSession();
  const parts = parseRoute();
  const found = ROUTES.find((r) => r.match(parts));
  for (const a of document.querySelectorAll('[data-nav]')) {
    a.classList.toggle('active', !!found && a.dataset.nav === found.nav);
  }
  if (app.config.tokens_required && !app.token) return loginView(typeof loginMessage === 'string' ? loginMessage : '');
  if (!found) return main.replaceChildren(h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/basins' }, 'Back to basins')));
  const args = parts.filter((_, i) => i % 2 === 1);
  Promise.resolve()
    .then(() => found.view()(ctl.signal, ...args))
    .catch((e) => {
      if (!ctl.signal.aborted && !isAbort(e)) main.append(msg('error', String(e)));
    });
}

/** Runs `fn` now and every `ms` until the view is left. */
function every(signal, ms, fn) {
  const run = () => Promise.resolve().then(fn).catch((e) => { if (!isAbort(e)) console.warn(e); });
  run();
  const id = setInterval(run, ms);
  signal.addEventListener('abort', () => clearInterval(id));
}

// --------------------------------------------------------------------- login --

function loginView(message) {
  const input = h('input', { type: 'password', id: 'token-input', placeholder: 'Access token', autocomplete: 'off', required: true });
  const status = h('div', {}, message ? msg('error', message) : null);
  const form = h('form', { class: 'row' }, input, h('button', { class: 'primary', type: 'submit' }, 'Sign in'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    app.token = input.value.trim();
    try {
      await api('GET', '/v1/basins', { query: { limit: 1 } });
    } catch (e) {
      // A token that may not list basins is still a token: 403 signs in.
      if (!(e instanceof ApiError) || e.status !== 403) {
        if (!(e instanceof ApiError && e.status === 401)) status.replaceChildren(msg('error', String(e)));
        return;
      }
    }
    sessionStorage.setItem(TOKEN_KEY, app.token);
    route();
  });
  main.replaceChildren(h('div', { class: 'login panel', id: 'login' },
    h('h1', {}, 'Sign in'),
    h('p', { class: 'muted' }, 'This node requires an access token (it runs with --root-token). ',
      'The token stays in this browser tab (sessionStorage) and is sent as Authorization: Bearer.'),
    status, form));
  input.focus();
}

// -------------------------------------------------------------------- basins --

const STORAGE_CLASSES = [['', 'default'], ['express', 'express'], ['standard', 'standard']];
const storageSelect = (id) => h('select', { id, 'aria-label': 'Storage class' },
  STORAGE_CLASSES.map(([v, l]) => h('option', { value: v }, l)));

async function basinsView(signal) {
  const filter = h('input', { type: 'search', id: 'basin-filter', placeholder: 'Filter by name', 'aria-label': 'Filter basins' });
  const rows = h('tbody', { id: 'basin-rows' });
  const status = h('div');
  const name = h('input', { id: 'new-basin', placeholder: 'new-basin-name', required: true, title: '8–48 characters: lowercase letters, digits and hyphens' });
  const cls = storageSelect('new-basin-class');
  const onAppend = h('input', { type: 'checkbox', id: 'new-basin-coa' });
  const onRead = h('input', { type: 'checkbox', id: 'new-basin-cor' });
  const form = h('form', { class: 'row', id: 'create-basin' }, name, cls,
    h('label', {}, onAppend, 'create streams on append'), h('label', {}, onRead, 'on read'),
    h('button', { class: 'primary', type: 'submit' }, 'Create basin'));
  let basins = [];
  let more = false;

  const draw = () => {
    const q = filter.value.trim().toLowerCase();
    const shown = basins.filter((b) => b.name.includes(q));
    rows.replaceChildren(...shown.map((b) => h('tr', { 'data-basin': b.name },
      h('td', {}, h('a', { href: href('basins', b.name) }, b.name)),
      h('td', {}, h('span', { class: `badge ${b.state}` }, b.state)),
      h('td', {}, fmtTime(b.created_at)),
      h('td', { class: 'actions' }, confirmButton('Delete', () => remove(b.name), { 'data-delete': b.name })))));
    if (!shown.length) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, basins.length ? 'No basin matches the filter.' : 'No basins yet.')));
    if (more) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'More basins exist than are listed here.')));
  };
  const load = async () => {
    ({ items: basins, more } = await listAll('/v1/basins', 'basins', { signal }));
    draw();
  };
  const remove = async (basin) => {
    try {
      await api('DELETE', basinPath(basin), { signal });
      status.replaceChildren(msg('ok', `Deleting basin ${basin}.`));
    } catch (e) {
      status.replaceChildren(msg('error', `Could not delete ${basin}: ${e}`));
    }
    await load();
  };
  filter.addEventListener('input', draw);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const config = { create_stream_on_append: onAppend.checked, create_stream_on_read: onRead.checked };
    if (cls.value) config.default_stream_config = { storage_class: cls.value };
    try {
      await api('POST', '/v1/basins', { body: { basin: name.value.trim(), config }, signal });
      status.replaceChildren(msg('ok', `Created basin ${name.value.trim()}.`));
      name.value = '';
    } catch (e) {
      status.replaceChildren(msg('error', `Could not create the basin: ${e}`));
    }
    await load();
  });

  main.replaceChildren(
    h('h1', {}, 'Basins'),
    h('div', { class: 'panel' }, h('h2', {}, 'Create a basin'), form),
    status,
    h('div', { class: 'panel' },
      h('div', { class: 'row spread' }, h('h2', {}, 'All basins'), filter),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'State'), h('th', {}, 'Created'), h('th', {}))), rows)));
  await load();
}

// ------------------------------------------------------------------- streams --

const MAX_TAILS = 100;

async function basinView(signal, basin) {
  const config = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const filter = h('input', { type: 'search', id: 'stream-filter', placeholder: 'Filter by name', 'aria-label': 'Filter streams' });
  const rows = h('tbody', { id: 'stream-rows' });
  const status = h('div');
  const name = h('input', { id: 'new-stream', placeholder: 'stream name', required: true });
  const cls = storageSelect('new-stream-class');
  const form = h('form', { class: 'row', id: 'create-stream' }, name, cls, h('button', { class: 'primary', type: 'submit' }, 'Create stream'));
  let streams = [];
  let more = false;

  const tails = new Map(); // stream name → its tail cell, kept across redraws
  const tailCell = (name) => {
    if (!tails.has(name)) {
      const cell = h('td', { class: 'mono' }, '…');
      tails.set(name, cell);
      api('GET', streamPath(name, '/records/tail'), { basin, signal })
        .then((t) => { cell.textContent = String(t.tail.seq_num); })
        .catch((e) => { if (!isAbort(e)) cell.textContent = e.code || String(e.status); });
    }
    return tails.get(name);
  };
  const draw = () => {
    const q = filter.value.trim();
    const shown = streams.filter((st) => st.name.includes(q));
    rows.replaceChildren(...shown.map((st, i) => h('tr', { 'data-stream': st.name },
      h('td', {}, h('a', { href: href('basins', basin, 'streams', st.name) }, st.name)),
      h('td', {}, st.deleted_at ? h('span', { class: 'badge deleting' }, 'deleting') : h('span', { class: 'badge' }, 'active')),
      // The tails of the first streams shown: one request each.
      i < MAX_TAILS && !st.deleted_at ? tailCell(st.name) : h('td', {}),
      h('td', {}, fmtTime(st.created_at)),
      h('td', { class: 'actions' },
        h('a', { href: href('basins', basin, 'streams', st.name, 'live') }, 'live tail'), ' ',
        confirmButton('Delete', () => remove(st.name), { 'data-delete': st.name })))));
    if (!shown.length) rows.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, streams.length ? 'No stream matches the filter.' : 'No streams yet.')));
    if (more) rows.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'More streams exist than are listed here.')));
  };
  const load = async () => {
    ({ items: streams, more } = await listAll('/v1/streams', 'streams', { basin, signal }));
    tails.clear();
    draw();
  };
  const remove = async (stream) => {
    try {
      await api('DELETE', streamPath(stream), { basin, signal });
      status.replaceChildren(msg('ok', `Deleting stream ${stream}.`));
    } catch (e) {
      status.replaceChildren(msg('error', `Could not delete ${stream}: ${e}`));
    }
    await load();
  };
  filter.addEventListener('input', draw);
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const body = { stream: name.value };
    if (cls.value) body.config = { storage_class: cls.value };
    try {
      await api('POST', '/v1/streams', { basin, body, signal });
      status.replaceChildren(msg('ok', `Created stream ${name.value}.`));
      name.value = '';
    } catch (e) {
      status.replaceChildren(msg('error', `Could not create the stream: ${e}`));
    }
    await load();
  });

  main.replaceChildren(
    crumbs(['Basins', 'basins'], basin),
    h('h1', {}, basin),
    h('div', { class: 'panel' }, h('h2', {}, 'Basin configuration'), config),
    h('div', { class: 'panel' }, h('h2', {}, 'Create a stream'), form),
    status,
    h('div', { class: 'panel' },
      h('div', { class: 'row spread' }, h('h2', {}, 'Streams'), filter),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {}, 'State'), h('th', {}, 'Tail'), h('th', {}, 'Created'), h('th', {}))), rows)));
  const showConfig = api('GET', basinPath(basin), { signal })
    .then((c) => config.replaceChildren(kv(flatten(c))))
    .catch((e) => { if (!isAbort(e)) config.replaceChildren(msg('error', String(e))); });
  await Promise.all([showConfig, load()]);
}

function recordRow(r) {
  const headers = (r.headers || []).map(([k, v]) => `${k}: ${v}`).join('\n');
  return h('tr', { 'data-seq': r.seq_num },
    h('td', { class: 'mono' }, r.seq_num),
    h('td', {}, fmtTime(r.timestamp)),
    h('td', { class: 'body' }, headers),
    h('td', { class: 'body' }, r.body));
}

const recordsTable = (rows) => h('table', {},
  h('thead', {}, h('tr', {}, h('th', {}, 'seq_num'), h('th', {}, 'Timestamp'), h('th', {}, 'Headers'), h('th', {}, 'Body'))), rows);

async function streamView(signal, basin, stream) {
  const config = h('div', {}, h('p', { class: 'muted' }, 'Loading…'));
  const tail = h('div', { id: 'stream-tail' }, h('p', { class: 'muted' }, 'Loading…'));
  const rows = h('tbody', { id: 'recent-rows' });
  const status = h('div');
  const body = h('textarea', { id: 'append-body', placeholder: 'Record body' });
  const form = h('form', { id: 'append-form' }, body, h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Append')));

  /** The tail, then the records before it (a read from the tail itself would be a 416). */
  const refresh = async () => {
    let t;
    try {
      t = (await api('GET', streamPath(stream, '/records/tail'), { basin, signal })).tail;
      tail.replaceChildren(kv([['next seq_num', String(t.seq_num)], ['last timestamp', `${t.timestamp} (${fmtTime(t.timestamp)})`]]));
    } catch (e) {
      if (!isAbort(e)) tail.replaceChildren(msg('error', String(e)));
      return;
    }
    try {
      const query = { seq_num: Math.max(0, t.seq_num - 20), count: 20 };
      const batch = t.seq_num ? await api('GET', streamPath(stream, '/records'), { basin, signal, query }) : {};
      const records = (batch.records || []).slice().reverse();
      rows.replaceChildren(...records.map(recordRow));
      if (!records.length) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No records.')));
    } catch (e) {
      if (!isAbort(e)) rows.replaceChildren(h('tr', {}, h('td', { colspan: 4 }, msg('error', String(e)))));
    }
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    try {
      const ack = await api('POST', streamPath(stream, '/records'), { basin, signal, body: { records: [{ body: body.value }] } });
      status.replaceChildren(msg('ok', `Appended at seq_num ${ack.start.seq_num}.`));
      body.value = '';
    } catch (e) {
      status.replaceChildren(msg('error', `Could not append: ${e}`));
    }
    await refresh();
  });

  main.replaceChildren(
    crumbs(['Basins', 'basins'], ['' + basin, 'basins', basin], stream),
    h('div', { class: 'row spread' }, h('h1', {}, stream),
      h('a', { href: href('basins', basin, 'streams', stream, 'live'), id: 'open-live' }, 'Live tail →')),
    h('div', { class: 'grid2' },
      h('div', { class: 'panel' }, h('h2', {}, 'Configuration'), config),
      h('div', { class: 'panel' },
        h('div', { class: 'row spread' }, h('h2', {}, 'Tail'), h('button', { type: 'button', onclick: refresh }, 'Refresh')), tail)),
    h('div', { class: 'panel' }, h('h2', {}, 'Append a record'), form, status),
    h('div', { class: 'panel' }, h('h2', {}, 'Latest records'), recordsTable(rows)));
  const showConfig = api('GET', streamPath(stream), { basin, signal })
    .then((c) => config.replaceChildren(kv(flatten(c))))
    .catch((e) => { if (!isAbort(e)) config.replaceChildren(msg('error', String(e))); });
  await Promise.all([showConfig, refresh()]);
}

// ----------------------------------------------------------------- live tail --

/** Server-sent events from a fetch response, as `{event, data, id}`. */
async function* sseEvents(res) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buf = (buf + decoder.decode(value, { stream: true })).replace(/\r\n|\r(?!$)/g, '\n');
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end);
      buf = buf.slice(end + 2);
      const ev = { event: 'message', data: [], id: null };
      for (const line of block.split('\n')) {
        if (!line || line[0] === ':') continue;
        const i = line.indexOf(':');
        const field = i < 0 ? line : line.slice(0, i);
        const val = i < 0 ? '' : line.slice(i + 1).replace(/^ /, '');
        if (field === 'event') ev.event = val;
        else if (field === 'data') ev.data.push(val);
        else if (field === 'id') ev.id = val;
      }
      yield { event: ev.event, data: ev.data.join('\n'), id: ev.id };
    }
  }
}

const MAX_LIVE_ROWS = 500;

async function liveView(signal, basin, stream) {
  const state = h('span', { class: 'badge stopped', id: 'live-state' }, 'connecting');
  const tail = h('span', { class: 'muted', id: 'live-tail' });
  const rows = h('tbody', { id: 'live-rows' });
  const status = h('div');
  const setState = (text, cls) => { state.textContent = text; state.className = `badge ${cls}`; };
  let next = null; // seq_num to resume from after a reconnect
  let received = 0;

  main.replaceChildren(
    crumbs(['Basins', 'basins'], ['' + basin, 'basins', basin], [stream, 'basins', basin, 'streams', stream], 'live tail'),
    h('div', { class: 'row spread' }, h('h1', {}, `Live tail of ${stream}`), h('div', { class: 'row' }, state, tail)),
    h('p', { class: 'muted' }, 'The last 10 records, then each record as it is appended (newest first).'),
    status,
    h('div', { class: 'panel' }, recordsTable(rows)));
  rows.append(h('tr', { class: 'placeholder' }, h('td', { colspan: 4, class: 'muted' }, 'Waiting for records…')));

  while (!signal.aborted) {
    try {
      const query = next === null ? { tail_offset: 10 } : { seq_num: next };
      const res = await check(await fetch(withQuery(streamPath(stream, '/records'), query), {
        headers: headersFor({ basin, accept: 'text/event-stream' }), signal, cache: 'no-store',
      }));
      setState('following', 'live');
      status.replaceChildren();
      for await (const ev of sseEvents(res)) {
        if (ev.event === 'batch') {
          const batch = JSON.parse(ev.data);
          const records = batch.records || [];
          if (records.length) {
            if (!received) rows.replaceChildren();
            received += records.length;
            next = records[records.length - 1].seq_num + 1;
            for (const r of records) rows.prepend(recordRow(r));
            while (rows.children.length > MAX_LIVE_ROWS) rows.lastElementChild.remove();
          }
          if (batch.tail) tail.textContent = `tail ${batch.tail.seq_num}`;
        } else if (ev.event === 'ping') {
          const ping = JSON.parse(ev.data);
          if (ping.tail) tail.textContent = `tail ${ping.tail.seq_num}`;
          if (next === null && ping.tail) next = ping.tail.seq_num;
        } else if (ev.event === 'error') {
          let e;
          try { e = JSON.parse(ev.data); } catch { e = { message: ev.data }; }
          throw new ApiError(0, e.code, e.message || ev.data);
        }
      }
      setState('reconnecting', 'stopped');
    } catch (e) {
      if (signal.aborted || isAbort(e)) return;
      if (e instanceof ApiError && e.status >= 400 && e.status < 500 && e.status !== 408 && e.status !== 429) {
        setState('stopped', 'stopped');
        status.replaceChildren(msg('error', `The read stopped: ${e}`));
        return;
      }
      setState('reconnecting', 'stopped');
      status.replaceChildren(msg('info', `Reconnecting after: ${e}`));
    }
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

// ------------------------------------------------------------- access tokens --

function scopeText(scope) {
  const set = (r) => (!r ? 'none' : 'exact' in r ? `= ${r.exact}` : r.prefix === '' ? 'all' : `${r.prefix}*`);
  const groups = Object.entries(scope.op_groups || {})
    .filter(([, p]) => p && (p.read || p.write))
    .map(([g, p]) => `${g} ${p.read ? 'r' : ''}${p.write ? 'w' : ''}`);
  const parts = [`basins ${set(scope.basins)}`, `streams ${set(scope.streams)}`, `tokens ${set(scope.access_tokens)}`];
  if (groups.length) parts.push(`groups: ${groups.join(', ')}`);
  if (scope.ops && scope.ops.length) parts.push(`ops: ${scope.ops.join(', ')}`);
  return parts.join(' · ');
}

async function tokensView(signal) {
  if (!app.config.tokens_required) {
    main.replaceChildren(h('h1', {}, 'Access tokens'), h('div', { id: 'tokens-off' }, msg('info',
      'Access tokens are off on this node: every request may do everything. ',
      'Start it with --root-token (SLUICE_ROOT_TOKEN) to require a token on every request.')));
    return;
  }
  const rows = h('tbody', { id: 'token-rows' });
  const status = h('div');
  const id = h('input', { id: 'token-id', placeholder: 'token id', required: true });
  const basins = h('input', { id: 'token-basins', placeholder: 'basin prefix (empty: all)' });
  const streams = h('input', { id: 'token-streams', placeholder: 'stream prefix (empty: all)' });
  const expires = h('input', { type: 'datetime-local', id: 'token-expires', 'aria-label': 'Expires at' });
  const manage = h('input', { type: 'checkbox', id: 'token-manage' });
  const perms = {};
  const permBoxes = ['account', 'basin', 'stream'].map((g) => {
    perms[g] = { read: h('input', { type: 'checkbox', checked: true, id: `token-${g}-read` }), write: h('input', { type: 'checkbox', checked: g === 'stream', id: `token-${g}-write` }) };
    return h('span', { class: 'row' }, h('b', {}, g), h('label', {}, perms[g].read, 'read'), h('label', {}, perms[g].write, 'write'));
  });
  const form = h('form', { id: 'issue-token' },
    h('div', { class: 'row' }, id, basins, streams, expires),
    h('div', { class: 'row' }, ...permBoxes, h('label', {}, manage, 'may manage access tokens')),
    h('div', { class: 'row' }, h('button', { class: 'primary', type: 'submit' }, 'Issue token')));

  const load = async () => {
    const { items } = await listAll('/v1/access-tokens', 'access_tokens', { signal });
    rows.replaceChildren(...items.map((t) => h('tr', { 'data-token': t.id },
      h('td', { class: 'mono' }, t.id),
      h('td', {}, t.expires_at ? fmtTime(t.expires_at) : 'never'),
      h('td', {}, scopeText(t.scope || {}), t.auto_prefix_streams ? ' · auto-prefix' : ''),
      h('td', { class: 'actions' }, confirmButton('Revoke', () => revoke(t.id), { 'data-revoke': t.id })))));
    if (!items.length) rows.append(h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'No tokens issued (the root token is not listed).')));
  };
  const revoke = async (tokenId) => {
    try {
      await api('DELETE', `/v1/access-tokens/${encodeURIComponent(tokenId)}`, { signal });
      status.replaceChildren(msg('ok', `Revoked ${tokenId}.`));
    } catch (e) {
      status.replaceChildren(msg('error', `Could not revoke ${tokenId}: ${e}`));
    }
    await load();
  };
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const opGroups = {};
    for (const [g, p] of Object.entries(perms)) opGroups[g] = { read: p.read.checked, write: p.write.checked };
    const scope = { basins: { prefix: basins.value.trim() }, streams: { prefix: streams.value.trim() }, op_groups: opGroups };
    if (manage.checked) scope.access_tokens = { prefix: '' };
    const body = { id: id.value.trim(), scope };
    if (expires.value) body.expires_at = new Date(expires.value).toISOString();
    try {
      const issued = await api('POST', '/v1/access-tokens', { body, signal });
      status.replaceChildren(msg('ok', `Issued ${body.id}. Its secret is shown only now:`,
        h('div', { class: 'secret', id: 'issued-secret' }, issued.access_token)));
      id.value = '';
    } catch (e) {
      status.replaceChildren(msg('error', `Could not issue the token: ${e}`));
    }
    await load();
  });

  main.replaceChildren(
    h('h1', {}, 'Access tokens'),
    h('div', { class: 'panel' }, h('h2', {}, 'Issue a token'), form),
    status,
    h('div', { class: 'panel' }, h('h2', {}, 'Issued tokens'),
      h('table', {}, h('thead', {}, h('tr', {}, h('th', {}, 'Id'), h('th', {}, 'Expires'), h('th', {}, 'Scope'), h('th', {}))), rows)));
  await load();
}

// --------------------------------------------------------------------- start --

(async () => {
  try {
    const res = await fetch('/dashboard/config.json', { cache: 'no-store' });
    app.config = await res.json();
  } catch (e) {
    main.replaceChildren(msg('error', `Could not reach the node: ${e}`));
    return;
  }
  window.addEventListener('hashchange', () => route());
  route();
})();
