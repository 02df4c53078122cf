// The pool page: cards, the pool's hashrate chart, the workers table, the P2P peers (when the
// embedded chain has a network) and the latest blocks.
// The workers table is searched, sorted, grouped and paged by the server
// (/api/worker-table), so a pool with tens of thousands of workers sends one page of rows.
// Its state lives in the address (?q=&sort=&order=&offset=&group=), so a view can be shared.
'use strict';

const PAGE = 50;
const params = new URLSearchParams(location.search);
const view = {
  q: params.get('q') || '',
  sort: params.get('sort') || 'name',
  order: params.get('order') || '',
  offset: Number(params.get('offset') || 0),
  group: params.get('group') || '',
};

function tableQuery() {
  const p = new URLSearchParams({ limit: PAGE, offset: view.offset, sort: view.sort });
  if (view.q) p.set('q', view.q);
  if (view.order) p.set('order', view.order);
  if (view.group) p.set('group', view.group);
  return p;
}

// Keep the address in step with the view (without the API-only page size).
function remember() {
  const p = tableQuery();
  p.delete('limit');
  if (params.get('refresh')) p.set('refresh', params.get('refresh'));
  history.replaceState(null, '', '?' + p.toString());
}

function workerLink(name) {
  const a = document.createElement('a');
  a.href = '/worker?name=' + encodeURIComponent(name);
  a.textContent = name;
  return a;
}

function workerRow(w, details) {
  const tr = document.createElement('tr');
  tr.dataset.worker = w.name;
  cell(tr, '').appendChild(workerLink(w.name));
  cell(tr, hashrate(w.hashrate['1m']), 'num', w.hashrate['1m']).dataset.window = '1m';
  cell(tr, hashrate(w.hashrate['5m']), 'num', w.hashrate['5m']).dataset.window = '5m';
  cell(tr, hashrate(w.hashrate['1h']), 'num', w.hashrate['1h']).dataset.window = '1h';
  const hist = document.createElement('td');
  const c = document.createElement('canvas');
  c.width = 160; c.height = 28; c.style.width = '160px'; c.style.height = '28px';
  hist.appendChild(c); tr.appendChild(hist);
  const d = details.get(w.name);
  chart(c, withLive('w:' + w.name, d ? d.history : [], w.hashrate['1m']), { axes: false });
  cell(tr, String(w.accepted), 'num accepted', w.accepted);
  cell(tr, String(w.rejected), 'num rejected', w.rejected);
  cell(tr, String(w.difficulty), 'num', w.difficulty);
  cell(tr, String(w.sessions), 'num ' + (w.sessions > 0 ? 'ok' : 'bad'), w.sessions);
  cell(tr, ago(w.last_share));
  return tr;
}

function accountRow(name, a) {
  const tr = document.createElement('tr');
  tr.className = 'account';
  tr.dataset.account = name;
  cell(tr, name + ' (' + a.online + '/' + a.workers + ' online)');
  cell(tr, hashrate(a.hashrate['1m']), 'num', a.hashrate['1m']);
  cell(tr, hashrate(a.hashrate['5m']), 'num', a.hashrate['5m']);
  cell(tr, hashrate(a.hashrate['1h']), 'num', a.hashrate['1h']);
  cell(tr, '');
  cell(tr, String(a.accepted), 'num', a.accepted);
  cell(tr, String(a.rejected), 'num', a.rejected);
  cell(tr, ''); cell(tr, ''); cell(tr, '');
  return tr;
}

async function refreshWorkers() {
  remember();
  const table = await json('/api/worker-table?' + tableQuery().toString());
  // Sparklines for the rows on this page only.
  const details = new Map();
  await Promise.all(table.rows.filter(w => w.sessions > 0 || w.accepted > 0).map(w =>
    json('/api/workers/' + encodeURIComponent(w.name))
      .then(d => details.set(w.name, d)).catch(() => null)));
  const tbody = document.querySelector('#workers tbody');
  tbody.textContent = '';
  let account = null;
  table.rows.forEach(w => {
    if (view.group && w.account !== account) {
      account = w.account;
      tbody.appendChild(accountRow(account, table.accounts[account]));
    }
    tbody.appendChild(workerRow(w, details));
  });
  const info = document.getElementById('page-info');
  const last = Math.min(table.offset + table.rows.length, table.total);
  info.textContent = table.total ? (table.offset + 1) + '-' + last + ' of ' + table.total : 'no workers';
  info.dataset.total = String(table.total);
  info.dataset.offset = String(table.offset);
  document.getElementById('page-prev').disabled = table.offset === 0;
  document.getElementById('page-next').disabled = last >= table.total;
  document.querySelectorAll('#workers th[data-sort]').forEach(th => {
    if (th.dataset.sort === view.sort) {
      const desc = view.order ? view.order === 'desc' : view.sort !== 'name';
      th.setAttribute('aria-sort', desc ? 'descending' : 'ascending');
    } else {
      th.removeAttribute('aria-sort');
    }
  });
}

async function refresh() {
  const [pool, blocks, peers, accounts] = await Promise.all([
    json('/api/pool'), json('/api/blocks?limit=10'), json('/api/peers'),
    json('/api/accounts').catch(() => [])]);
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
  // A young pool's day is mostly empty: say how much of it there is.
  const first = pool.history.find(p => p.difficulty > 0 || p.accepted > 0);
  const known = first ? (Date.now() - Date.parse(first.time)) / 1000 : 0;
  set('pool-history-note', first && known < 0.95 * 86400
    ? 'history: ' + (known < 7200 ? Math.max(1, Math.round(known / 60)) + ' minutes' : Math.round(known / 3600) + ' hours') + ' of the last 24 h'
    : (first ? '' : 'no history yet'));

  await refreshWorkers();
  showPeers(peers);
  showAccounts(accounts);

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

// Satoshis as coins, exactly.
function coins(sats) {
  const s = String(Math.abs(sats)).padStart(9, '0');
  return (sats < 0 ? '-' : '') + s.slice(0, -8) + '.' + s.slice(-8);
}

function showAccounts(list) {
  document.getElementById('accounts-section').hidden = list.length === 0;
  const body = document.querySelector('#accounts tbody');
  body.textContent = '';
  list.slice().sort((a, b) => (b.immature_sats + b.due_sats + b.paid_sats) - (a.immature_sats + a.due_sats + a.paid_sats))
    .slice(0, 50).forEach(a => {
      const tr = document.createElement('tr');
      tr.dataset.account = a.account;
      const link = document.createElement('a');
      link.href = '/account?name=' + encodeURIComponent(a.account);
      link.textContent = a.account;
      cell(tr, '').appendChild(link);
      cell(tr, coins(a.immature_sats), 'num', a.immature_sats);
      cell(tr, coins(a.due_sats), 'num', a.due_sats);
      cell(tr, coins(a.paid_sats), 'num', a.paid_sats);
      cell(tr, a.address || '-', 'hash');
      body.appendChild(tr);
    });
}

function showPeers(p) {
  document.getElementById('peers-card').hidden = !p.enabled;
  document.getElementById('peers-section').hidden = !p.enabled;
  if (!p.enabled) return;
  set('pool-peers', String(p.peers.length), p.peers.length);
  document.getElementById('pool-peers').className = 'value ' + (p.peers.length ? 'ok' : 'bad');
  const body = document.querySelector('#peers tbody');
  body.textContent = '';
  p.peers.forEach(peer => {
    const tr = document.createElement('tr');
    tr.dataset.peer = peer.listen || peer.address;
    cell(tr, peer.listen || peer.address);
    cell(tr, peer.direction);
    cell(tr, String(peer.best_height), 'num', peer.best_height);
    cell(tr, peer.ping_ms == null ? '-' : peer.ping_ms.toFixed(1) + ' ms', 'num', peer.ping_ms);
    cell(tr, String(peer.bytes_in), 'num', peer.bytes_in);
    cell(tr, String(peer.bytes_out), 'num', peer.bytes_out);
    cell(tr, peer.user_agent);
    cell(tr, ago(peer.connected_since));
    body.appendChild(tr);
  });
}

function redraw() {
  refreshWorkers().catch(e => set('updated', 'error: ' + e.message));
}

const search = document.getElementById('worker-search');
search.value = view.q;
let typing = null;
search.addEventListener('input', () => {
  clearTimeout(typing);
  typing = setTimeout(() => { view.q = search.value.trim(); view.offset = 0; redraw(); }, 250);
});
const group = document.getElementById('group-account');
group.checked = view.group === 'account';
group.addEventListener('change', () => { view.group = group.checked ? 'account' : ''; view.offset = 0; redraw(); });
document.getElementById('page-prev').addEventListener('click', () => { view.offset = Math.max(0, view.offset - PAGE); redraw(); });
document.getElementById('page-next').addEventListener('click', () => { view.offset += PAGE; redraw(); });
document.querySelectorAll('#workers th[data-sort]').forEach(th => th.addEventListener('click', () => {
  const desc = view.order ? view.order === 'desc' : view.sort !== 'name';
  view.order = th.dataset.sort === view.sort ? (desc ? 'asc' : 'desc') : '';
  view.sort = th.dataset.sort;
  view.offset = 0;
  redraw();
}));

function loop() {
  refresh().catch(e => set('updated', 'error: ' + e.message)).finally(() => setTimeout(loop, REFRESH_MS));
}
loop();
