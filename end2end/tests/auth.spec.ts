import { test, expect, Page } from './fixtures';
import { authPort, authSecrets } from '../playwright.config';

// An observer with credentials: the dashboard asks for a login, a viewer never sees payloads,
// an inspector does, and logging out ends the session.
const base = `http://127.0.0.1:${authPort}`;
// The test tries a wrong token on purpose: that login answers 401.
test.use({ allowedFailure: /401.*\/auth\/login/ });
const secret = 'pin-7f3a9c-do-not-show';

async function login(page: Page, token: string) {
  await page.goto(`${base}/`);
  await expect(page).toHaveURL(/\/login\?next=/);
  await page.getByLabel('Token or password').fill(token);
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page).toHaveURL(`${base}/`);
  await expect(page.getByTestId('link-status')).toHaveAttribute('data-status', 'live');
}

test('viewer sees metadata only; inspector sees payloads; logout ends the session', async ({ page, request }) => {
  const errors: Error[] = [];
  page.on('pageerror', (e) => errors.push(e));
  const source = `auth-${Date.now()}`;
  const res = await request.post(`${base}/ingest`, {
    headers: { authorization: `Bearer ${authSecrets.tap}` },
    data: {
      v: 1,
      events: [
        { type: 'hello', source, name: source, kind: 'proxy' },
        { type: 'conn_open', conn: 1, ip: '198.51.100.7', path: '/secure', headers: [['x-trace', 'hdr-do-not-show']] },
        { type: 'message', conn: 1, dir: 'c2s', opcode: 'text', size: secret.length, text: secret },
      ],
    },
  });
  expect(res.status(), await res.text()).toBe(200);
  // without a token the API refuses
  expect((await request.get(`${base}/api/overview`)).status()).toBe(401);

  await page.goto(`${base}/`);
  await page.getByLabel('Token or password').fill('not-the-token-at-all');
  await page.getByRole('button', { name: 'Log in' }).click();
  await expect(page.getByRole('alert')).toHaveText('That token or password is not valid.');

  await login(page, authSecrets.viewer);
  await expect(page.getByTestId('session')).toHaveAttribute('data-role', 'viewer');
  const row = page.getByTestId('conn-table').locator('tbody tr', { hasText: '198.51.100.7' });
  await expect(row).toBeVisible();
  await row.click();
  await expect(page.getByTestId('payloads-hidden')).toBeVisible();
  await expect(page.getByTestId('trace-text')).toBeDisabled();
  await expect(page.getByTestId('trace').locator('li[data-kind="open"]', { hasText: '198.51.100.7' })).toBeVisible();
  expect(await page.content()).not.toContain(secret);
  expect(await page.content()).not.toContain('hdr-do-not-show');
  const cookies = await page.context().cookies(base);
  const session = cookies.find((c) => c.name === 'sockscope_session');
  expect(session?.httpOnly).toBe(true);
  expect(session?.sameSite).toBe('Strict');
  expect(await page.evaluate(() => document.cookie)).not.toContain('sockscope_session');

  await page.getByTestId('logout').click();
  await expect(page).toHaveURL(/\/login/);
  await page.goto(`${base}/`);
  await expect(page).toHaveURL(/\/login\?next=/);

  await login(page, authSecrets.inspector);
  await expect(page.getByTestId('session')).toHaveAttribute('data-role', 'inspector');
  await page.getByTestId('conn-table').locator('tbody tr', { hasText: '198.51.100.7' }).click();
  await expect(page.getByTestId('messages')).toContainText(secret);
  await expect(page.getByTestId('payloads-hidden')).toHaveCount(0);
  // the refusals above are counted and shown
  await expect(page.getByTestId('refused')).toContainText('unauthenticated');
  await expect(page.getByTestId('refused')).toContainText('bad login 1');
  expect(errors).toEqual([]);
});
