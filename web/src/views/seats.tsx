// The customer's screen: pick a window, pick a seat on the live map, reserve, follow it.

import { useEffect, useRef, useState } from "preact/hooks";
import { ApiError, api, isAbort, newIdempotencyKey, sleep } from "../api";
import { combineBoards, touchesWindow, type WindowStatus, windowInstants } from "../board";
import { CAFE_TIME_ZONE } from "../config";
import { useLive, useRefresh } from "../hooks";
import { useI18n } from "../i18n";
import type { Seat } from "../model";
import { errorField, humanError } from "../problems";
import { href } from "../route";
import { isAdmin, isCustomer, session } from "../session";
import { store, useStore } from "../store";
import {
  addDays,
  instantAt,
  type LocalDate,
  nextWholeHour,
  plusHours,
  toApiInstant,
  wallClock,
} from "../time";
import { Progress } from "./progress";
import { Legend, SeatMap, seatStatus } from "./seat-map";

const MAX_HOURS = 12;
const HORIZON_DAYS = 30;
const CURRENT_KEY = "studycafe.current-reservation";

/** The reservation the seats page follows, kept across reloads of this tab. */
const current = store<string | null>(sessionStorage.getItem(CURRENT_KEY));
current.subscribe((id) => {
  if (id) sessionStorage.setItem(CURRENT_KEY, id);
  else sessionStorage.removeItem(CURRENT_KEY);
});

/** The window being looked at, kept while the user moves between screens. */
const initial = nextWholeHour(new Date(), CAFE_TIME_ZONE);
const chosenWindow = store({ date: initial.date, hour: initial.hour, hours: 2 });

/** Whether a failed request may have been carried out all the same: no answer, or the gateway
 * could not tell (502, 503, 504). */
function unsure(e: unknown): boolean {
  return e instanceof ApiError && [0, 502, 503, 504].includes(e.status);
}

/** Sends a request again, with the same idempotency key, while it fails unsure; a few times. */
async function sendAgainWhenUnsure<T>(send: () => Promise<T>): Promise<T> {
  for (const pause of [500, 1000, 2000]) {
    try {
      return await send();
    } catch (e) {
      if (!unsure(e)) throw e;
      await sleep(pause);
    }
  }
  return send();
}

const CARDS = [
  ["tok_approve", "cardApprove"],
  ["tok_decline", "cardDecline"],
  ["tok_slow_3000", "cardSlow"],
  ["tok_error", "cardError"],
] as const;

export function SeatsPage() {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const user = useStore(session);
  const following = useStore(current);
  const { date, hour, hours } = useStore(chosenWindow);

  const [seats, setSeats] = useState<Seat[] | null>(null);
  const [catalogueError, setCatalogueError] = useState<unknown>(null);
  const [statuses, setStatuses] = useState<Map<string, WindowStatus> | null>(null);
  const [boardError, setBoardError] = useState<unknown>(null);
  const [selected, setSelected] = useState<string | null>(null);
  /** Seats the seat service said are taken before the board showed it. */
  const [taken, setTaken] = useState<ReadonlySet<string>>(new Set());
  const [card, setCard] = useState<string>("tok_approve");
  const [submitting, setSubmitting] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const intent = useRef<{ fingerprint: string; key: string } | null>(null);

  const start = instantAt(date, hour, CAFE_TIME_ZONE);
  const end = plusHours(start, hours);
  const startKey = start.getTime();

  const loadCatalogue = async (signal?: AbortSignal) => {
    setCatalogueError(null);
    try {
      setSeats(await api.seats(signal));
    } catch (e) {
      if (!isAbort(e)) setCatalogueError(e);
    }
  };

  useEffect(() => {
    const controller = new AbortController();
    void loadCatalogue(controller.signal);
    return () => controller.abort();
  }, []);

  const refreshBoard = useRefresh(async (signal) => {
    const token = session.get()?.token;
    try {
      const boards = await Promise.all(
        windowInstants(start, hours).map((at) => api.board(toApiInstant(at), token, signal)),
      );
      setStatuses(combineBoards(boards));
      setBoardError(null);
    } catch (e) {
      if (isAbort(e)) throw e;
      setBoardError(e);
    }
  });

  // A new window: forget what was known about the old one.
  useEffect(() => {
    setStatuses(null);
    setTaken(new Set());
    setError(null);
    refreshBoard(true);
  }, [startKey, hours]);

  useLive((message) => {
    if (message.kind === "resync") {
      refreshBoard();
      return;
    }
    const change = message.change;
    if (!touchesWindow(change, start, end)) return;
    // The board now knows about this seat: it is the truth again.
    if (taken.has(change.seatId)) {
      const next = new Set(taken);
      next.delete(change.seatId);
      setTaken(next);
    }
    refreshBoard();
  });

  const seat = seats?.find((s) => s.id === selected) ?? null;
  const status = seat ? seatStatus(seat, statuses, taken) : null;

  const setWindow = (next: Partial<{ date: LocalDate; hour: number; hours: number }>) => {
    chosenWindow.set({ date, hour, hours, ...next });
  };

  const reserve = async () => {
    const s = session.get();
    if (!s || !seat) return;
    const body = {
      seatId: seat.id,
      startsAt: toApiInstant(start),
      hours,
      paymentToken: card,
    };
    // One key per thing the customer means to book: a double click or a retry after a
    // lost answer books it once.
    const fingerprint = JSON.stringify(body);
    if (intent.current?.fingerprint !== fingerprint) {
      intent.current = { fingerprint, key: newIdempotencyKey() };
    }
    const key = intent.current.key;
    setSubmitting(true);
    setError(null);
    try {
      const answer = await sendAgainWhenUnsure(() => api.reserve(s.token, key, body));
      intent.current = null;
      setSelected(null);
      current.set(answer.reservationId);
      refreshBoard();
    } catch (e) {
      setError(e);
      if (e instanceof ApiError && e.kind === "seat-taken") {
        // The map shows the seat taken at once (the board catches up a moment later), and
        // the choice is let go: the message says to pick another.
        setTaken(new Set([...taken, seat.id]));
        setSelected(null);
        refreshBoard(true);
      }
    } finally {
      setSubmitting(false);
    }
  };

  const today = wallClock(new Date(), CAFE_TIME_ZONE);
  // After an answer that never came the seat may show held by this very booking: sending the
  // same one again (same key) stays possible.
  const mayRetry = unsure(error) && intent.current !== null;
  const field = errorField(error);
  const errorText = error ? humanError(t, locale, error) : "";
  const takenSeat =
    error instanceof ApiError && error.kind === "seat-taken"
      ? (error.seatId ?? seat?.id ?? "")
      : null;

  return (
    <div class="seats-page">
      <h1>{t.seatsTitle}</h1>
      <form class="when" onSubmit={(e) => e.preventDefault()}>
        <div class="field">
          <label for="date">{t.date}</label>
          <input
            id="date"
            type="date"
            value={date}
            min={today.date}
            max={addDays(today.date, HORIZON_DAYS)}
            required
            onChange={(e) => {
              const value = e.currentTarget.value;
              if (/^\d{4}-\d{2}-\d{2}$/.test(value)) setWindow({ date: value });
            }}
          />
        </div>
        <div class="field">
          <label for="start-hour">{t.startHour}</label>
          <select
            id="start-hour"
            value={String(hour)}
            aria-invalid={field === "startsAt"}
            aria-describedby={field === "startsAt" ? "reserve-error" : undefined}
            onChange={(e) => setWindow({ hour: Number(e.currentTarget.value) })}
          >
            {Array.from({ length: 24 }, (_, h) => (
              <option key={h} value={String(h)} disabled={date === today.date && h <= today.hour}>
                {i18n.hour(h)}
              </option>
            ))}
          </select>
        </div>
        <div class="field">
          <label for="duration">{t.duration}</label>
          <select
            id="duration"
            value={String(hours)}
            aria-invalid={field === "hours"}
            aria-describedby={field === "hours" ? "reserve-error" : undefined}
            onChange={(e) => setWindow({ hours: Number(e.currentTarget.value) })}
          >
            {Array.from({ length: MAX_HOURS }, (_, i) => i + 1).map((n) => (
              <option key={n} value={String(n)}>
                {t.hoursOption(n)}
              </option>
            ))}
          </select>
        </div>
        <p class="hint when-summary">
          {i18n.window(start, end)} · {t.timesIn(CAFE_TIME_ZONE)}
        </p>
      </form>

      <div class="layout">
        <section class="map-section" aria-labelledby="map-heading">
          <h2 id="map-heading">{t.seatMap}</h2>
          <Legend />
          {catalogueError ? (
            <div class="notice error" role="alert">
              <p>{t.mapUnavailable}</p>
              <button type="button" onClick={() => void loadCatalogue()}>
                {t.retry}
              </button>
            </div>
          ) : !seats ? (
            <p class="hint">{t.loadingMap}</p>
          ) : (
            <SeatMap
              seats={seats}
              statuses={statuses}
              taken={taken}
              selected={selected}
              labelledBy="map-heading"
              onSelect={(id) => {
                setSelected(id);
                setError(null);
                // On a phone the choice sits below the map: bring it into view.
                if (matchMedia("(max-width: 56rem)").matches) {
                  requestAnimationFrame(() =>
                    document.getElementById("choice-heading")?.scrollIntoView({ block: "nearest" }),
                  );
                }
              }}
            />
          )}
          {boardError ? (
            <p class="notice error" role="alert">
              {humanError(t, locale, boardError)}{" "}
              <button type="button" class="link" onClick={() => refreshBoard(true)}>
                {t.retry}
              </button>
            </p>
          ) : null}
        </section>

        <aside class="panel">
          {following ? (
            <Progress id={following} onDone={() => current.set(null)} />
          ) : (
            <section aria-labelledby="choice-heading" class="card choice">
              <h2 id="choice-heading">{t.selectedSeat}</h2>
              {!seat ? (
                <p class="hint">{t.noSeatSelected}</p>
              ) : (
                <>
                  <p class="chosen-seat">
                    <strong>{seat.id}</strong> · {t.seatKind[seat.kind] ?? seat.kind}
                  </p>
                  <p>{i18n.window(start, end)}</p>
                  <dl class="price">
                    <dt>{t.price}</dt>
                    <dd>
                      <strong data-testid="price">
                        {i18n.won(seat.hourlyPrice.amount * hours)}
                      </strong>{" "}
                      <span class="hint">({t.perHour(i18n.won(seat.hourlyPrice.amount))})</span>
                    </dd>
                  </dl>
                  {status && status !== "FREE" && status !== "UNKNOWN" && takenSeat === null ? (
                    <p class="notice">{t.seatIsNotFree(seat.id, t.seatStatus[status])}</p>
                  ) : null}
                  {isCustomer(user) ? (
                    <div class="field">
                      <label for="card">{t.paymentMethod}</label>
                      <select
                        id="card"
                        value={card}
                        onChange={(e) => setCard(e.currentTarget.value)}
                      >
                        {CARDS.map(([token, label]) => (
                          <option key={token} value={token}>
                            {t[label]}
                          </option>
                        ))}
                      </select>
                      <p class="hint">{t.cardNote}</p>
                    </div>
                  ) : null}
                </>
              )}
              {takenSeat !== null || (seat && errorText) ? (
                <p id="reserve-error" class="notice error" role="alert">
                  {takenSeat !== null ? t.seatNowTaken(takenSeat) : errorText}
                </p>
              ) : null}
              {!user ? (
                <p>
                  <a href={href("signin")}>{t.signInToReserve}</a>
                </p>
              ) : !isCustomer(user) ? (
                <p class="hint">{isAdmin(user) ? t.adminCannotReserve : t.signInToReserve}</p>
              ) : seat ? (
                <button
                  type="button"
                  class="primary"
                  disabled={submitting || (status !== "FREE" && !mayRetry)}
                  onClick={() => void reserve()}
                >
                  {submitting ? t.reserving : t.reserve}
                </button>
              ) : null}
            </section>
          )}
        </aside>
      </div>
    </div>
  );
}
