// Loads the dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core), waits for the charts, reads the numbers the page shows, opens the first
// client's drill-down, saves screenshots (desktop light and dark, phone) and prints one JSON
// object on stdout. Used by tests/SiaExporter.Tests/Dashboard/DashboardBrowserTests.cs.
//   node check-dashboard.mjs URL OUTDIR [USER PASSWORD]
import { chromium } from 'playwright-core';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const [url, outdir, user, password] = process.argv.slice(2);
const origin = new URL(url).origin;
const profile = await mkdtemp(join(tmpdir(), 'dashboard-chromium-'));
const problems = [];
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1366, height: 900 },
  httpCredentials: user ? { username: user, password } : undefined,
  colorScheme: 'light',
});

function watch(page, label) {
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') problems.push(`${label} console ${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => problems.push(`${label} page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`${label} request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('request', (r) => { if (!r.url().startsWith(origin) && !r.url().startsWith('data:')) problems.push(`${label} request elsewhere: ${r.url()}`); });
  page.on('response', (r) => { if (r.status() >= 400) problems.push(`${label} HTTP ${r.status()}: ${r.url()}`); });
}

async function ready(page, selector) {
  await page.waitForSelector(`${selector}[data-ready="1"]`, { timeout: 30000 });
}

// Every row of a totals table: { class: { down, up } } from the exact data-bytes of its cells.
async function table(page, selector, downColumn, upColumn) {
  return page.$$eval(`${selector} tbody tr`, (rows, [d, u]) => Object.fromEntries(rows.map((r) => [r.dataset.class,
    { down: Number(r.cells[d].dataset.bytes), up: Number(r.cells[u].dataset.bytes), downText: r.cells[d].textContent, upText: r.cells[u].textContent }])),
  [downColumn, upColumn]);
}

try {
  const page = context.pages()[0] || await context.newPage();
  watch(page, 'desktop');
  await page.goto(url, { waitUntil: 'load' });
  await ready(page, 'body');
  for (const id of ['#live', '#history', '#clients', '#live-chart', '#history-chart']) await ready(page, id);
  // The daemon samples every 10 s and the page asks every 10 s: the live chart gets its first
  // rates within about 20 s of the daemon's start.
  await page.waitForFunction(() => Number(document.getElementById('live-chart').dataset.points) > 0, null, { timeout: 40000 });
  const result = {
    title: await page.title(),
    livePoints: await page.$eval('#live-chart', (e) => Number(e.dataset.points)),
    liveNow: await page.$$eval('#live-totals tbody tr', (rows) => rows.map((r) => [r.cells[1].textContent, r.cells[2].textContent])),
    live: await table(page, '#live-totals', 3, 4),
    history: await table(page, '#history-totals', 1, 2),
    range: await page.$eval('#history', (e) => ({ from: Number(e.dataset.from), to: Number(e.dataset.to) })),
    spikes: await page.$eval('#history-chart', (e) => Number(e.dataset.spikes)),
    historyMeta: await page.$eval('#history-meta', (e) => e.textContent),
    clients: await page.$$eval('#clients-table tbody tr[data-client]', (rows) => rows.map((r) => ({
      client: r.dataset.client, down: Number(r.cells[2].dataset.bytes), up: Number(r.cells[3].dataset.bytes),
      sparkline: r.querySelector('polyline')?.getAttribute('points')?.split(' ').length ?? 0 }))),
    exports: {
      csv: await page.$eval('#export-csv', (a) => a.getAttribute('href')),
      json: await page.$eval('#export-json', (a) => a.getAttribute('href')),
    },
  };
  if (result.clients.length > 0) {
    await page.click('#clients-table tbody tr[data-client]');
    await ready(page, '#client');
    await ready(page, '#client-chart');
    result.client = { name: await page.$eval('#client-name', (e) => e.textContent), totals: await table(page, '#client-totals', 1, 2) };
  }
  result.charts = await page.$$eval('.chart canvas', (c) => c.map((x) => ({ width: x.width, height: x.height })));
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(outdir, 'desktop-light.png'), fullPage: true });
  await page.click('#theme'); // system -> light
  await page.click('#theme'); // light -> dark
  await page.waitForTimeout(300);
  result.theme = await page.evaluate(() => document.documentElement.dataset.theme);
  await page.screenshot({ path: join(outdir, 'desktop-dark.png'), fullPage: true });

  const phone = await context.newPage();
  watch(phone, 'phone');
  await phone.setViewportSize({ width: 390, height: 844 });
  await phone.goto(url + '#7d', { waitUntil: 'load' });
  await ready(phone, 'body');
  await ready(phone, '#history-chart');
  result.phone = {
    scrollWidth: await phone.evaluate(() => document.documentElement.scrollWidth),
    chartWidth: await phone.$eval('#history-chart canvas', (c) => c.getBoundingClientRect().width),
    step: await phone.$eval('#history-meta', (e) => e.textContent),
  };
  await phone.screenshot({ path: join(outdir, 'phone.png'), fullPage: true });
  result.problems = problems;
  process.stdout.write(JSON.stringify(result) + '\n');
} finally {
  await context.close();
  await rm(profile, { recursive: true, force: true });
}
