// Every test's page fails on a console error, an uncaught exception, a failed request or a
// response of 400 and above (the favicon included), unless the test lists it as expected with
// `test.use({ allowedFailure: /…/ })`.
import { test as base, expect } from '@playwright/test';

export { expect };
export type { APIRequestContext, Locator, Page } from '@playwright/test';

// One pattern (join several with |): Playwright would read an array as [value, options].
type Options = { allowedFailure: RegExp | null };

export const test = base.extend<Options & { pageProblems: void }>({
  allowedFailure: [null, { option: true }],
  pageProblems: [
    async ({ page, allowedFailure }, use) => {
      const problems: string[] = [];
      const note = (what: string) => {
        if (!allowedFailure?.test(what)) problems.push(what);
      };
      page.on('console', (m) => {
        if (m.type() === 'error') note(`console error: ${m.text()} (${m.location().url})`);
      });
      page.on('pageerror', (e) => note(`uncaught: ${e.message}`));
      page.on('requestfailed', (r) => note(`request failed: ${r.method()} ${r.url()} ${r.failure()?.errorText}`));
      page.on('response', (r) => {
        if (r.status() >= 400) note(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
      });
      await use();
      expect(problems, 'the page logged errors or had failed requests').toEqual([]);
    },
    { auto: true },
  ],
});
