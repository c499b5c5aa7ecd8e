// The app's pure logic, without a browser or a suite: the cafe's clock, the board over a
// window, the language choice, and how API failures read.

import { expect, test } from "@playwright/test";
import { ApiError, problemSlug } from "../src/api";
import { combineBoards, touchesWindow, windowInstants } from "../src/board";
import { MESSAGES, preferredLocale } from "../src/messages";
import type { Board, SeatStatus } from "../src/model";
import { humanError } from "../src/problems";
import { addDays, instantAt, nextWholeHour, toApiInstant, wallClock } from "../src/time";

test.describe("the cafe's clock", () => {
  test("an hour on the cafe's clock is the right UTC instant, whatever the device's zone", () => {
    // Seoul is UTC+9 all year.
    expect(toApiInstant(instantAt("2030-01-15", 14, "Asia/Seoul"))).toBe("2030-01-15T05:00:00Z");
    expect(toApiInstant(instantAt("2030-01-15", 3, "Asia/Seoul"))).toBe("2030-01-14T18:00:00Z");
    // New York moves its clocks: winter is UTC-5, summer UTC-4.
    expect(toApiInstant(instantAt("2030-01-15", 9, "America/New_York"))).toBe(
      "2030-01-15T14:00:00Z",
    );
    expect(toApiInstant(instantAt("2030-07-15", 9, "America/New_York"))).toBe(
      "2030-07-15T13:00:00Z",
    );
  });

  test("the wall clock reads an instant back", () => {
    expect(wallClock(new Date("2030-01-14T18:30:00Z"), "Asia/Seoul")).toEqual({
      date: "2030-01-15",
      hour: 3,
      minute: 30,
    });
  });

  test("the next whole hour rolls over midnight and month ends", () => {
    expect(nextWholeHour(new Date("2030-01-31T13:20:00Z"), "Asia/Seoul")).toEqual({
      date: "2030-01-31",
      hour: 23,
    });
    expect(nextWholeHour(new Date("2030-01-31T15:20:00Z"), "Asia/Seoul")).toEqual({
      date: "2030-02-01",
      hour: 1,
    });
    expect(addDays("2030-02-27", 2)).toBe("2030-03-01");
    expect(addDays("2032-02-28", 1)).toBe("2032-02-29");
  });
});

function board(statuses: Record<string, SeatStatus>, until?: string): Board {
  return {
    at: "2030-01-15T05:00:00Z",
    seats: Object.entries(statuses).map(([seatId, status]) => ({
      seatId,
      zone: "A",
      kind: "open-desk",
      hourlyPrice: { amount: 2000, currency: "KRW" },
      status,
      ...(until && status !== "FREE" ? { until } : {}),
    })),
  };
}

test.describe("the board over a window", () => {
  test("every hour of the window and its last second are asked about", () => {
    const start = new Date("2030-01-15T05:00:00Z");
    expect(windowInstants(start, 3).map(toApiInstant)).toEqual([
      "2030-01-15T05:00:00Z",
      "2030-01-15T06:00:00Z",
      "2030-01-15T07:00:00Z",
      "2030-01-15T07:59:59Z",
    ]);
  });

  test("a seat shows its worst status across the window", () => {
    const combined = combineBoards([
      board({ "A-01": "FREE", "A-02": "FREE", "A-03": "HELD" }),
      board({ "A-01": "HELD", "A-02": "FREE", "A-03": "OCCUPIED" }, "2030-01-15T08:00:00Z"),
      board({ "A-01": "FREE", "A-02": "FREE", "A-03": "HELD" }),
    ]);
    expect(combined.get("A-01")?.status).toBe("HELD");
    expect(combined.get("A-02")?.status).toBe("FREE");
    expect(combined.get("A-03")).toEqual({ status: "OCCUPIED", until: "2030-01-15T08:00:00Z" });
  });

  test("only changes overlapping the window concern it", () => {
    const start = new Date("2030-01-15T05:00:00Z");
    const end = new Date("2030-01-15T07:00:00Z");
    const change = (startsAt: string, endsAt: string) => ({
      seatId: "A-01",
      reservationId: "r",
      reservationStatus: "REQUESTED" as const,
      startsAt,
      endsAt,
      occurredAt: startsAt,
    });
    expect(touchesWindow(change("2030-01-15T06:00:00Z", "2030-01-15T08:00:00Z"), start, end)).toBe(
      true,
    );
    expect(touchesWindow(change("2030-01-15T07:00:00Z", "2030-01-15T08:00:00Z"), start, end)).toBe(
      false,
    );
    expect(touchesWindow(change("2030-01-15T03:00:00Z", "2030-01-15T05:00:00Z"), start, end)).toBe(
      false,
    );
    // A seat switched off or on concerns every window.
    expect(touchesWindow({ seatId: "A-01", enabled: false }, start, end)).toBe(true);
  });
});

test.describe("languages", () => {
  test("the browser's first language the app speaks wins, else English", () => {
    expect(preferredLocale(["ko-KR", "en-US"])).toBe("ko");
    expect(preferredLocale(["fr-FR", "en-US", "ko"])).toBe("en");
    expect(preferredLocale(["de", "KO"])).toBe("ko");
    expect(preferredLocale(["fr"])).toBe("en");
  });

  test("problems read as sentences in the user's language", () => {
    const taken = new ApiError({ status: 409, kind: "seat-taken", detail: "seat A-01 is taken" });
    expect(humanError(MESSAGES.en, "en", taken)).toBe("That seat was just taken for this time.");
    expect(humanError(MESSAGES.ko, "ko", taken)).toContain("예약했습니다");

    const invalid = new ApiError({
      status: 422,
      kind: "invalid-field",
      detail: "password must be 8 to 128 characters long",
      field: "password",
    });
    expect(humanError(MESSAGES.en, "en", invalid)).toContain("password must be 8 to 128");
    expect(humanError(MESSAGES.ko, "ko", invalid)).toBe("입력값을 확인하세요.");

    const wrong = new ApiError({ status: 400, kind: "oauth-invalid_grant", detail: "no" });
    expect(humanError(MESSAGES.en, "en", wrong)).toBe("Wrong username or password.");
    const locked = new ApiError({
      status: 429,
      kind: "oauth-invalid_grant",
      detail: "locked",
      retryAfter: 30,
    });
    expect(humanError(MESSAGES.en, "en", locked)).toContain("30 seconds");

    // A problem type the app does not know still says something, by its status.
    const odd = new ApiError({ status: 503, kind: "brand-new", detail: "x" });
    expect(humanError(MESSAGES.en, "en", odd)).toBe(MESSAGES.en.errors["upstream-unavailable"]);
    expect(problemSlug("/problems/seat-taken")).toBe("seat-taken");
  });
});
