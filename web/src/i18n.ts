// The language in use and the formatters that follow it: prices in won as the locale writes
// them, instants on the cafe's clock.

import { CAFE_TIME_ZONE } from "./config";
import { type Locale, MESSAGES, type Messages, preferredLocale } from "./messages";
import type { Money } from "./model";
import { store, useStore } from "./store";

const KEY = "studycafe.locale";

function initialLocale(): Locale {
  const saved = localStorage.getItem(KEY);
  if (saved === "ko" || saved === "en") return saved;
  return preferredLocale(navigator.languages?.length ? navigator.languages : [navigator.language]);
}

export const locale = store<Locale>(initialLocale());

function apply(value: Locale): void {
  document.documentElement.lang = value;
  document.title = MESSAGES[value].appName;
}
apply(locale.get());
locale.subscribe((value) => {
  localStorage.setItem(KEY, value);
  apply(value);
});

const tags: Record<Locale, string> = { en: "en-GB", ko: "ko-KR" };

export interface Formatters {
  locale: Locale;
  t: Messages;
  money(money: Money | null | undefined): string;
  /** A whole price in won. */
  won(amount: number): string;
  /** Date and time on the cafe's clock. */
  dateTime(instant: string | Date): string;
  /** Time of day on the cafe's clock. */
  time(instant: string | Date): string;
  /** A window: its date, start and end. */
  window(startsAt: string | Date, endsAt: string | Date): string;
  hour(hour: number): string;
}

function formatters(value: Locale, timeZone: string): Formatters {
  const tag = tags[value];
  const money = new Intl.NumberFormat(tag, { style: "currency", currency: "KRW" });
  const dateTime = new Intl.DateTimeFormat(tag, {
    timeZone,
    dateStyle: "medium",
    timeStyle: "short",
    hourCycle: "h23",
  });
  const date = new Intl.DateTimeFormat(tag, {
    timeZone,
    weekday: "short",
    month: "short",
    day: "numeric",
  });
  const time = new Intl.DateTimeFormat(tag, {
    timeZone,
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  });
  const asDate = (instant: string | Date) =>
    typeof instant === "string" ? new Date(instant) : instant;
  return {
    locale: value,
    t: MESSAGES[value],
    money: (m) => (m ? money.format(m.amount) : "—"),
    won: (amount) => money.format(amount),
    dateTime: (instant) => dateTime.format(asDate(instant)),
    time: (instant) => time.format(asDate(instant)),
    window: (startsAt, endsAt) =>
      `${date.format(asDate(startsAt))} ${time.format(asDate(startsAt))}–${time.format(asDate(endsAt))}`,
    hour: (hour) => `${String(hour).padStart(2, "0")}:00`,
  };
}

const cache = new Map<Locale, Formatters>();

export function formattersFor(value: Locale): Formatters {
  let f = cache.get(value);
  if (!f) {
    f = formatters(value, CAFE_TIME_ZONE);
    cache.set(value, f);
  }
  return f;
}

export function useI18n(): Formatters {
  return formattersFor(useStore(locale));
}
