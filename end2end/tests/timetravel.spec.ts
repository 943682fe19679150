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

// A recording observer on a free port for `body`, stopped and its record removed afterwards.
async function withRecordingObserver(prefix: string, body: (base: string) => Promise<void>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, '--tick', '100ms', '--data-dir', dir, '--record-sync', '100ms'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SOCKSCOPE_LOG: 'warn' },
  });
  try {
    await expect
      .poll(async () => (await fetch(`${base}/healthz`).catch(() => null))?.status ?? 0, { timeout: 15_000 })
      .toBe(200);
    await body(base);
  } finally {
    child.kill();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

// Time travel from the record: a moment in the URL shows the table and trace as they were
// (a connection gone now appears, open then; closed a little later, with its close code), the
// way back to live, replay, and a click on a chart's time axis.
test('the dashboard shows a past moment from the record, replays it, and goes back to live', async ({ page, request }) => {
  await withRecordingObserver('sockscope-past-', async (base) => {
    const now = Date.now();
    const us = (ms: number) => ms * 1000;
    const res = await request.post(`${base}/ingest`, {
      data: {
        v: 1,
        events: [
          { type: 'hello', source: 'past', kind: 'proxy' },
          { type: 'conn_open', conn: 1, ts: us(now - 120_000), ip: '203.0.113.10', path: '/gone-now' },
          { type: 'message', conn: 1, ts: us(now - 90_000), dir: 'c2s', opcode: 'text', size: 11, text: 'last words!' },
          { type: 'conn_close', conn: 1, ts: us(now - 30_000), code: 1006, by: 'abort' },
          { type: 'conn_open', conn: 2, ts: us(now - 1_000), ip: '203.0.113.20', path: '/here-now' },
        ],
      },
    });
    expect(res.status(), await res.text()).toBe(200);
    await new Promise((r) => setTimeout(r, 300)); // the record's sync

    // A minute ago, shared by URL: the connection that is gone now was open then.
    const then = now - 60_000;
    await page.goto(`${base}/?at=${then}`);
    await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
    const banner = page.getByTestId('past-banner');
    await expect(banner).toBeVisible();
    await expect(page.getByTestId('past-moment')).toContainText('UTC');
    const table = page.getByTestId('conn-table');
    await expect(table.locator('tbody tr', { hasText: '/gone-now' })).toContainText('open');
    await expect(table.locator('tbody tr', { hasText: '/here-now' })).toHaveCount(0);
    await expect(page.getByTestId('trace').locator('li[data-kind="open"]', { hasText: '/gone-now' })).toBeVisible();
    // The inspector shows what it had sent by then.
    await table.locator('tbody tr', { hasText: '/gone-now' }).click();
    await expect(page.getByTestId('inspector').getByTestId('messages')).toContainText('last words!');

    // Replay moves the moment on, in the URL too; past the close the row says how it ended.
    const before = await page.getByTestId('past-moment').textContent();
    await page.getByTestId('replay-10').click();
    await expect(page.getByTestId('past-moment')).not.toHaveText(before ?? '');
    await page.getByTestId('conn-state').selectOption('all');
    await expect(table.locator('tbody tr', { hasText: '/gone-now' })).toContainText('closed 1006', { timeout: 15_000 });
    await page.getByTestId('replay-stop').click();
    expect(page.url()).toMatch(/[?&]at=\d+/);

    // Back to live: the banner goes, the URL forgets the moment, today's connection is there.
    await page.getByTestId('back-to-live').click();
    await expect(banner).toHaveCount(0);
    expect(page.url()).not.toContain('at=');
    await expect(table.locator('tbody tr', { hasText: '/here-now' })).toBeVisible();

    // A click on a chart's time axis picks a moment.
    await page.getByTestId('chart-axis').first().click({ position: { x: 5, y: 20 } });
    await expect(banner).toBeVisible();
    expect(page.url()).toMatch(/[?&]at=\d+/);
  });
});

// Searching the record from the dashboard: closed with 1006 in a window, shown as rows (a
// payload as text, never HTML), a bad field named, downloads offered, and a row that takes the
// dashboard to its moment.
test('the dashboard searches the record and jumps to what it found', async ({ page, request }) => {
  await withRecordingObserver('sockscope-search-', async (base) => {
    const now = Date.now();
    const us = (ms: number) => ms * 1000;
    const hostile = '<img src=x onerror=alert(1)>';
    const events: object[] = [{ type: 'hello', source: 'edge', kind: 'proxy' }];
    for (const [conn, code] of [[1, 1006], [2, 1000], [3, 1006]]) {
      events.push({ type: 'conn_open', conn, ts: us(now - 600_000 + conn * 1000), ip: `198.51.100.${conn}`, path: `/room/${conn}` });
      events.push({ type: 'message', conn, ts: us(now - 500_000 + conn * 1000), dir: 'c2s', opcode: 'text', size: hostile.length, text: hostile });
      events.push({ type: 'conn_close', conn, ts: us(now - 300_000 + conn * 1000), code, by: 'abort' });
    }
    const res = await request.post(`${base}/ingest`, { data: { v: 1, events } });
    expect(res.status(), await res.text()).toBe(200);
    await new Promise((r) => setTimeout(r, 300)); // the record's sync

    await page.goto(base);
    await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
    const panel = page.getByTestId('history-search');
    await panel.locator('summary').click();
    const iso = (ms: number) => new Date(ms).toISOString().slice(0, 19);
    await page.getByTestId('history-from').fill(iso(now - 3_600_000));
    await page.getByTestId('history-to').fill(iso(now));
    // A bad code is named, nothing is asked.
    await page.getByTestId('history-close').fill('99');
    await page.getByTestId('history-go').click();
    await expect(page.getByTestId('history-error')).toContainText('between 1000 and 4999');
    await page.getByTestId('history-close').fill('1006');
    await page.getByTestId('history-go').click();
    const rows = page.getByTestId('history-row');
    await expect(rows).toHaveCount(2);
    await expect(rows.first()).toContainText('/room/3');
    await expect(rows.first().getByTestId('history-code')).toHaveText('1006');
    // The payload is text on the page.
    await expect(rows.first()).toContainText(hostile);
    await expect(page.locator('table.history img')).toHaveCount(0);
    // The same search as downloads.
    await expect(page.getByTestId('history-csv')).toHaveAttribute('href', /code=1006.*format=csv/);
    const csv = await request.get(`${base}${await page.getByTestId('history-csv').getAttribute('href')}`);
    expect((await csv.text()).trim().split('\n')).toHaveLength(3);
    // By address prefix: only connection 1.
    await page.getByTestId('history-ip').fill('198.51.100.0/31');
    await page.getByTestId('history-go').click();
    await expect(rows).toHaveCount(1);
    await expect(rows.first()).toContainText('/room/1');
    // A row takes the dashboard to the moment the connection closed.
    await rows.first().click();
    await expect(page.getByTestId('past-banner')).toBeVisible();
    expect(page.url()).toMatch(/[?&]at=\d+/);
  });
});
