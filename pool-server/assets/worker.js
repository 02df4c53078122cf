// One worker's page: live numbers, and over a chosen range (?range=1h|24h|7d|30d|1y, from the
// rollups) its hashrate, accepted and rejected shares by reason and its best share.
'use strict';

const RANGES = ['1h', '24h', '7d', '30d', '1y'];
const RANGE_SECONDS = { '1h': 3600, '24h': 86400, '7d': 7 * 86400, '30d': 30 * 86400, '1y': 365 * 86400 };

// How long, in words, for "12 minutes of history".
function duration(seconds) {
  if (seconds < 120) return Math.round(seconds) + ' seconds';
  if (seconds < 7200) return Math.round(seconds / 60) + ' minutes';
  if (seconds < 172800) return Math.round(seconds / 3600) + ' hours';
  return Math.round(seconds / 86400) + ' days';
}
const query = new URLSearchParams(location.search);
const name = query.get('name') || '';
const range = RANGES.includes(query.get('range')) ? query.get('range') : '24h';

function ranges() {
  const nav = document.getElementById('ranges');
  nav.dataset.value = range;
  RANGES.forEach(r => {
    const a = document.createElement('a');
    const p = new URLSearchParams({ name, range: r });
    a.href = '/worker?' + p.toString();
    a.textContent = r;
    a.dataset.range = r;
    if (r === range) a.className = 'current';
    nav.appendChild(a);
  });
}

async function refresh() {
  const base = '/api/workers/' + encodeURIComponent(name);
  const [w, recent] = await Promise.all([
    json(base + '?range=' + range),
    json('/api/shares?limit=20&worker=' + encodeURIComponent(name)).catch(() => []),
  ]);
  set('worker-name', w.name);
  document.title = w.name + ' - worker';
  set('worker-status', w.sessions > 0 ? 'online' : 'offline, last share ' + ago(w.last_share));
  document.getElementById('worker-status').className = w.sessions > 0 ? 'ok' : 'bad';
  for (const win of ['1m', '5m', '1h']) {
    set('w-hashrate-' + win, hashrate(w.hashrate[win]), w.hashrate[win]);
    showInterval('w-interval-' + win, w.uncertainty && w.uncertainty.windows[win]);
  }
  const h = w.history;
  const sum = f => h.reduce((s, p) => s + f(p), 0);
  const accepted = sum(p => p.accepted), rejected = sum(p => p.rejected);
  const difficulty = sum(p => p.difficulty);
  const span = h.length ? (Date.parse(h[h.length - 1].time) - Date.parse(h[0].time)) / 1000 : 0;
  // The work of the range over the time the worker has existed in it: an 11-minute-old
  // worker's average is over its 11 minutes, not over a mostly empty day.
  const now = Date.now();
  const rangeStart = now - RANGE_SECONDS[range] * 1000;
  // The first point with work in it (the chart's points may start at the range's start).
  const firstData = h.find(p => p.difficulty > 0 || p.accepted > 0 || p.rejected > 0);
  const firstPoint = firstData ? Date.parse(firstData.time) : now;
  const known = w.uncertainty && w.uncertainty.seconds_known != null ? now - w.uncertainty.seconds_known * 1000 : firstPoint;
  // The pool's memory knows to the second when the worker began; the history, to its point's
  // bucket (5 minutes in 24 h): take the history's only when it is older than a bucket.
  const step = h.length > 1 ? Date.parse(h[1].time) - Date.parse(h[0].time) : 60000;
  const from = Math.max(rangeStart, firstPoint < known - step - 60000 ? firstPoint : known);
  const covered = Math.max(1, (now - from) / 1000);
  const mean = difficulty * 4294967296 / covered;
  set('w-hashrate-range', hashrate(mean), mean);
  document.getElementById('w-hashrate-range').dataset.covered = String(covered);
  const note = document.getElementById('w-history-note');
  note.textContent = covered < RANGE_SECONDS[range] * 0.95
    ? 'history: ' + duration(covered) + ' of the ' + range + ' range (the pool or this worker is younger)'
    : '';
  set('w-accepted', String(accepted), accepted);
  set('w-rejected', String(rejected), rejected);
  set('w-difficulty', String(w.difficulty), w.difficulty);
  const best = h.reduce((m, p) => Math.max(m, p.best_difficulty), 0);
  set('w-best', best.toPrecision(4), best);
  set('w-sessions', String(w.sessions), w.sessions);
  document.getElementById('w-hashrate-range').dataset.span = String(span);
  document.getElementById('w-hashrate-range').dataset.difficulty = String(difficulty);

  chart(document.getElementById('worker-chart'), range === '1h' ? withLive('w', h, w.hashrate['1m']) : h, { axes: true });
  bars(document.getElementById('shares-chart'), h);

  const reasons = {};
  h.forEach(p => Object.entries(p.rejected_by_reason).forEach(([r, n]) => { reasons[r] = (reasons[r] || 0) + n; }));
  const rbody = document.querySelector('#reasons tbody');
  rbody.textContent = '';
  Object.entries(reasons).sort((a, b) => b[1] - a[1]).forEach(([r, n]) => {
    const tr = document.createElement('tr');
    tr.dataset.reason = r;
    cell(tr, r);
    cell(tr, String(n), 'num', n);
    rbody.appendChild(tr);
  });
  if (!rbody.children.length) {
    const tr = document.createElement('tr');
    cell(tr, 'none', 'muted'); cell(tr, '');
    rbody.appendChild(tr);
  }

  const sbody = document.querySelector('#recent tbody');
  sbody.textContent = '';
  recent.forEach(s => {
    const tr = document.createElement('tr');
    tr.dataset.share = s.id;
    cell(tr, new Date(s.created_at).toLocaleTimeString());
    cell(tr, s.job_id || '-', 'hash');
    cell(tr, String(s.assigned_difficulty), 'num', s.assigned_difficulty);
    cell(tr, s.achieved_difficulty.toPrecision(4), 'num', s.achieved_difficulty);
    cell(tr, s.accepted ? 'accepted' : s.reason, s.accepted ? 'ok' : 'bad');
    sbody.appendChild(tr);
  });
  set('updated', 'updated ' + new Date().toLocaleTimeString());
  document.body.dataset.loaded = 'true';
}

ranges();
function loop() {
  refresh().catch(e => set('updated', 'error: ' + e.message)).finally(() => setTimeout(loop, REFRESH_MS));
}
loop();
