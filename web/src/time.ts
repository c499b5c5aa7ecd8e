// Wall-clock time in the cafe's time zone. The API speaks UTC instants; people pick a date and
// an hour on the cafe's clock, whatever zone their own device is set to. No library: Intl knows
// every zone's offsets, and these few conversions are all the app needs.

/** A calendar date on the cafe's clock, `YYYY-MM-DD` (what `<input type="date">` uses). */
export type LocalDate = string;

export interface WallClock {
  date: LocalDate;
  hour: number;
  minute: number;
}

const HOUR_MS = 3_600_000;
const DAY_MS = 24 * HOUR_MS;

const partFormatters = new Map<string, Intl.DateTimeFormat>();

function partsFormatter(timeZone: string): Intl.DateTimeFormat {
  let format = partFormatters.get(timeZone);
  if (!format) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      hourCycle: "h23",
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    });
    partFormatters.set(timeZone, format);
  }
  return format;
}

/** Whether `timeZone` is an IANA zone this browser knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return true;
  } catch {
    return false;
  }
}

function numericParts(instant: Date, timeZone: string): Record<string, number> {
  const parts: Record<string, number> = {};
  for (const part of partsFormatter(timeZone).formatToParts(instant)) {
    if (part.type !== "literal") parts[part.type] = Number(part.value);
  }
  return parts;
}

const pad = (n: number, width = 2) => String(n).padStart(width, "0");

/** The cafe's wall clock at `instant`. */
export function wallClock(instant: Date, timeZone: string): WallClock {
  const p = numericParts(instant, timeZone);
  return {
    date: `${pad(p.year ?? 0, 4)}-${pad(p.month ?? 1)}-${pad(p.day ?? 1)}`,
    hour: p.hour ?? 0,
    minute: p.minute ?? 0,
  };
}

/** How far the zone's clock is ahead of UTC at `instant`, in milliseconds. */
function offsetAt(instant: Date, timeZone: string): number {
  const p = numericParts(instant, timeZone);
  const asUtc = Date.UTC(
    p.year ?? 1970,
    (p.month ?? 1) - 1,
    p.day ?? 1,
    p.hour ?? 0,
    p.minute ?? 0,
    p.second ?? 0,
  );
  const whole = instant.getTime() - (instant.getTime() % 1000);
  return asUtc - whole;
}

function parseDate(date: LocalDate): [number, number, number] {
  const match = /^(\d{4})-(\d{2})-(\d{2})$/.exec(date);
  if (!match) throw new RangeError(`not a date: ${date}`);
  return [Number(match[1]), Number(match[2]), Number(match[3])];
}

/**
 * The instant the cafe's clock shows `hour`:00 on `date`. Across a daylight-saving change the
 * offset is looked up again at the result, so the answer is the hour as the clock shows it
 * (a skipped hour maps to the instant just after the gap).
 */
export function instantAt(date: LocalDate, hour: number, timeZone: string): Date {
  const [year, month, day] = parseDate(date);
  const naive = Date.UTC(year, month - 1, day, hour);
  const first = naive - offsetAt(new Date(naive), timeZone);
  const second = naive - offsetAt(new Date(first), timeZone);
  return new Date(second);
}

/** `date` moved by `days` calendar days. */
export function addDays(date: LocalDate, days: number): LocalDate {
  const [year, month, day] = parseDate(date);
  const moved = new Date(Date.UTC(year, month - 1, day) + days * DAY_MS);
  return `${pad(moved.getUTCFullYear(), 4)}-${pad(moved.getUTCMonth() + 1)}-${pad(moved.getUTCDate())}`;
}

/** The next whole hour on the cafe's clock after `now`, as a date and an hour. */
export function nextWholeHour(now: Date, timeZone: string): { date: LocalDate; hour: number } {
  const next = wallClock(new Date(now.getTime() + HOUR_MS), timeZone);
  return { date: next.date, hour: next.hour };
}

/** `instant` plus `hours` hours. */
export function plusHours(instant: Date, hours: number): Date {
  return new Date(instant.getTime() + hours * HOUR_MS);
}

/** An instant as the API writes it: RFC 3339 in UTC, whole seconds. */
export function toApiInstant(instant: Date): string {
  return `${instant.toISOString().slice(0, 19)}Z`;
}
