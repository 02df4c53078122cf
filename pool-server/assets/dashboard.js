async function refresh() {
  const pool = await (await fetch('/api/pool')).json();
  document.getElementById('height').textContent = pool.height;
  document.getElementById('hashrate').textContent = pool.hashrate['5m'].toFixed(0) + ' H/s';
  document.getElementById('workers').textContent = pool.workers;
}
refresh();
setInterval(refresh, 5000);
