import { test, expect } from './fixtures';

const demoPort = Number(process.env.SOCKSCOPE_E2E_PORT ?? 3917) + 1;
const demo = `http://127.0.0.1:${demoPort}/`;

function count(text: string | null): number {
  // "1,234 · 5,678" → 1234 + 5678
  return (text ?? '').split('·').map((p) => Number(p.replace(/[^0-9]/g, '')) || 0).reduce((a, b) => a + b, 0);
}

test('the demo shows live rows and rising counters', async ({ page }) => {
  await page.goto(demo);
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
  const rows = page.getByTestId('conn-table').locator('tbody tr[data-conn]');
  await expect.poll(async () => rows.count(), { timeout: 15_000 }).toBeGreaterThan(10);
  await expect(page.getByTestId('sources')).toContainText('edge-1');
  await expect(page.getByTestId('sources')).toContainText('edge-2');
  // edge-2 captures on demand; the open dashboard (its live trace) makes it stream.
  const capture = page.getByTestId('source-capture');
  await expect(capture.filter({ hasText: 'on demand · streaming' })).toHaveCount(1, { timeout: 15_000 });
  await expect(capture.filter({ hasText: /^full$/ })).toHaveCount(1);
  const msgs = page.getByTestId('msgs');
  await expect.poll(async () => count(await msgs.textContent()), { timeout: 15_000 }).toBeGreaterThan(0);
  const before = count(await msgs.textContent());
  await expect.poll(async () => count(await msgs.textContent()), { timeout: 10_000 }).toBeGreaterThan(before);
  await expect(page.getByTestId('trace').locator('li')).not.toHaveCount(0);
  // Charts share one time axis and draw lines once a few seconds have closed.
  const charts = page.getByTestId('chart');
  await expect(charts).toHaveCount(6);
  await expect
    .poll(async () => (await charts.first().locator('path').first().getAttribute('d')) ?? '', { timeout: 15_000 })
    .toContain('L');
  // Churn produces closes with varied codes.
  await page.getByTestId('conn-state').selectOption('closed');
  await expect(page.getByTestId('conn-table').locator('tbody tr[data-conn]').first()).toContainText('closed', { timeout: 15_000 });
});
