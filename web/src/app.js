// The collector's dashboard: one page, data from the daemon's read-only JSON API (/api/v1/*),
// charts drawn with uPlot. Nothing is fetched from anywhere else. Every client name is set
// with textContent (never parsed as HTML).
import uPlot from 'uplot';
import 'uplot/dist/uPlot.min.css';
import './style.css';

const LIVE_REFRESH_MS = 10000; // the daemon samples the live rates every 10 s
const HISTORY_REFRESH_MS = 60000;
const RANGES = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '1y': 365 * 86400 };

const $ = (id) => document.getElementById(id);
const state = { range: '24h', summary: null, client: null, charts: {}, pending: 0 };

// ------------------------------------------------------------------ formatting
const IEC = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
export function bytes(n) {
  let v = Number(n), i = 0;
  while (Math.abs(v) >= 1024 && i < IEC.length - 1) { v /= 1024; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? 2 : 1)) + ' ' + IEC[i];
}
const SI = ['bit/s', 'kbit/s', 'Mbit/s', 'Gbit/s', 'Tbit/s'];
export function bitrate(bytesPerSecond, digits = 1) {
  let v = Number(bytesPerSecond) * 8, i = 0;
  while (Math.abs(v) >= 1000 && i < SI.length - 1) { v /= 1000; i++; }
  return (i === 0 ? v.toFixed(0) : v.toFixed(v < 10 ? digits + 1 : digits)) + ' ' + SI[i];
}
const utc = (t) => new Date(t * 1000).toISOString().replace('T', ' ').slice(0, 16) + ' UTC';

// ------------------------------------------------------------------ theme
function applyTheme() {
  const chosen = localStorage.getItem('theme') || 'system';
  const dark = chosen === 'dark' || (chosen === 'system' && matchMedia('(prefers-color-scheme: dark)').matches);
  document.documentElement.dataset.theme = dark ? 'dark' : 'light';
  $('theme').textContent = chosen === 'system' ? 'theme: system' : 'theme: ' + chosen;
}
function cycleTheme() {
  const order = ['system', 'light', 'dark'];
  const next = order[(order.indexOf(localStorage.getItem('theme') || 'system') + 1) % order.length];
  localStorage.setItem('theme', next);
  applyTheme();
  redrawAll();
}
const css = (name) => getComputedStyle(document.documentElement).getPropertyValue(name).trim();

// ------------------------------------------------------------------ API
async function api(path) {
  const response = await fetch(path, { headers: { Accept: 'application/json' }, cache: 'no-store' });
  if (!response.ok) throw new Error(`${path}: ${response.status} ${(await response.text()).trim()}`);
  return response.json();
}
function rangeQuery() {
  const now = Math.floor(Date.now() / 1000);
  if (state.range === 'month' && state.summary) return `from=${state.summary.billing.from}&to=${now}`;
  return `from=${now - (RANGES[state.range] || 86400)}&to=${now}`;
}
function showError(error) {
  console.warn(error);
  $('history-meta').textContent = String(error.message || error);
  $('history-meta').classList.add('error');
}

// ------------------------------------------------------------------ charts
// One colour per class, down solid and up dashed.
const PALETTE = ['#2563eb', '#16a34a', '#d97706', '#9333ea', '#0891b2', '#db2777', '#65a30d', '#dc2626'];
function seriesOptions(series, classes, sparse) {
  return series.map((s) => ({
    label: `${s.class} ${s.direction}`,
    stroke: PALETTE[classes.indexOf(s.class) % PALETTE.length],
    dash: s.direction === 'up' ? [6, 4] : undefined,
    width: 1.5,
    value: (u, v) => (v == null ? '–' : bitrate(v)),
    points: { show: sparse, size: 5 }, // a lone point has no line to show it
  }));
}

// Draws the 9981 spikes as bands behind the lines (uPlot draw hook).
function spikeBands(spikes, step) {
  return (u) => {
    if (!spikes || spikes.length === 0) return;
    const { ctx } = u;
    const { top, height } = u.bbox;
    ctx.save();
    ctx.fillStyle = css('--spike');
    ctx.strokeStyle = css('--spike-edge');
    for (const s of spikes) {
      const x0 = u.valToPos(s.t, 'x', true);
      const x1 = Math.max(u.valToPos(s.t + step, 'x', true), x0 + 3);
      ctx.fillRect(x0, top, x1 - x0, height);
      ctx.beginPath();
      ctx.moveTo(x0, top);
      ctx.lineTo(x0, top + height);
      ctx.stroke();
    }
    ctx.restore();
  };
}

function drawChart(key, data) {
  const el = $(key + '-chart');
  state.charts[key]?.destroy();
  el.replaceChildren();
  const width = Math.max(el.clientWidth, 260);
  const height = window.innerWidth < 800 ? 220 : 280;
  const axis = { stroke: css('--muted'), grid: { stroke: css('--line'), width: 1 }, ticks: { stroke: css('--line') } };
  const opts = {
    width,
    height,
    legend: { live: true },
    cursor: { drag: { x: false, y: false } },
    scales: { x: { time: true, range: () => [data.from, data.to] }, y: { range: (u, min, max) => [0, max > 0 ? max * 1.05 : 125] } }, // idle: 0 to 1 kbit/s
    axes: [
      { ...axis, values: (u, ticks) => ticks.map((t) => new Date(t * 1000).toISOString().slice(data.span > 86400 * 2 ? 5 : 11, data.span > 86400 * 2 ? 10 : 16)) },
      { ...axis, size: 78, values: (u, ticks) => ticks.map((v) => bitrate(v, 0)) },
    ],
    series: [{ label: 'UTC', value: (u, t) => (t == null ? '–' : utc(t)) }, ...seriesOptions(data.series, data.classes, data.t.length < 3)],
    hooks: { drawClear: [spikeBands(data.spikes, data.step)] },
  };
  const values = [data.t, ...data.series.map((s) => s.values)];
  state.charts[key] = new uPlot(opts, values, el);
  el.dataset.points = String(data.t.length);
  el.dataset.spikes = String((data.spikes || []).length);
  el.dataset.ready = '1';
  state.charts[key].source = data;
}
function redrawAll() {
  for (const [key, chart] of Object.entries(state.charts)) if (chart?.source) drawChart(key, chart.source);
}
let resizeTimer;
window.addEventListener('resize', () => { clearTimeout(resizeTimer); resizeTimer = setTimeout(redrawAll, 150); });

// Bytes per step → bytes per second, for a rate chart.
const perSecond = (series, step) => series.map((s) => ({ ...s, values: s.values.map((v) => v / step) }));

// ------------------------------------------------------------------ tables
function cell(text, exact) {
  const td = document.createElement('td');
  td.textContent = text;
  if (exact !== undefined) { td.dataset.bytes = String(exact); td.title = `${exact} bytes`; }
  return td;
}
function classRows(tbody, classes, totals, columns) {
  tbody.replaceChildren();
  for (const name of classes) {
    const tr = document.createElement('tr');
    tr.dataset.class = name;
    tr.append(cell(name));
    for (const column of columns) tr.append(column(name));
    tbody.append(tr);
  }
}
const find = (rows, name, direction) => rows.find((r) => r.class === name && r.direction === direction) || { bytes: 0, packets: 0 };

function sparkline(values) {
  const svg = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  svg.setAttribute('viewBox', '0 0 100 20');
  svg.setAttribute('preserveAspectRatio', 'none');
  const line = document.createElementNS('http://www.w3.org/2000/svg', 'polyline');
  const max = Math.max(1, ...values);
  const n = Math.max(1, values.length - 1);
  line.setAttribute('points', values.map((v, i) => `${((i / n) * 100).toFixed(1)},${(19 - (v / max) * 18).toFixed(1)}`).join(' '));
  line.setAttribute('vector-effect', 'non-scaling-stroke');
  svg.append(line);
  return svg;
}

// ------------------------------------------------------------------ sections
async function loadSummary() {
  const s = await api('api/v1/summary');
  state.summary = s;
  document.title = `collector · ${s.host}`;
  $('title').textContent = `collector · ${s.host}`;
  $('footer').textContent = `version ${s.version} · counters read ${utc(s.now)}` +
    (s.anonymize ? ` · clients shown as their ${s.anonymize} network (ANONYMIZE)` : '');
  const rates = perSecondLive(s.live);
  drawChart('live', { t: s.live.t, series: rates, classes: s.classes, step: s.live.step, span: 900, from: s.now - 900, to: s.now, spikes: [] });
  const last = (name, direction) => {
    const series = rates.find((r) => r.class === name && r.direction === direction);
    const v = series?.values.at(-1);
    return v == null ? '–' : bitrate(v);
  };
  classRows($('live-totals').tBodies[0], s.classes, s.totals, [
    (c) => cell(last(c, 'down')),
    (c) => cell(last(c, 'up')),
    (c) => cell(bytes(find(s.totals, c, 'down').bytes), find(s.totals, c, 'down').bytes),
    (c) => cell(bytes(find(s.totals, c, 'up').bytes), find(s.totals, c, 'up').bytes),
  ]);
  $('live').dataset.ready = '1';
}
const perSecondLive = (live) => live.series; // the live series already are bytes/s

async function loadHistory() {
  const h = await api(`api/v1/history?${rangeQuery()}`);
  $('history-meta').classList.remove('error');
  $('history-meta').textContent = `${utc(h.from)} – ${utc(h.to)} · one point per ${h.step / 60} min` +
    (h.spikes.length ? ` · ${h.spikes.length} 9981 spike(s) marked` : '');
  drawChart('history', { ...h, series: perSecond(h.series, h.step), span: h.to - h.from });
  classRows($('history-totals').tBodies[0], h.classes, h.totals, [
    (c) => cell(bytes(find(h.totals, c, 'down').bytes), find(h.totals, c, 'down').bytes),
    (c) => cell(bytes(find(h.totals, c, 'up').bytes), find(h.totals, c, 'up').bytes),
  ]);
  const range = `from=${h.from}&to=${h.to}`;
  $('export-csv').href = `api/v1/export?${range}&format=csv`;
  $('export-csv').download = `traffic-${h.from}-${h.to}.csv`;
  $('export-json').href = `api/v1/export?${range}&format=json`;
  $('export-json').download = `traffic-${h.from}-${h.to}.json`;
  $('history').dataset.from = h.from;
  $('history').dataset.to = h.to;
  $('history').dataset.ready = '1';
  // Clients and the drill-down cover exactly the chart's range and steps.
  state.clientRange = `from=${h.from}&to=${h.to}&step=${h.step}`;
  state.hostSpikes = h.spikes;
}

async function loadClients(range) {
  const c = await api(`api/v1/clients?${range}&limit=20`);
  $('clients-range').textContent = `${utc(c.from)} – ${utc(c.to)}`;
  const tbody = $('clients-table').tBodies[0];
  tbody.replaceChildren();
  c.clients.forEach((client, i) => {
    const tr = document.createElement('tr');
    tr.dataset.client = client.client;
    if (client.client === state.client) tr.classList.add('selected');
    const spark = document.createElement('td');
    spark.className = 'spark';
    spark.append(sparkline(client.spark));
    tr.append(cell(String(i + 1)), cell(client.client), cell(bytes(client.down), client.down), cell(bytes(client.up), client.up), spark);
    tr.addEventListener('click', () => openClient(client.client));
    tbody.append(tr);
  });
  if (c.clients.length === 0) {
    const tr = document.createElement('tr');
    const td = cell('no client traffic in this range');
    td.colSpan = 5;
    tr.append(td);
    tbody.append(tr);
  }
  $('clients').dataset.ready = '1';
}

async function loadClient() {
  if (!state.client || !state.clientRange) return;
  const h = await api(`api/v1/history?${state.clientRange}&client=${encodeURIComponent(state.client)}`);
  $('client').hidden = false;
  $('client-name').textContent = state.client;
  // The host's 9981 spikes are marked on the client's chart too: who was busy then.
  drawChart('client', { ...h, series: perSecond(h.series, h.step), span: h.to - h.from, spikes: state.hostSpikes || [] });
  classRows($('client-totals').tBodies[0], h.classes, h.totals, [
    (c) => cell(bytes(find(h.totals, c, 'down').bytes), find(h.totals, c, 'down').bytes),
    (c) => cell(bytes(find(h.totals, c, 'up').bytes), find(h.totals, c, 'up').bytes),
  ]);
  $('client').dataset.ready = '1';
}

function openClient(name) {
  state.client = name;
  for (const tr of $('clients-table').tBodies[0].rows) tr.classList.toggle('selected', tr.dataset.client === name);
  $('client').dataset.ready = '';
  loadClient().then(() => $('client').scrollIntoView({ behavior: 'smooth', block: 'nearest' })).catch(showError);
}
function closeClient() {
  state.client = null;
  $('client').hidden = true;
  state.charts.client?.destroy();
  delete state.charts.client;
  for (const tr of $('clients-table').tBodies[0].rows) tr.classList.remove('selected');
}

function selectRange(range) {
  state.range = range;
  for (const b of $('ranges').querySelectorAll('button')) b.setAttribute('aria-selected', String(b.dataset.range === range));
  history.replaceState(null, '', '#' + range);
  return refreshRange();
}
const refreshRange = () => loadHistory().then(() => Promise.all([loadClients(state.clientRange), loadClient()])).catch(showError);

// ------------------------------------------------------------------ start
async function start() {
  applyTheme();
  matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => { applyTheme(); redrawAll(); });
  $('theme').addEventListener('click', cycleTheme);
  $('client-close').addEventListener('click', closeClient);
  for (const b of $('ranges').querySelectorAll('button')) b.addEventListener('click', () => selectRange(b.dataset.range));
  const fromHash = location.hash.slice(1);
  try {
    await loadSummary();
  } catch (e) {
    showError(e);
  }
  await selectRange(fromHash in RANGES || fromHash === 'month' ? fromHash : '24h');
  document.body.dataset.ready = '1';
  setInterval(() => loadSummary().catch(showError), LIVE_REFRESH_MS);
  setInterval(refreshRange, HISTORY_REFRESH_MS);
}
start();
