// Opens the dashboard in headless Chromium and measures, for `seconds`:
// bytes/s received on the page's WebSockets, long tasks (> 50 ms), and event→screen latency of
// marker messages ("mark-<unix ms>") that the generator sends, filtered into the trace.
// Usage: node measure.js <dashboard url> <seconds>
const { chromium } = require('playwright-core');

(async () => {
  const [url, secondsArg] = process.argv.slice(2);
  const seconds = Number(secondsArg || 20);
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  const page = await browser.newPage({ viewport: { width: 1500, height: 950 } });
  const cdp = await page.context().newCDPSession(page);
  await cdp.send('Network.enable');
  let bytes = 0;
  let measuring = false;
  cdp.on('Network.webSocketFrameReceived', (e) => {
    if (measuring) bytes += Buffer.byteLength(e.response.payloadData || '', 'utf8');
  });
  await page.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__long.push(e.duration); })
      .observe({ type: 'longtask', buffered: true });
    window.__lat = [];
    const seen = new Set();
    new MutationObserver(() => {
      const now = Date.now();
      for (const el of document.querySelectorAll('[data-testid=trace] li .text')) {
        const m = /mark-(\d+)/.exec(el.textContent || '');
        if (m && !seen.has(m[1])) { seen.add(m[1]); window.__lat.push(now - Number(m[1])); }
      }
    }).observe(document, { subtree: true, childList: true, characterData: true });
  });
  await page.goto(url);
  await page.waitForSelector('[data-status=live]', { timeout: 30000 });
  // Phase 1: the default view (unfiltered trace at full event rate): traffic and long tasks.
  await page.waitForTimeout(2000);
  await page.evaluate(() => { window.__long = []; });
  measuring = true;
  let t0 = Date.now();
  await page.waitForTimeout((seconds / 2) * 1000);
  measuring = false;
  const unfiltered_bytes_per_s = Math.round(bytes / ((Date.now() - t0) / 1000));
  const unfiltered_long = await page.evaluate(() => window.__long.slice());
  // Phase 2: only the markers in the trace (the filter runs on the observer): event→screen latency.
  await page.fill('[data-testid=trace-text]', 'mark-');
  await page.waitForTimeout(3000);
  await page.evaluate(() => { window.__long = []; window.__lat = []; });
  bytes = 0;
  measuring = true;
  t0 = Date.now();
  await page.waitForTimeout((seconds / 2) * 1000);
  measuring = false;
  const elapsed = (Date.now() - t0) / 1000;
  const { long, lat, rows } = await page.evaluate(() => ({
    long: window.__long,
    lat: window.__lat,
    rows: document.querySelectorAll('[data-testid=conn-table] tbody tr[data-conn]').length,
  }));
  const q = (arr, p) => { if (!arr.length) return null; const s = [...arr].sort((a, b) => a - b); return s[Math.min(s.length - 1, Math.floor(p * s.length))]; };
  const range = await page.textContent('[data-testid=conn-range]');
  console.log(JSON.stringify({
    seconds: elapsed,
    unfiltered_bytes_per_s,
    unfiltered_long_tasks: unfiltered_long.length,
    unfiltered_long_task_max_ms: unfiltered_long.length ? Math.max(...unfiltered_long) : 0,
    bytes_per_s: Math.round(bytes / elapsed),
    long_tasks: long.length,
    long_task_max_ms: long.length ? Math.max(...long) : 0,
    markers: lat.length,
    latency_p50_ms: q(lat, 0.5),
    latency_p99_ms: q(lat, 0.99),
    table_rows_in_dom: rows,
    table_range: range,
  }));
  await browser.close();
})().catch((e) => { console.error(e); process.exit(1); });
