// Browser tests against a running suite (scripts/test-web starts one with `studycafe up`), in
// Debian's Chromium: Playwright never downloads a browser here. The unit tests need no suite.

import { defineConfig } from "@playwright/test";

const baseURL = process.env.WEB_TEST_BASE_URL ?? "http://127.0.0.1:8080";
const executablePath = process.env.WEB_TEST_CHROMIUM ?? "/usr/lib/chromium/chromium";

export default defineConfig({
  testDir: "tests",
  outputDir: process.env.WEB_TEST_OUTPUT ?? "test-results",
  // The scenarios share one suite and its seats; one at a time keeps them from racing.
  workers: 1,
  fullyParallel: false,
  forbidOnly: !!process.env.CI,
  retries: 0,
  timeout: 90_000,
  expect: { timeout: 20_000 },
  reporter: [["list"]],
  projects: [
    { name: "unit", testMatch: /unit\.spec\.ts$/ },
    {
      name: "browser",
      testMatch: /app\.spec\.ts$/,
      use: {
        baseURL,
        browserName: "chromium",
        locale: "en-GB",
        viewport: { width: 1180, height: 860 },
        launchOptions: {
          executablePath,
          args: [
            "--no-sandbox",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-quic",
            "--disable-dev-shm-usage",
          ],
        },
        trace: "retain-on-failure",
        screenshot: "only-on-failure",
      },
    },
  ],
});
