// One account's page: its balances (immature, due, pending, paid, void, in coinbases) summed by the server
// from the ledger, its credits block by block and its payouts with their transactions; and, with the
// account's key, its alert destinations (add, remove, send a test) and what was sent to them.
'use strict';

const name = new URLSearchParams(location.search).get('name') || '';

// Satoshis as coins, exactly (no floating point on the way).
function coins(sats) {
  const neg = sats < 0;
  const s = String(Math.abs(sats)).padStart(9, '0');
  return (neg ? '-' : '') + s.slice(0, -8) + '.' + s.slice(-8);
}

// The account's hashrate summed over its workers, each window with the 95 % interval the shares
// counted allow (few shares: a wide one).
function showLive(live) {
  set('a-online', live ? String(live.online) : '0', live ? live.online : 0);
  for (const win of ['1m', '5m', '1h']) {
    const rate = live ? live.hashrate[win] : 0;
    set('a-hashrate-' + win, hashrate(rate), rate);
    showInterval('a-interval-' + win, live && live.uncertainty.windows[win]);
  }
}

async function refresh() {
  const a = await json('/api/accounts/' + encodeURIComponent(name));
  const b = a.balance;
  set('account-name', b.account);
  document.title = b.account + ' - account';
  set('account-address', b.address ? 'paid to ' + b.address : 'no payout address set');
  for (const [id, key] of [['a-immature', 'immature_sats'], ['a-due', 'due_sats'],
    ['a-pending', 'pending_sats'], ['a-paid', 'paid_sats'], ['a-mature', 'mature_sats'],
    ['a-void', 'void_sats'], ['a-coinbase', 'in_coinbase_sats']]) {
    set(id, coins(b[key]), b[key]);
  }
  showLive(a.live);
  const cbody = document.querySelector('#credits tbody');
  cbody.textContent = '';
  a.credits.forEach(c => {
    const tr = document.createElement('tr');
    tr.dataset.block = c.block_hash;
    cell(tr, String(c.height), 'num', c.height);
    cell(tr, c.block_hash.slice(0, 24) + '...', 'hash');
    cell(tr, c.state, c.state === 'void' ? 'bad' : (c.state === 'mature' ? 'ok' : ''));
    cell(tr, String(c.confirmations), 'num', c.confirmations);
    cell(tr, c.difficulty.toPrecision(4), 'num', c.difficulty);
    cell(tr, coins(c.sats), 'num', c.sats);
    // Coinbase payouts: the output this block paid (its part plus any carried balance).
    cell(tr, c.paid_sats > 0 ? coins(c.paid_sats) + (c.carry_sats > 0 ? ' (' + coins(c.carry_sats) + ' carried)' : '') : '-', 'num', c.paid_sats);
    cbody.appendChild(tr);
  });
  const pbody = document.querySelector('#payouts tbody');
  pbody.textContent = '';
  a.payouts.forEach(p => {
    const tr = document.createElement('tr');
    tr.dataset.payout = p.id;
    cell(tr, ago(p.created_at));
    cell(tr, p.state, p.state === 'failed' ? 'bad' : (p.state === 'sent' ? 'ok' : ''));
    cell(tr, coins(p.sats), 'num', p.sats);
    cell(tr, p.address, 'hash');
    cell(tr, p.txid || '-', 'hash');
    pbody.appendChild(tr);
  });
  set('updated', 'updated ' + new Date().toLocaleTimeString());
  document.body.dataset.loaded = 'true';
}

// The account's key: typed into the page, or after #key= in the link (never sent but as a bearer token).
let accountKey = new URLSearchParams(location.hash.slice(1)).get('key') || '';
const base = () => '/api/accounts/' + encodeURIComponent(name);

async function authed(method, path, body) {
  const r = await fetch(path, {
    method,
    headers: { 'Authorization': 'Bearer ' + accountKey, 'Content-Type': 'application/json' },
    body: body ? JSON.stringify(body) : undefined,
  });
  if (!r.ok) throw new Error((await r.json().catch(() => ({}))).error || ('HTTP ' + r.status));
  return r.status === 204 ? null : r.json();
}

function button(text, action) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.addEventListener('click', () => action().then(alerts).catch(e => set('alerts-state', e.message)));
  return b;
}

async function alerts() {
  if (!accountKey) {
    set('alerts-state', 'give the account key to see and manage its alerts');
    return;
  }
  const [subs, sent] = await Promise.all([
    authed('GET', base() + '/subscriptions'),
    authed('GET', base() + '/deliveries?limit=50'),
  ]);
  set('alerts-state', subs.subscriptions.length + ' destinations');
  const sbody = document.querySelector('#subscriptions tbody');
  sbody.textContent = '';
  subs.subscriptions.forEach(d => {
    const tr = document.createElement('tr');
    tr.dataset.subscription = d.id;
    cell(tr, d.kind);
    cell(tr, d.shown, 'hash');
    const td = document.createElement('td');
    const test = button('Send a test', () => authed('POST', base() + '/subscriptions/' + d.id + '/test'));
    test.dataset.test = d.id;
    td.appendChild(test);
    td.appendChild(button('Remove', () => authed('DELETE', base() + '/subscriptions/' + d.id)));
    tr.appendChild(td);
    sbody.appendChild(tr);
  });
  const dbody = document.querySelector('#deliveries tbody');
  dbody.textContent = '';
  sent.deliveries.forEach(m => {
    const tr = document.createElement('tr');
    tr.dataset.state = m.state;
    tr.dataset.rule = m.alert.rule;
    cell(tr, ago(m.created_at));
    cell(tr, m.alert.summary);
    cell(tr, m.state, m.state === 'failed' ? 'bad' : (m.state === 'sent' ? 'ok' : ''));
    cell(tr, String(m.attempts), 'num', m.attempts);
    cell(tr, m.last_error || '');
    dbody.appendChild(tr);
  });
}

document.getElementById('key-form').addEventListener('submit', e => {
  e.preventDefault();
  accountKey = document.getElementById('account-key').value;
  alerts().catch(err => set('alerts-state', err.message));
});
document.getElementById('add-form').addEventListener('submit', e => {
  e.preventDefault();
  const kind = document.getElementById('dest-kind').value;
  const url = document.getElementById('dest-url').value;
  authed('POST', base() + '/subscriptions', { kind, url })
    .then(alerts)
    .catch(err => set('alerts-state', err.message));
});

function loop() {
  // The alerts do not wait on the balances: an account with no credit yet has alerts too.
  Promise.all([
    refresh().catch(e => set('updated', 'error: ' + e.message)),
    alerts().catch(e => set('alerts-state', e.message)),
  ]).finally(() => {
    document.body.dataset.alerts = 'true';
    setTimeout(loop, REFRESH_MS);
  });
}
loop();
