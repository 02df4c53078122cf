// One account's page: its balances (immature, due, pending, paid, void, in coinbases) summed by the server
// from the ledger, its credits block by block and its payouts with their transactions.
'use strict';

const name = new URLSearchParams(location.search).get('name') || '';

// Satoshis as coins, exactly (no floating point on the way).
function coins(sats) {
  const neg = sats < 0;
  const s = String(Math.abs(sats)).padStart(9, '0');
  return (neg ? '-' : '') + s.slice(0, -8) + '.' + s.slice(-8);
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

function loop() {
  refresh().catch(e => set('updated', 'error: ' + e.message)).finally(() => setTimeout(loop, REFRESH_MS));
}
loop();
