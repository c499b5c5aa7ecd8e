// The web app in a real browser against a real suite (`studycafe up`): customers, the cafe's
// admin and an anonymous visitor, each in a browser context of their own, as issue 12 asks.
// Nothing here reloads a page to see a change: what must appear, appears live.

import { mkdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import {
  type APIRequestContext,
  type Browser,
  type BrowserContext,
  expect,
  type Page,
  test,
} from "@playwright/test";

const SHOTS = process.env.WEB_TEST_SCREENSHOTS ?? join("test-results", "screenshots");
mkdirSync(SHOTS, { recursive: true });

async function shot(page: Page, name: string, fullPage = true): Promise<void> {
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage, animations: "disabled" });
}

/** A day a few days ahead on the cafe's clock, different on each run, so a suite that is used
 * again (a developer's) has free seats. */
const DAY = (() => {
  const offset = 2 + Math.floor(Math.random() * 20);
  const seoul = new Date(Date.now() + 9 * 3_600_000 + offset * 86_400_000);
  return seoul.toISOString().slice(0, 10);
})();

const unique = () => Math.random().toString(36).slice(2, 8);

async function newPage(browser: Browser, options: Parameters<Browser["newContext"]>[0] = {}) {
  const context = await browser.newContext(options);
  const page = await context.newPage();
  return { context, page };
}

const AXE = createRequire(import.meta.url).resolve("axe-core/axe.min.js");

interface AxeViolation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string[] }[];
}

/** Runs axe (WCAG 2.1 A and AA: names, labels, roles, contrast…) on the page as it is. */
async function expectAccessible(page: Page): Promise<void> {
  await page.addScriptTag({ path: AXE });
  const violations = await page.evaluate(async () => {
    const axe = (window as unknown as { axe: { run(options: object): Promise<unknown> } }).axe;
    const result = (await axe.run({
      runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"] },
    })) as { violations: AxeViolation[] };
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.slice(0, 5).map((n) => n.target.join(" ")),
    }));
  });
  expect(violations).toEqual([]);
}

/** A customer made through the API, for what a test does outside the browser. */
async function apiCustomer(request: APIRequestContext): Promise<string> {
  const username = `api-${unique()}`;
  const password = "correct-horse-battery";
  const created = await request.post("/api/users", {
    data: { username, password, displayName: "API customer" },
  });
  expect(created.status()).toBe(201);
  const token = await request.post("/auth/token", {
    form: { grant_type: "password", username, password },
  });
  expect(token.ok()).toBe(true);
  return ((await token.json()) as { access_token: string }).access_token;
}

const seat = (page: Page, id: string) => page.locator(`[data-seat="${id}"]`);

/** Sets the window the map shows: a date, a start hour and a duration. */
async function chooseWindow(page: Page, hour: number, hours: number): Promise<void> {
  await page.locator("#date").fill(DAY);
  await page.locator("#start-hour").selectOption(String(hour));
  await page.locator("#duration").selectOption(String(hours));
}

async function signUp(page: Page, name: string): Promise<void> {
  await page.goto("/#/signup");
  await page.locator("#signup-username").fill(name);
  await page.locator("#signup-name").fill(`Test ${name}`);
  await page.locator("#signup-password").fill("correct-horse-battery");
  await page.getByRole("button", { name: "Sign up" }).click();
  await expect(page.getByRole("heading", { name: "Pick a seat" })).toBeVisible();
  await expect(page.locator(".account")).toContainText(name);
}

async function signInAsAdmin(page: Page): Promise<void> {
  await page.goto("/#/signin");
  await page.locator("#signin-username").fill("admin");
  await page.locator("#signin-password").fill("admin-studies");
  await page.getByRole("button", { name: "Sign in" }).click();
  await expect(page.getByRole("heading", { name: "Cafe console" })).toBeVisible();
  // Bookings wait for the admin in these scenarios.
  const autoConfirm = page.locator("#auto-confirm");
  await expect(autoConfirm).toBeEnabled();
  if (await autoConfirm.isChecked()) await autoConfirm.click();
  await expect(autoConfirm).not.toBeChecked();
}

/** The seat's status on a page's map once the board has loaded. */
async function expectSeat(page: Page, id: string, status: string): Promise<void> {
  await expect(seat(page, id)).toHaveAttribute("data-status", status);
}

test.describe("the web app", () => {
  const contexts: BrowserContext[] = [];
  test.afterEach(async () => {
    for (const context of contexts.splice(0)) await context.close();
  });

  test("the seat map loads with no console errors", async ({ browser }) => {
    const { context, page } = await newPage(browser);
    contexts.push(context);
    const errors: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("pageerror", (error) => errors.push(error.message));
    await page.goto("/");
    await expect(page.getByRole("radiogroup", { name: "Seat map" })).toBeVisible();
    await expect(seat(page, "A-01")).not.toHaveAttribute("data-status", "UNKNOWN");
    await expectSeat(page, "A-16", "DISABLED");
    await expect(page.locator(".live")).toHaveText("Live");
    expect(errors).toEqual([]);
    await expectAccessible(page);
    await shot(page, "seat-map");

    // The map is usable from the keyboard: arrows move, Enter picks.
    await seat(page, "A-01").focus();
    await page.keyboard.press("ArrowRight");
    await expect(page.locator(":focus")).toHaveAttribute("data-seat", "A-02");
    await page.keyboard.press("ArrowDown");
    const below = await page.locator(":focus").getAttribute("data-seat");
    expect(below).not.toBe("A-02");
    expect(below).toMatch(/^(A|B)-\d\d$/);
    await page.keyboard.press("End");
    await expect(page.locator(":focus")).toHaveAttribute("data-seat", "G-04");
    await page.keyboard.press("Home");
    await page.keyboard.press("Enter");
    await expect(seat(page, "A-01")).toHaveAttribute("aria-checked", "true");
    await expect(page.locator(".choice")).toContainText("A-01");
    expect(errors).toEqual([]);

    // And readable on a phone.
    await page.setViewportSize({ width: 360, height: 780 });
    await shot(page, "seat-map-phone");
  });

  test("reserve, confirmed live by the admin, registered with an entry pass, occupied for everyone; then cancelled and refunded", async ({
    browser,
  }) => {
    const seatId = "B-03";
    const hour = 14;
    // The customer's device is in California: the app still speaks the cafe's (Seoul) time.
    const customer = await newPage(browser, { timezoneId: "America/Los_Angeles" });
    const admin = await newPage(browser);
    const visitor = await newPage(browser);
    contexts.push(customer.context, admin.context, visitor.context);

    await signInAsAdmin(admin.page);
    await signUp(customer.page, `web-${unique()}`);
    await visitor.page.goto("/");
    for (const page of [customer.page, visitor.page]) {
      await chooseWindow(page, hour, 2);
      await expectSeat(page, seatId, "FREE");
    }

    // The customer picks the seat on the map and sees the price for two hours.
    await seat(customer.page, seatId).click();
    await expect(customer.page.getByTestId("price")).toHaveText("₩5,000");
    const sent = customer.page.waitForRequest(
      (r) => r.url().endsWith("/api/reservations") && r.method() === "POST",
    );
    await customer.page.getByRole("button", { name: "Reserve", exact: true }).click();
    const request = await sent;
    expect(request.postDataJSON()).toMatchObject({
      seatId,
      startsAt: `${DAY}T05:00:00Z`,
      hours: 2,
      paymentToken: "tok_approve",
    });
    expect(request.headers()["idempotency-key"]).toMatch(/^web-[0-9a-f]{32}$/);

    const progress = customer.page.getByRole("region", { name: "Your reservation" });
    await expect(progress).toHaveAttribute("data-status", "REQUESTED");
    await expect(progress).toContainText("14:00–16:00");
    const reservationId = await progress.getAttribute("data-reservation");
    expect(reservationId).toBeTruthy();
    await expectSeat(visitor.page, seatId, "HELD");

    // The admin's console shows the booking without a reload; the admin confirms it.
    const row = admin.page.locator(`tr[data-reservation="${reservationId}"]`);
    await expect(row).toBeVisible();
    await expect(row).toContainText(seatId);
    await expectAccessible(admin.page);
    await shot(admin.page, "admin-console");
    await row.getByRole("button", { name: `Confirm ${seatId}` }).click();
    await expect(row).toBeHidden();

    // The customer's page follows the saga to the entry pass, live.
    await expect(progress).toHaveAttribute("data-status", "REGISTERED");
    await expect(customer.page.getByTestId("entry-pass")).toHaveText(/\S{4,}/);
    await expectAccessible(customer.page);
    await shot(customer.page, "reservation-registered");

    // Seat B-03 is occupied on an anonymous visitor's map, without a reload.
    await expectSeat(visitor.page, seatId, "OCCUPIED");
    await shot(visitor.page, "seat-map-occupied");

    // The admin sees it among the registered bookings, with its payment.
    await admin.page.getByRole("tab", { name: /Registered/ }).click();
    const registered = admin.page.locator(`tr[data-reservation="${reservationId}"]`);
    await registered.getByRole("button", { name: `Details ${seatId}` }).click();
    await expect(admin.page.getByRole("list", { name: "Payments and refunds" })).toContainText(
      "Payment completed: ₩5,000",
    );
    await shot(admin.page, "admin-booking-details");

    // The customer cancels; the refund appears, and the seat is free again for everyone.
    await progress.getByRole("button", { name: "Cancel reservation" }).click();
    await progress.getByRole("button", { name: "Cancel reservation" }).click();
    await expect(progress).toHaveAttribute("data-status", "CANCELLED");
    await expect(progress.locator(".refund")).toHaveText("Refund: ₩5,000 refunded");
    await expectSeat(visitor.page, seatId, "FREE");
    await shot(customer.page, "reservation-refunded");

    // "My reservations" tells the same story.
    await customer.page.getByRole("link", { name: "My reservations" }).click();
    const entry = customer.page.locator(`[data-reservation="${reservationId}"]`);
    await expect(entry).toContainText("Cancelled");
    await entry.getByRole("button", { name: "Payments" }).click();
    await expect(entry.getByRole("list", { name: "Payments and refunds" })).toContainText(
      "Refund completed: ₩5,000",
    );
    await expectAccessible(customer.page);
    await shot(customer.page, "my-reservations");
  });

  test("the admin rejects a booking with a reason; with auto-confirm on, bookings need no admin", async ({
    browser,
  }) => {
    const customer = await newPage(browser);
    const admin = await newPage(browser);
    contexts.push(customer.context, admin.context);
    await signInAsAdmin(admin.page);
    await signUp(customer.page, `reject-${unique()}`);
    await chooseWindow(customer.page, 8, 1);

    await seat(customer.page, "G-03").click();
    await customer.page.getByRole("button", { name: "Reserve", exact: true }).click();
    const progress = customer.page.getByRole("region", { name: "Your reservation" });
    await expect(progress).toHaveAttribute("data-status", "REQUESTED");
    const id = await progress.getAttribute("data-reservation");
    const row = admin.page.locator(`tr[data-reservation="${id}"]`);
    await row.getByRole("button", { name: "Reject G-03" }).click();
    await row.getByLabel("Reason for the customer").fill("Closed for cleaning that morning");
    await row.getByRole("button", { name: "Reject booking" }).click();
    await expect(row).toBeHidden();

    await expect(progress).toHaveAttribute("data-status", "REJECTED");
    await expect(progress).toContainText("The cafe turned this booking down.");
    await expect(progress).toContainText("Closed for cleaning that morning");
    await expectSeat(customer.page, "G-03", "FREE");

    // Auto-confirm: the next booking goes all the way without the admin.
    const autoConfirm = admin.page.locator("#auto-confirm");
    await autoConfirm.click();
    await expect(autoConfirm).toBeChecked();
    await expect(admin.page.locator("#auto-confirm-state")).toHaveText(
      "New bookings are confirmed at once.",
    );
    try {
      await customer.page.getByRole("button", { name: "Book another seat" }).click();
      await seat(customer.page, "G-04").click();
      await customer.page.getByRole("button", { name: "Reserve", exact: true }).click();
      await expect(progress).toHaveAttribute("data-status", "REGISTERED");
      await expect(customer.page.getByTestId("entry-pass")).toBeVisible();
    } finally {
      await autoConfirm.click();
      await expect(autoConfirm).not.toBeChecked();
    }
  });

  test("two customers race for one seat: one gets it, the other is told it is taken", async ({
    browser,
  }) => {
    const seatId = "FB-02";
    const hour = 10;
    const first = await newPage(browser);
    const second = await newPage(browser);
    contexts.push(first.context, second.context);
    await signUp(first.page, `race-${unique()}`);
    await signUp(second.page, `race-${unique()}`);
    for (const { page } of [first, second]) {
      await chooseWindow(page, hour, 3);
      await expectSeat(page, seatId, "FREE");
      await seat(page, seatId).click();
    }

    const reserve = (page: Page) => page.getByRole("button", { name: "Reserve", exact: true });
    await Promise.all([reserve(first.page).click(), reserve(second.page).click()]);

    const won = (page: Page) => page.getByRole("region", { name: "Your reservation" });
    await expect
      .poll(async () => (await won(first.page).count()) + (await won(second.page).count()))
      .toBe(1);
    const loser = (await won(first.page).count()) === 1 ? second.page : first.page;
    await expect(loser.getByRole("alert")).toContainText(
      `${seatId} was just taken for this time. The map is updated`,
    );
    await expect(seat(loser, seatId)).not.toHaveAttribute("data-status", "FREE");
    await expect(seat(loser, seatId)).toHaveAttribute("aria-checked", "false");
    await expect(reserve(loser)).toBeHidden();
    await shot(loser, "seat-taken");
  });

  test("a reservation whose answer was lost is sent again with the same key and books once", async ({
    browser,
  }) => {
    const seatId = "G-02";
    const { context, page } = await newPage(browser);
    contexts.push(context);
    await signUp(page, `retry-${unique()}`);
    await chooseWindow(page, 20, 1);
    await expectSeat(page, seatId, "FREE");
    await seat(page, seatId).click();

    // The first attempt reaches the suite, but its answer is lost on the way back.
    const keys: string[] = [];
    await page.route("**/api/reservations", async (route) => {
      keys.push(route.request().headers()["idempotency-key"] ?? "");
      if (keys.length === 1) {
        const answer = await route.fetch();
        expect(answer.status()).toBe(202);
        await route.abort("connectionreset");
      } else {
        await route.continue();
      }
    });
    await page.getByRole("button", { name: "Reserve", exact: true }).click();
    const progress = page.getByRole("region", { name: "Your reservation" });
    await expect(progress).toHaveAttribute("data-status", /REQUESTED|CONFIRMED/);
    expect(keys).toHaveLength(2);
    expect(keys[1]).toBe(keys[0]);

    await page.getByRole("link", { name: "My reservations" }).click();
    await expect(page.locator("li.reservation")).toHaveCount(1);
    await expect(page.locator("li.reservation")).toContainText(seatId);
  });

  test("problems show next to what caused them", async ({ browser }) => {
    const { context, page } = await newPage(browser);
    contexts.push(context);
    await page.goto("/#/signup");
    await page.locator("#signup-username").fill("alice");
    await page.locator("#signup-name").fill("Another Alice");
    await page.locator("#signup-password").fill("correct-horse-battery");
    await page.getByRole("button", { name: "Sign up" }).click();
    await expect(page.locator("#signup-username-error")).toHaveText("That username is taken.");
    await expect(page.locator("#signup-username")).toHaveAttribute("aria-invalid", "true");
    await expectAccessible(page);

    await page.goto("/#/signin");
    await page.locator("#signin-username").fill(`nobody-${unique()}`);
    await page.locator("#signin-password").fill("wrong-password");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.locator("#signin-password-error")).toHaveText("Wrong username or password.");
    await expect(page.locator("#signin-password")).toHaveAttribute("aria-invalid", "true");
  });

  test("after the live stream drops, the map catches up when it is back", async ({
    browser,
    request,
  }) => {
    const data = process.env.WEB_TEST_DATA_DIR;
    test.skip(!data, "needs the suite's data directory (scripts/test-web sets WEB_TEST_DATA_DIR)");
    const seatId = "A-07";
    const { context, page } = await newPage(browser);
    contexts.push(context);
    await page.goto("/");
    await chooseWindow(page, 18, 2);
    await expectSeat(page, seatId, "FREE");
    await expect(page.locator(".live")).toHaveText("Live");

    // seat-view dies (`up` starts it again): the board stream drops with it. The page may not
    // reconnect until the test says so.
    await page.route("**/api/board/stream", (route) => route.abort());
    const pidFile = readFileSync(join(data ?? "", "pids", "seat-view.pid"), "utf8");
    process.kill(Number(pidFile.split("\n")[0]), "SIGKILL");
    await expect(page.locator(".live")).toHaveText("Reconnecting…");

    // Meanwhile someone reserves the seat, and the board (seat-view, back again) shows it.
    const token = await apiCustomer(request);
    const startsAt = `${DAY}T09:00:00Z`;
    const reserved = await request.post("/api/reservations", {
      headers: { authorization: `Bearer ${token}` },
      data: { seatId, startsAt, hours: 2, paymentToken: "tok_approve" },
    });
    expect(reserved.status()).toBe(202);
    const boardSays = async () => {
      const answer = await request.get(`/api/board?at=${startsAt}`);
      if (!answer.ok()) return `HTTP ${answer.status()}`;
      const board = (await answer.json()) as { seats: { seatId: string; status: string }[] };
      return board.seats.find((s) => s.seatId === seatId)?.status;
    };
    await expect.poll(boardSays, { timeout: 60_000 }).toBe("HELD");
    // The page missed that change: it still shows what it knew.
    await expectSeat(page, seatId, "FREE");

    // Once the stream is back, the page asks for the board again and shows the seat held.
    await page.unroute("**/api/board/stream");
    await expect(page.locator(".live")).toHaveText("Live", { timeout: 60_000 });
    await expectSeat(page, seatId, "HELD");
  });

  test("the Korean interface renders, and the switch changes the language", async ({ browser }) => {
    const { context, page } = await newPage(browser, {
      locale: "ko-KR",
      timezoneId: "Europe/Berlin",
    });
    contexts.push(context);
    await page.goto("/");
    await expect(page.locator("html")).toHaveAttribute("lang", "ko");
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("좌석 선택");
    await expect(page.getByRole("radiogroup", { name: "좌석 배치도" })).toBeVisible();
    await expect(page.locator("#zone-B")).toHaveText("B 구역 · 오픈 데스크 · 시간당 ₩2,500");
    await expect(page.locator(".when-summary")).toContainText("(Asia/Seoul)");
    await expect(seat(page, "A-01")).toHaveAttribute(
      "aria-label",
      /A-01, 오픈 데스크, 시간당 ₩2,000/,
    );
    await seat(page, "A-02").click();
    await expect(page.locator(".choice")).toContainText("₩4,000");
    await expectAccessible(page);
    await shot(page, "korean");

    await page.locator("#language").selectOption("en");
    await expect(page.locator("html")).toHaveAttribute("lang", "en");
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("Pick a seat");
    await expect(page.locator("#zone-B")).toHaveText("Zone B · Open desk · ₩2,500/h");

    // The choice is remembered over the browser's preference.
    await page.locator("#language").selectOption("ko");
    await page.reload();
    await expect(page.getByRole("heading", { level: 1 })).toHaveText("좌석 선택");
  });
});
