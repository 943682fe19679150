import { test, expect } from './fixtures';
import { bin } from '../playwright.config';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

// A host that got only the binary: copied alone into an empty directory and started there.
test('the release binary alone serves a dashboard that hydrates and streams', async ({ page, request }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockscope-alone-'));
  const copy = path.join(dir, 'sockscope');
  fs.copyFileSync(bin, copy);
  fs.chmodSync(copy, 0o755);
  expect(fs.readdirSync(dir)).toEqual(['sockscope']);
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const env = { ...process.env, SOCKSCOPE_LOG: 'info' };
  delete env.LEPTOS_SITE_ROOT;
  const child = spawn(copy, ['serve', '--listen', `127.0.0.1:${port}`, '--tick', '100ms'], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let log = '';
  child.stdout.on('data', (d) => (log += d));
  child.stderr.on('data', (d) => (log += d));
  try {
    await expect
      .poll(async () => (await fetch(`${base}/healthz`).catch(() => null))?.status ?? 0, { timeout: 15_000 })
      .toBe(200);
    expect(log).not.toContain('no dashboard');

    // The files come from inside the binary (gzipped for clients that accept it).
    const wasm = await request.get(`${base}/pkg/sockscope.wasm`, { headers: { 'accept-encoding': 'gzip' } });
    expect(wasm.status()).toBe(200);
    expect(wasm.headers()['content-type']).toBe('application/wasm');
    expect(wasm.headers()['content-encoding']).toBe('gzip');
    const icon = await request.get(`${base}/favicon.ico`);
    expect(icon.status()).toBe(200);
    expect(icon.headers()['content-type']).toBe('image/x-icon');
    const etag = icon.headers()['etag'];
    expect((await request.get(`${base}/favicon.ico`, { headers: { 'if-none-match': etag } })).status()).toBe(304);
    expect((await request.get(`${base}/pkg/not-there.js`)).status()).toBe(404);

    await page.goto(`${base}/`);
    await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
    // Every icon the page names is there (headless Chromium may not fetch them by itself).
    const icons = await page.evaluate(() =>
      [...document.querySelectorAll('link[rel~="icon"], link[rel="apple-touch-icon"]')].map((l) => (l as HTMLLinkElement).href));
    expect(icons.length).toBe(3);
    for (const href of icons) expect((await request.get(href)).status(), href).toBe(200);
    const res = await request.post(`${base}/ingest`, {
      data: {
        v: 1,
        events: [
          { type: 'hello', source: 'alone', name: 'alone', kind: 'proxy' },
          { type: 'conn_open', conn: 1, ip: '203.0.113.77', path: '/standalone' },
        ],
      },
    });
    expect(res.status(), await res.text()).toBe(200);
    await expect(page.getByTestId('conn-table').locator('tbody tr', { hasText: '203.0.113.77' })).toBeVisible();
  } finally {
    child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
