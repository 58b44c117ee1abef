// The dashboard in a real browser (Debian's chromium driven by playwright-core): every
// view loads without a console error; a basin is created, filtered and deleted; a stream
// is created and shows its config and tail; the live tail shows a record that curl
// appends after the page opened; the access-tokens view issues a token (which then
// works) and revokes it (which then does not), or says tokens are off; the metrics view
// draws this node's charts, and the deployment's or "not available".
//
//   node tests/browser/dashboard.mjs     (tests/browser/run.sh sets the environment)
//
// Environment: SLUICE_ENDPOINT (the page's origin, HTTP/1.1), SLUICE_ROOT_TOKEN (the
// node's root token, empty when tokens are off), PLAYWRIGHT_MODULES (node_modules holding
// playwright-core), CHROMIUM (the browser binary), SCREENSHOT_DIR (write a PNG of each
// view there; unset: none), SLUICE_BROWSER_MODE (a name for this run in the log),
// SLUICE_BEHIND_BALANCER=1 (polls of /metrics reach different nodes, so the ack latency
// of one interval, taken from two nodes' histograms, may never be drawn).
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const require = createRequire(join(process.env.PLAYWRIGHT_MODULES, '/'));
const { chromium } = require('playwright-core');

const endpoint = process.env.SLUICE_ENDPOINT.replace(/\/$/, '');
const rootToken = process.env.SLUICE_ROOT_TOKEN || '';
const shots = process.env.SCREENSHOT_DIR || '';
const mode = process.env.SLUICE_BROWSER_MODE || (rootToken ? 'tokens-on' : 'tokens-off');
const suffix = `${Date.now().toString(36)}${Math.floor(Math.random() * 1e6).toString(36)}`;
const basin = `dash-${rootToken ? 'on' : 'off'}-${suffix}`.slice(0, 48);
const stream = 'events/clicks';
const balanced = process.env.SLUICE_BEHIND_BALANCER === '1';

const log = (...a) => console.log(`[browser ${mode}]`, ...a);
function fail(message) {
  throw new Error(message);
}

/** curl against the node (a client independent of the page), returning [status, body]. */
function curl(method, path, { body, basin: b, token = rootToken } = {}) {
  const args = ['-s', '--noproxy', '*', '-o', '-', '-w', '\n%{http_code}', '-X', method, `${endpoint}${path}`];
  if (token) args.push('-H', `authorization: Bearer ${token}`);
  if (b) args.push('-H', `s2-basin: ${b}`);
  if (body !== undefined) args.push('-H', 'content-type: application/json', '-d', JSON.stringify(body));
  const out = execFileSync('curl', args, { encoding: 'utf8' });
  const i = out.lastIndexOf('\n');
  return [Number(out.slice(i + 1)), out.slice(0, i)];
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', args: ['--no-sandbox'] });
const context = await browser.newContext({ viewport: { width: 1200, height: 820 } });
const page = await context.newPage();
page.setDefaultTimeout(15000);

// Console errors fail the test, except the failed loads a step expects: 501 from the
// metrics API until it exists, and the failure a step provokes on purpose (`expected`:
// the status in Chromium's message, e.g. ' 401 ').
const problems = [];
let expected = null;
page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
page.on('console', (m) => {
  if (m.type() !== 'error' && m.type() !== 'warning') return;
  const text = m.text();
  const url = (m.location() && m.location().url) || '';
  if (text.startsWith('Failed to load resource')) {
    if (text.includes(' 501 ') && url.includes('/v1/metrics')) return;
    if (expected && text.includes(expected)) return;
  }
  problems.push(`console ${m.type()}: ${text} (${url})`);
});

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`) });
  log(`screenshot ${name}.png`);
}

async function heading(text) {
  await page.locator('main h1', { hasText: text }).first().waitFor();
}

try {
  // A browser asking for / lands on the dashboard.
  await page.goto(`${endpoint}/`);
  if (!new URL(page.url()).pathname.startsWith('/dashboard')) fail(`/ went to ${page.url()}`);

  if (rootToken) {
    await page.locator('#login').waitFor();
    await shot('login');
    expected = ' 401 ';
    await page.fill('#token-input', 'not-a-token');
    await page.press('#token-input', 'Enter');
    await page.locator('#login [role=alert]', { hasText: 'refused' }).waitFor();
    expected = null;
    await page.fill('#token-input', rootToken);
    await page.press('#token-input', 'Enter');
  } else {
    await page.locator('#session', { hasText: 'access tokens off' }).waitFor();
  }
  await heading('Basins');
  log('basins view loaded');

  // Create a basin, filter the list, open it.
  await page.fill('#new-basin', basin);
  await page.click('#create-basin button[type=submit]');
  const basinRow = page.locator(`#basin-rows tr[data-basin="${basin}"]`);
  await basinRow.waitFor();
  await page.fill('#basin-filter', 'no-basin-has-this-name');
  await basinRow.waitFor({ state: 'detached' });
  await page.locator('#basin-rows', { hasText: 'No basin matches the filter.' }).waitFor();
  await page.fill('#basin-filter', basin.slice(0, 12));
  await basinRow.waitFor();
  await page.fill('#basin-filter', '');
  await shot('basins');
  // A name S2 refuses gets its error on the page, not a broken list.
  expected = ' 400 ';
  await page.fill('#new-basin', 'Bad_Name');
  await page.click('#create-basin button[type=submit]');
  await page.locator('[role=alert]', { hasText: 'basin name must' }).waitFor();
  expected = null;
  log('basin created and filtered');

  await basinRow.locator('a').click();
  await heading(basin);
  await page.fill('#new-stream', stream);
  await page.click('#create-stream button[type=submit]');
  const streamRow = page.locator(`#stream-rows tr[data-stream="${stream}"]`);
  await streamRow.locator('td.mono', { hasText: /^0$/ }).waitFor();
  await page.locator('main dl.kv').first().waitFor();
  await shot('basin');
  log('stream created');

  // The stream: config, tail, a record appended from the page.
  await streamRow.locator('a', { hasText: stream }).click();
  await heading(stream);
  await page.locator('#stream-tail', { hasText: 'next seq_num' }).waitFor();
  await page.locator('main dl.kv', { hasText: 'storage_class' }).waitFor();
  await page.fill('#append-body', 'hello from the page');
  await page.click('#append-form button[type=submit]');
  await page.locator('main .msg.ok', { hasText: 'Appended at seq_num 0' }).waitFor();
  await page.locator('#stream-tail dd', { hasText: /^1$/ }).waitFor();
  await page.locator('#recent-rows', { hasText: 'hello from the page' }).waitFor();
  await shot('stream');
  log('stream view: config, tail and append');

  // The live tail shows what another client appends after the page opened.
  await page.click('#open-live');
  await page.locator('#live-state', { hasText: 'following' }).waitFor();
  await page.locator('#live-rows', { hasText: 'hello from the page' }).waitFor();
  const marker = `appended by curl ${suffix}`;
  const [status, reply] = curl('POST', `/v1/streams/${encodeURIComponent(stream)}/records`, {
    basin,
    body: { records: [{ body: marker, headers: [['source', 'curl']] }] },
  });
  if (status !== 200) fail(`curl append: ${status} ${reply}`);
  await page.locator('#live-rows tr[data-seq="1"]', { hasText: marker }).waitFor({ timeout: 10000 });
  await shot('live-tail');
  log('live tail showed the record curl appended');

  // Access tokens.
  await page.click('[data-nav=tokens]');
  await heading('Access tokens');
  if (!rootToken) {
    await page.locator('#tokens-off', { hasText: 'Access tokens are off' }).waitFor();
    await shot('tokens-off');
  } else {
    const id = `dash-${suffix}`;
    await page.fill('#token-id', id);
    await page.click('#issue-token button[type=submit]');
    const secret = (await page.locator('#issued-secret').textContent()).trim();
    const tokenRow = page.locator(`#token-rows tr[data-token="${id}"]`);
    await tokenRow.waitFor();
    const [ok] = curl('GET', `/v1/streams/${encodeURIComponent(stream)}/records/tail`, { basin, token: secret });
    if (ok !== 200) fail(`the issued token was refused: ${ok}`);
    await shot('tokens');
    await tokenRow.locator(`[data-revoke="${id}"]`).click();
    await tokenRow.locator(`[data-revoke="${id}"]`).click();
    await tokenRow.waitFor({ state: 'detached' });
    const [refused] = curl('GET', `/v1/streams/${encodeURIComponent(stream)}/records/tail`, { basin, token: secret });
    if (refused !== 401) fail(`the revoked token still works: ${refused}`);
    log('token issued, used and revoked');
  }

  // Metrics: appends while the page polls, so the ack latency chart has points.
  await page.click('[data-nav=metrics]');
  await heading('Metrics');
  for (let i = 0; i < 12; i++) {
    curl('POST', `/v1/streams/${encodeURIComponent(stream)}/records`, { basin, body: { records: [{ body: `m${i}` }] } });
    await page.waitForTimeout(400);
  }
  await page.locator('#chart-requests path.line').first().waitFor({ state: 'attached', timeout: 20000 });
  if (!balanced) await page.locator('#chart-ack path.line').first().waitFor({ state: 'attached', timeout: 20000 });
  await page.locator('#deployment-account').filter({ hasNotText: 'Loading…' }).waitFor();
  const deployment = await page.locator('#deployment').textContent();
  const drawn = await page.locator('#deployment svg, #deployment .card').count();
  if (!deployment.includes('Not available') && !drawn) fail(`the deployment's metrics show neither charts nor "not available": ${deployment}`);
  log(`metrics: node charts drawn; deployment ${drawn ? `${drawn} charts/cards` : 'not available (501)'}`);
  if (shots) {
    // A few more points for the picture.
    for (let i = 0; i < 16; i++) {
      curl('POST', `/v1/streams/${encodeURIComponent(stream)}/records`, { basin, body: { records: [{ body: `p${i}` }] } });
      await page.waitForTimeout(500);
    }
    await page.screenshot({ path: join(shots, 'metrics.png'), fullPage: true });
    log('screenshot metrics.png');
  }

  // The deployment's charts as the S2 metrics API shapes them (MetricSetResponse), from
  // canned answers, whether or not this node implements the API yet.
  const now = Math.floor(Date.now() / 1000);
  const minutes = (f) => Array.from({ length: 30 }, (_, i) => [now - (30 - i) * 60, f(i)]);
  await page.route('**/v1/metrics**', (r) => {
    const set = new URL(r.request().url()).searchParams.get('set');
    const values = set === 'active-basins'
      ? [{ label: { name: 'active-basins', values: [basin] } }]
      : set === 'storage'
        ? [{ gauge: { name: 'storage', unit: 'bytes', values: minutes((i) => 1024 * i) } }]
        : [{ accumulation: { name: `${set}-a`, unit: 'operations', interval: 'minute', values: minutes((i) => i % 7) } },
            { accumulation: { name: `${set}-b`, unit: 'operations', interval: 'minute', values: minutes((i) => 2 * i) } },
            { scalar: { name: `${set} total`, unit: 'operations', value: 42 } }];
    r.fulfill({ status: 200, contentType: 'application/json', body: JSON.stringify({ values }) });
  });
  await page.click('[data-nav=basins]');
  await heading('Basins');
  await page.click('[data-nav=metrics]');
  await page.locator('#deployment-account svg path.line').first().waitFor({ state: 'attached' });
  await page.locator('#deployment-account', { hasText: basin }).waitFor();
  await page.locator('#deployment-account .card', { hasText: 'account-ops total' }).waitFor();
  await page.locator('#deployment-basin svg path.line').first().waitFor({ state: 'attached' });
  const deploymentCharts = await page.locator('#deployment svg').count();
  if (deploymentCharts !== 4) fail(`expected 4 deployment charts from the canned answers, saw ${deploymentCharts}`);
  await page.unroute('**/v1/metrics**');
  log('deployment charts drawn from MetricSetResponse answers');

  // Delete the basin from the list.
  await page.click('[data-nav=basins]');
  await heading('Basins');
  const del = page.locator(`#basin-rows tr[data-basin="${basin}"] [data-delete="${basin}"]`);
  await del.click();
  await del.click();
  await page.waitForFunction((name) => {
    const row = document.querySelector(`#basin-rows tr[data-basin="${name}"]`);
    return !row || row.textContent.includes('deleting');
  }, basin);
  const [listed, listing] = curl('GET', `/v1/basins?prefix=${basin}`);
  const left = JSON.parse(listing).basins || [];
  if (listed !== 200 || left.some((b) => b.state !== 'deleting')) fail(`basin after delete: ${listed} ${listing}`);
  log('basin deleted');

  if (problems.length) fail(`console errors:\n  ${problems.join('\n  ')}`);
  log('ok');
} catch (e) {
  console.error(`[browser ${mode}] FAILED: ${e.message}`);
  if (problems.length) console.error(`console:\n  ${problems.join('\n  ')}`);
  try {
    await page.screenshot({ path: join(process.env.FAILURE_DIR || '/tmp', `dashboard-failure-${mode}.png`) });
    console.error(`screenshot of the failure: ${join(process.env.FAILURE_DIR || '/tmp', `dashboard-failure-${mode}.png`)}`);
  } catch { /* the page may be gone */ }
  process.exitCode = 1;
} finally {
  await browser.close();
}
