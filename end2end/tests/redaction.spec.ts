import { test, expect } from './fixtures';

// What the tap redacted is shown as redacted: masked values marked, withheld headers named,
// the capture mode stated.
test('the inspector shows masked values, withheld headers and the capture mode', async ({ page, request }) => {
  await page.goto('/');
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const source = `red-${Date.now()}`;
  const masked = JSON.stringify({ user: 'ann', password: '[REDACTED]', nested: { token: '[REDACTED]' } });
  const res = await request.post('/ingest', {
    data: {
      v: 1,
      events: [
        { type: 'hello', source, kind: 'proxy' },
        {
          type: 'conn_open', conn: 1, ip: '192.0.2.77', path: '/login',
          headers: [['origin', 'http://app.test']], redacted_headers: ['cookie', 'authorization'],
          capture: 'truncated', capture_bytes: 4096,
        },
        { type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: 48, text: masked, redacted: 2 },
      ],
    },
  });
  expect(res.status(), await res.text()).toBe(200);
  await page.getByTestId('conn-table').locator('tbody tr', { hasText: '192.0.2.77' }).click();
  const inspector = page.getByTestId('inspector');
  await expect(inspector).toContainText('truncated: the first 4.0 KiB of each payload, after masking');
  const withheld = inspector.getByTestId('withheld-header');
  await expect(withheld).toHaveCount(2);
  await expect(withheld.first()).toContainText('withheld by the tap');
  await inspector.getByTestId('messages').locator('li').first().click();
  await expect(inspector.getByTestId('redacted-note')).toContainText('2 values redacted at the tap');
  await expect(inspector.getByTestId('json-tree').locator('.j-redacted')).toHaveCount(2);
  await expect(inspector.getByTestId('json-tree')).toContainText('ann');
});
