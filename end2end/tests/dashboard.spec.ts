import { test, expect, APIRequestContext } from './fixtures';

async function ingest(request: APIRequestContext, events: object[]) {
  const res = await request.post('/ingest', { data: { v: 1, events } });
  expect(res.status(), await res.text()).toBe(200);
}

const hostile = '<img src=x onerror=alert(1)>';

test('live table and trace update without reload; payloads render as text', async ({ page, request }) => {
  const dialogs: string[] = [];
  page.on('dialog', async (d) => {
    dialogs.push(d.message());
    await d.dismiss();
  });
  (page as any).__errors = [];
  page.on('pageerror', (e) => ((page as any).__errors as Error[]).push(e));

  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');

  const source = `e2e-${Date.now()}`;
  const hello = { type: 'hello', source, name: source, kind: 'proxy', version: 'e2e', hostname: 'playwright' };
  await ingest(request, [
    hello,
    {
      type: 'conn_open', conn: 1, ip: '203.0.113.9',
      user_agent: '<script>alert("ua")</script>', path: '/chat?x=<b>bold</b>',
    },
    { type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: hostile.length, text: hostile },
  ]);

  const table = page.getByTestId('conn-table');
  const row = table.locator('tbody tr', { hasText: '203.0.113.9' });
  await expect(row).toBeVisible();
  await expect(row).toContainText('<script>alert("ua")</script>');
  await expect(row).toContainText('/chat?x=<b>bold</b>');
  await expect(table.locator('b, script')).toHaveCount(0);

  const trace = page.getByTestId('trace');
  await expect(trace.locator('li[data-kind="message"]', { hasText: hostile })).toBeVisible();
  await expect(trace.locator('li[data-kind="open"]', { hasText: '203.0.113.9' })).toBeVisible();
  await expect(trace.locator('img')).toHaveCount(0);
  await expect(page.getByTestId('sources')).toContainText(source);

  await ingest(request, [hello, { type: 'conn_close', conn: 1, code: 4000, reason: 'bye', by: 'server' }]);
  await expect(trace.locator('li[data-kind="close"]', { hasText: '4000' })).toBeVisible();
  // The default view shows open connections; the closed one moves to "all".
  await expect(row).toHaveCount(0);
  await page.getByTestId('conn-state').selectOption('all');
  await expect(table.locator('tbody tr', { hasText: '203.0.113.9' })).toContainText('closed 4000 (application)');

  expect(dialogs).toEqual([]);
  expect((page as any).__errors).toEqual([]);
});

test('server-side filter narrows the table window', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const source = `filter-${Date.now()}`;
  const events: object[] = [{ type: 'hello', source, kind: 'gateway' }];
  for (let i = 1; i <= 30; i++) {
    events.push({ type: 'conn_open', conn: i, ip: `198.51.100.${i}`, path: `/room/${i}`, user_agent: 'filter-agent' });
  }
  await ingest(request, events);
  await page.getByTestId('conn-filter').fill('/room/17');
  const rows = page.getByTestId('conn-table').locator('tbody tr[data-conn]');
  await expect(rows).toHaveCount(1);
  await expect(rows.first()).toContainText('198.51.100.17');
  await expect(page.getByTestId('conn-range')).toHaveText('1–1 of 1');
});

test('the trace downloads as a HAR file with WebSocket messages', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const source = `har-${Date.now()}`;
  await ingest(request, [
    { type: 'hello', source, kind: 'app' },
    { type: 'conn_open', conn: 1, ip: '192.0.2.44', path: '/har' },
    { type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: 5, text: 'hello' },
  ]);
  await expect(page.getByTestId('trace').locator('li', { hasText: 'hello' })).toBeVisible();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByTestId('export-har').click()]);
  const fs = await import('fs');
  const har = JSON.parse(fs.readFileSync(await download.path(), 'utf8'));
  const entry = har.log.entries.find((e: any) => e.request.url.endsWith('/har'));
  expect(entry._webSocketMessages[0]).toMatchObject({ type: 'send', opcode: 1, data: 'hello' });
});

test('the inspector shows a JSON tree, a hex view and decoded SignalR', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const source = `insp-${Date.now()}`;
  const json = JSON.stringify({ user: '<img src=x onerror=alert(1)>', items: [1, 2, 3] });
  const signalr = JSON.stringify({ type: 1, target: 'SendMessage', arguments: ['bob', 'hi'] }) + '\u001e';
  const bin = Buffer.from('binary\u0000payload-here');
  await ingest(request, [
    { type: 'hello', source, kind: 'proxy' },
    { type: 'conn_open', conn: 1, ip: '192.0.2.55', path: '/inspect', headers: [['origin', 'http://app.test']] },
    { type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: json.length, text: json },
    { type: 'message', conn: 1, dir: 's2c', opcode: 'binary', size: bin.length, data: bin.toString('base64') },
    { type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: Buffer.byteLength(signalr), text: signalr },
  ]);
  await page.getByTestId('conn-table').locator('tbody tr', { hasText: '192.0.2.55' }).click();
  const inspector = page.getByTestId('inspector');
  await expect(inspector).toContainText('http://app.test');
  await expect(inspector.getByTestId('sparkline')).toBeVisible();
  await expect(inspector.getByTestId('export-conn')).toHaveAttribute('href', /format=har&conn=\d+/);
  const msgs = inspector.getByTestId('messages').locator('li');
  await expect(msgs).toHaveCount(3);
  await msgs.filter({ hasText: 'items' }).click();
  await expect(inspector.getByTestId('json-tree')).toContainText('items');
  await expect(inspector.getByTestId('json-tree')).toContainText('<img src=x onerror=alert(1)>');
  await expect(inspector.locator('img')).toHaveCount(0);
  await msgs.filter({ hasText: '(binary)' }).click();
  await expect(inspector.getByTestId('hex')).toContainText('62 69 6e 61 72 79 00');
  await expect(inspector.getByTestId('hex')).toContainText('binary.payload-h');
  await msgs.filter({ hasText: 'SendMessage' }).click();
  await expect(inspector.getByTestId('signalr')).toContainText('invocation target SendMessage');
});

test('trace filters by regex, and pause loses nothing', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const source = `rx-${Date.now()}`;
  const hello = { type: 'hello', source, kind: 'app' };
  await ingest(request, [hello, { type: 'conn_open', conn: 1, ip: '192.0.2.66', path: '/rx' }]);
  const send = (text: string) => ({ type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: text.length, text });
  await ingest(request, [hello, send('order 17 placed'), send('heartbeat'), send('order 18 placed')]);
  const trace = page.getByTestId('trace');
  // Seen once in CI: the first click did not stick ("did not change its state"); try again
  // for a few seconds, still failing if the box never stays checked.
  await expect(async () => {
    await page.getByTestId('trace-regex').check({ timeout: 1000 });
  }).toPass({ timeout: 10_000 });
  await page.getByTestId('trace-text').fill('order \\d+ placed');
  await expect(trace.locator('li[data-kind="message"]')).toHaveCount(2);
  await expect(trace).not.toContainText('heartbeat');
  // A broken regex is explained, not ignored silently.
  await page.getByTestId('trace-text').fill('order (');
  await expect(page.getByTestId('trace-error')).toContainText('invalid regular expression');
  await page.getByTestId('trace-text').fill('order \\d+ placed');
  await expect(page.getByTestId('trace-error')).toHaveCount(0);
  // Pause, generate, resume: everything that arrived meanwhile is there.
  await page.getByTestId('pause').click();
  await ingest(request, [hello, ...Array.from({ length: 30 }, (_, i) => send(`order ${100 + i} placed`))]);
  await expect(page.getByTestId('resume')).toContainText('30 new');
  await expect(trace.locator('li[data-kind="message"]')).toHaveCount(2);
  await page.getByTestId('resume').click();
  await expect(trace.locator('li[data-kind="message"]')).toHaveCount(32);
  await expect(trace).toContainText('order 129 placed');
  await expect(trace).toContainText('order 100 placed');
});

test('the connection table is virtualized: scrolling fetches rows, the DOM stays small', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const source = `virt-${Date.now()}`;
  const events: object[] = [{ type: 'hello', source, kind: 'gateway' }];
  for (let i = 1; i <= 3000; i++) events.push({ type: 'conn_open', conn: i, ip: '198.18.0.1', path: `/v/${i}`, user_agent: source });
  await ingest(request, events);
  await page.getByTestId('conn-filter').fill(source);
  const table = page.getByTestId('conn-table');
  await expect(page.getByTestId('conn-range')).toContainText('of 3,000');
  await expect(table.locator('tbody tr', { hasText: '/v/3000' })).toBeVisible();
  const rows = await table.locator('tbody tr[data-conn]').count();
  expect(rows).toBeLessThan(120);
  // Scroll to the very bottom: the oldest connection arrives.
  await page.locator('.scroll.virtual').evaluate((el) => { el.scrollTop = el.scrollHeight; });
  await expect(table.locator('td.path', { hasText: /^\/v\/1$/ })).toBeVisible();
  await expect(page.getByTestId('conn-range')).toContainText('3,000 of 3,000');
  expect(await table.locator('tbody tr[data-conn]').count()).toBeLessThan(120);
});
