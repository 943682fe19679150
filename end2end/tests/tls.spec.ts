import { test, expect } from './fixtures';
import { bin } from '../playwright.config';
import { ChildProcess, execFileSync, spawn } from 'child_process';
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

function start(args: string[]): { child: ChildProcess; log: () => string } {
  const env = { ...process.env, SOCKSCOPE_LOG: 'info' };
  const child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let log = '';
  child.stdout!.on('data', (d) => (log += d));
  child.stderr!.on('data', (d) => (log += d));
  return { child, log: () => log };
}

async function listening(port: number) {
  await expect
    .poll(
      () =>
        new Promise<boolean>((resolve) => {
          const s = net.connect(port, '127.0.0.1', () => (s.destroy(), resolve(true)));
          s.on('error', () => resolve(false));
        }),
      { timeout: 15_000 },
    )
    .toBe(true);
}

// The certificate comes from `sockscope dev-cert`, a CA made for this test only; the browser
// context trusts it (ignoreHTTPSErrors) the way an operator would install their own CA.
test.use({ ignoreHTTPSErrors: true });

// Every link over TLS: the browser reaches the observer over https:// and wss://, a client
// reaches the app through the proxy over wss://, and the proxy's tap reports over wss://,
// trusting only the test CA. The dashboard hydrates, and the traffic streams into it.
test('over HTTPS the dashboard hydrates and streams traffic a TLS proxy taps', async ({ page, context }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sockscope-tls-'));
  execFileSync(bin, ['dev-cert', '--dir', dir]);
  const [obsPort, appPort, proxyPort] = [await freePort(), await freePort(), await freePort()];
  const tls = ['--tls-cert', path.join(dir, 'cert.pem'), '--tls-key', path.join(dir, 'key.pem')];
  const procs = [
    start(['serve', '--listen', `127.0.0.1:${obsPort}`, '--tick', '100ms', '--no-record', ...tls]),
    start(['sample-app', '--listen', `127.0.0.1:${appPort}`]),
    start([
      'proxy', '--listen', `127.0.0.1:${proxyPort}`, '--upstream', `http://127.0.0.1:${appPort}`,
      '--observer', `wss://127.0.0.1:${obsPort}/ingest`, '--observer-ca', path.join(dir, 'ca.pem'),
      '--name', 'tls-edge', '--payload-mode', 'full', ...tls,
    ]),
  ];
  try {
    for (const p of [obsPort, appPort, proxyPort]) await listening(p);
    const base = `https://127.0.0.1:${obsPort}`;
    await page.goto(`${base}/`);
    await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
    expect(page.url()).toMatch(/^https:/);
    await expect(page.getByTestId('sources')).toContainText('tls-edge');

    // A client of the app, through the proxy over wss://, in a page the app served (through
    // the proxy, over https://) in the same context.
    const client = await context.newPage();
    await client.goto(`https://127.0.0.1:${proxyPort}/`);
    await expect(client.locator('body')).toContainText('sockscope sample app');
    const echoed = await client.evaluate(
      (url) =>
        new Promise<string>((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.onopen = () => ws.send('hello over tls');
          ws.onmessage = (m) => resolve(String(m.data));
          ws.onerror = () => reject(new Error('the wss:// client failed'));
        }),
      `wss://127.0.0.1:${proxyPort}/echo`,
    );
    expect(echoed).toContain('hello over tls');

    const trace = page.getByTestId('trace');
    await expect(trace.locator('li[data-kind="message"]', { hasText: 'hello over tls' }).first()).toBeVisible();
    await expect(page.getByTestId('conn-table').locator('tbody tr', { hasText: '/echo' })).toBeVisible();
    // The session cookie of a TLS observer would be Secure; this one runs open, so none is set.
    expect((await context.cookies(base)).filter((c) => !c.secure)).toEqual([]);
  } finally {
    for (const p of procs) p.child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
