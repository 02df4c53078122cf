// The built-in dashboard: polls the read API and draws with a plain canvas (no CDN, works
// offline). Every number is written with a data-value attribute holding the raw API value.
'use strict';

const REFRESH_MS = Number(new URLSearchParams(location.search).get('refresh') || 5000);
// Samples this page took itself (1 m hashrate at each refresh), per series, to draw the
// current minute that the server's per-minute history does not hold yet.
const live = new Map();

function withLive(key, history, rate) {
  const samples = live.get(key) || [];
  samples.push({ time: new Date().toISOString(), hashrate: rate });
  while (samples.length > 720) samples.shift();
  live.set(key, samples);
  const last = history.length ? Date.parse(history[history.length - 1].time) + 60000 : 0;
  return history.concat(samples.filter(p => Date.parse(p.time) >= last));
}

function hashrate(h) {
  const units = ['H/s', 'kH/s', 'MH/s', 'GH/s', 'TH/s', 'PH/s', 'EH/s'];
  let i = 0;
  while (h >= 1000 && i < units.length - 1) { h /= 1000; i++; }
  return h.toFixed(2) + ' ' + units[i];
}

function ago(iso) {
  if (!iso) return '-';
  const s = Math.max(0, (Date.now() - Date.parse(iso)) / 1000);
  if (s < 90) return Math.round(s) + ' s ago';
  if (s < 5400) return Math.round(s / 60) + ' min ago';
  return Math.round(s / 3600) + ' h ago';
}

function set(id, text, value) {
  const el = document.getElementById(id);
  el.textContent = text;
  if (value !== undefined) el.dataset.value = String(value);
}

function cell(tr, text, cls, value) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  if (value !== undefined) td.dataset.value = String(value);
  tr.appendChild(td);
  return td;
}

// A line chart of [{time, hashrate}] points on a canvas, scaled to the device pixel ratio.
function chart(canvas, points, opts) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  const pad = opts.axes ? { l: 70, r: 10, t: 10, b: 22 } : { l: 2, r: 2, t: 2, b: 2 };
  if (points.length === 0) {
    if (opts.axes) { g.fillStyle = '#8a96a3'; g.fillText('no shares yet', pad.l, h / 2); }
    return;
  }
  const xs = points.map(p => Date.parse(p.time)), ys = points.map(p => p.hashrate);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 60000);
  const ymax = Math.max(...ys, 1) * 1.1;
  const X = t => pad.l + (w - pad.l - pad.r) * (t - x0) / (x1 - x0);
  const Y = v => h - pad.b - (h - pad.t - pad.b) * v / ymax;
  if (opts.axes) {
    g.strokeStyle = '#222b35'; g.fillStyle = '#8a96a3'; g.font = '11px system-ui';
    for (let i = 0; i <= 4; i++) {
      const v = ymax * i / 4, y = Y(v);
      g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
      g.fillText(hashrate(v), 4, y + 4);
    }
    g.fillText(new Date(x0).toLocaleTimeString(), pad.l, h - 6);
    g.fillText(new Date(x1).toLocaleTimeString(), w - pad.r - 60, h - 6);
  }
  g.strokeStyle = '#3fb950'; g.fillStyle = '#3fb950'; g.lineWidth = opts.axes ? 2 : 1.5;
  g.beginPath();
  points.forEach((p, i) => { const x = X(xs[i]), y = Y(ys[i]); if (i) g.lineTo(x, y); else g.moveTo(x, y); });
  g.stroke();
  if (points.length < 30) {
    points.forEach((p, i) => { g.beginPath(); g.arc(X(xs[i]), Y(ys[i]), opts.axes ? 3 : 2, 0, 2 * Math.PI); g.fill(); });
  }
}

async function json(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

async function refresh() {
  const [pool, workers, blocks] = await Promise.all([json('/api/pool'), json('/api/workers'), json('/api/blocks?limit=10')]);
  set('source', pool.source + ' chain');
  set('pool-hashrate', hashrate(pool.hashrate['5m']), pool.hashrate['5m']);
  set('pool-hashrate-1h', hashrate(pool.hashrate['1h']), pool.hashrate['1h']);
  set('pool-workers', String(pool.workers), pool.workers);
  set('pool-accepted', String(pool.accepted), pool.accepted);
  set('pool-rejected', String(pool.rejected), pool.rejected);
  set('pool-height', String(pool.height), pool.height);
  set('pool-difficulty', pool.network_difficulty.toPrecision(4), pool.network_difficulty);
  set('pool-blocks', String(pool.blocks_found), pool.blocks_found);
  const store = document.getElementById('pool-store');
  store.textContent = pool.store.backend + (pool.store.up ? ' up' : ' DOWN') + (pool.store.spool_depth ? ', ' + pool.store.spool_depth + ' spooled' : '');
  store.className = 'value ' + (pool.store.up ? 'ok' : 'bad');
  chart(document.getElementById('pool-chart'), withLive('pool', pool.history, pool.hashrate['1m']), { axes: true });

  const details = await Promise.all(workers.filter(w => w.sessions > 0 || w.accepted > 0)
    .map(w => json('/api/workers/' + encodeURIComponent(w.name)).catch(() => null)));
  const tbody = document.querySelector('#workers tbody');
  tbody.textContent = '';
  workers.forEach(w => {
    const tr = document.createElement('tr');
    tr.dataset.worker = w.name;
    cell(tr, w.name);
    cell(tr, hashrate(w.hashrate['1m']), 'num', w.hashrate['1m']).dataset.window = '1m';
    cell(tr, hashrate(w.hashrate['5m']), 'num', w.hashrate['5m']).dataset.window = '5m';
    cell(tr, hashrate(w.hashrate['1h']), 'num', w.hashrate['1h']).dataset.window = '1h';
    const hist = document.createElement('td');
    const c = document.createElement('canvas');
    c.width = 160; c.height = 28; c.style.width = '160px'; c.style.height = '28px';
    hist.appendChild(c); tr.appendChild(hist);
    const d = details.find(x => x && x.name === w.name);
    chart(c, withLive('w:' + w.name, d ? d.history : [], w.hashrate['1m']), { axes: false });
    cell(tr, String(w.accepted), 'num accepted', w.accepted);
    cell(tr, String(w.rejected), 'num rejected', w.rejected);
    cell(tr, String(w.difficulty), 'num', w.difficulty);
    cell(tr, String(w.sessions), 'num ' + (w.sessions > 0 ? 'ok' : 'bad'), w.sessions);
    cell(tr, ago(w.last_share));
    tbody.appendChild(tr);
  });

  const bbody = document.querySelector('#blocks tbody');
  bbody.textContent = '';
  blocks.forEach(b => {
    const tr = document.createElement('tr');
    tr.dataset.block = b.hash;
    cell(tr, String(b.height), 'num', b.height);
    cell(tr, b.hash.slice(0, 24) + '...', 'hash');
    cell(tr, b.worker || '-');
    cell(tr, b.status, b.status === 'accepted' ? 'ok' : 'bad');
    cell(tr, ago(b.found_at));
    bbody.appendChild(tr);
  });
  set('updated', 'updated ' + new Date().toLocaleTimeString());
  document.body.dataset.loaded = 'true';
}

function loop() {
  refresh().catch(e => set('updated', 'error: ' + e.message)).finally(() => setTimeout(loop, REFRESH_MS));
}
loop();
