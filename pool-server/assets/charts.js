// Shared by the dashboard's pages: number formatting, DOM helpers and a plain canvas chart
// (no CDN, works offline). Every number a page shows carries its raw API value in a
// data-value attribute, so tests and scrapers read exact figures.
'use strict';

const REFRESH_MS = Number(new URLSearchParams(location.search).get('refresh') || 5000);

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
  if (s < 172800) return Math.round(s / 3600) + ' h ago';
  return Math.round(s / 86400) + ' d ago';
}

function set(id, text, value) {
  const el = document.getElementById(id);
  el.textContent = text;
  if (value !== undefined) el.dataset.value = String(value);
}

// A window's 95 % interval (from the API's `uncertainty.windows`) under its number: the shares
// counted say how sure it is (few shares, a wide one); nothing when there is none.
function showInterval(id, u) {
  const el = document.getElementById(id);
  if (u) {
    el.textContent = '95 %: ' + hashrate(u.low) + ' to ' + hashrate(u.high) + ' (' + u.shares + ' shares)';
    el.dataset.low = String(u.low);
    el.dataset.high = String(u.high);
  } else {
    el.textContent = '';
  }
}

function cell(tr, text, cls, value) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  if (value !== undefined) td.dataset.value = String(value);
  tr.appendChild(td);
  return td;
}

async function json(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(path + ': ' + r.status);
  return r.json();
}

// Samples a page took itself (1 m hashrate at each refresh), per series, to draw the
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

function prepare(canvas) {
  const dpr = window.devicePixelRatio || 1;
  const w = canvas.clientWidth || canvas.width, h = canvas.clientHeight || canvas.height;
  canvas.width = w * dpr; canvas.height = h * dpr;
  const g = canvas.getContext('2d');
  g.scale(dpr, dpr);
  g.clearRect(0, 0, w, h);
  return { g, w, h };
}

function timeLabel(t, span) {
  const d = new Date(t);
  return span > 2 * 86400000 ? d.toLocaleDateString() : d.toLocaleTimeString();
}

// Axes: value gridlines labelled by `fmt`, the first and last time below.
function axes(g, w, h, pad, ymax, x0, x1, fmt) {
  g.strokeStyle = '#222b35'; g.fillStyle = '#8a96a3'; g.font = '11px system-ui';
  for (let i = 0; i <= 4; i++) {
    const v = ymax * i / 4, y = h - pad.b - (h - pad.t - pad.b) * i / 4;
    g.beginPath(); g.moveTo(pad.l, y); g.lineTo(w - pad.r, y); g.stroke();
    g.fillText(fmt(v), 4, y + 4);
  }
  g.fillText(timeLabel(x0, x1 - x0), pad.l, h - 6);
  g.fillText(timeLabel(x1, x1 - x0), w - pad.r - 70, h - 6);
}

// A line chart of [{time, hashrate}] points on a canvas, scaled to the device pixel ratio.
function chart(canvas, points, opts) {
  const { g, w, h } = prepare(canvas);
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
  if (opts.axes) axes(g, w, h, pad, ymax, x0, x1, hashrate);
  g.strokeStyle = '#3fb950'; g.fillStyle = '#3fb950'; g.lineWidth = opts.axes ? 2 : 1.5;
  g.beginPath();
  points.forEach((p, i) => { const x = X(xs[i]), y = Y(ys[i]); if (i) g.lineTo(x, y); else g.moveTo(x, y); });
  g.stroke();
  if (points.length < 30) {
    points.forEach((p, i) => { g.beginPath(); g.arc(X(xs[i]), Y(ys[i]), opts.axes ? 3 : 2, 0, 2 * Math.PI); g.fill(); });
  }
}

// Stacked bars per bucket: accepted (green) under rejected (red).
function bars(canvas, points) {
  const { g, w, h } = prepare(canvas);
  const pad = { l: 70, r: 10, t: 10, b: 22 };
  if (points.length === 0) return;
  const xs = points.map(p => Date.parse(p.time));
  const ymax = Math.max(...points.map(p => p.accepted + p.rejected), 1) * 1.1;
  const x0 = xs[0], x1 = xs[xs.length - 1];
  axes(g, w, h, pad, ymax, x0, x1, v => String(Math.round(v)));
  const bw = Math.max(1, (w - pad.l - pad.r) / points.length - 1);
  const Y = v => (h - pad.t - pad.b) * v / ymax;
  points.forEach((p, i) => {
    const x = pad.l + i * (w - pad.l - pad.r) / points.length;
    const a = Y(p.accepted), r = Y(p.rejected);
    g.fillStyle = '#3fb950'; g.fillRect(x, h - pad.b - a, bw, a);
    g.fillStyle = '#f85149'; g.fillRect(x, h - pad.b - a - r, bw, r);
  });
}
