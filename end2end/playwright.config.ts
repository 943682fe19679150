import { defineConfig } from '@playwright/test';
import * as path from 'path';

// The release binary from ./scripts/build, which carries the dashboard: no --site-root.
const root = path.resolve(__dirname, '..');
export const bin =
  process.env.SOCKSCOPE_BIN ??
  path.join(process.env.CARGO_TARGET_DIR ?? path.join(root, 'target'), 'release', 'sockscope');
const port = Number(process.env.SOCKSCOPE_E2E_PORT ?? 3917);
const demoPort = port + 1;
// An observer that asks for a login (tests/auth.spec.ts); the secrets are test-only.
export const authPort = port + 2;
export const authSecrets = {
  inspector: 'e2e-inspector-token-0123456789',
  viewer: 'e2e-viewer-token-0123456789',
  tap: 'e2e-tap-token-0123456789abcdef',
};

export default defineConfig({
  testDir: './tests',
  timeout: 30_000,
  expect: { timeout: 10_000 },
  fullyParallel: false,
  workers: 1,
  reporter: [['list']],
  use: {
    baseURL: `http://127.0.0.1:${port}`,
    browserName: 'chromium',
    headless: true,
    launchOptions: {
      // Debian's Chromium; never `npx playwright install` (it downloads, and fails here).
      executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
      args: [
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    },
  },
  webServer: [
    {
      // --conn-meta-bytes: room for hostile.spec's 64 headers of 8 KiB (the default keeps 16 KiB).
      // --no-record: the observers here run side by side in one directory.
      command: `"${bin}" serve --listen 127.0.0.1:${port} --tick 100ms --conn-meta-bytes 1048576 --no-record`,
      // Playwright waits for this URL itself (cargo leptos end-to-end would not).
      url: `http://127.0.0.1:${port}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
    },
    {
      // The one-command demo: observer, sample app, two tapped proxies, live load.
      command: `"${bin}" demo --listen 127.0.0.1:${demoPort} --tick 100ms --no-record`,
      url: `http://127.0.0.1:${demoPort}/healthz`,
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
    },
    {
      command: `"${bin}" serve --listen 127.0.0.1:${authPort} --tick 100ms --no-record`,
      url: `http://127.0.0.1:${authPort}/healthz`,
      env: {
        SOCKSCOPE_INSPECTOR_TOKENS: authSecrets.inspector,
        SOCKSCOPE_VIEWER_TOKENS: authSecrets.viewer,
        SOCKSCOPE_INGEST_TOKENS: authSecrets.tap,
      },
      reuseExistingServer: false,
      timeout: 60_000,
      stdout: 'pipe',
      stderr: 'pipe',
    },
  ],
});
