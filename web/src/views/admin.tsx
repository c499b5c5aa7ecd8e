// The cafe admin's console: bookings arriving live (confirm, reject with a reason), the
// auto-confirm policy, occupancy per zone now, bookings by status, and one booking's payments
// and refunds.
//
// Registration announces nothing on the board stream, but every booking starts as a seat
// reservation that does: a REQUESTED change says a booking is on its way, and the pending list
// is asked for again until it is there.

import { useEffect, useState } from "preact/hooks";
import { api, isAbort, until } from "../api";
import { CAFE_TIME_ZONE } from "../config";
import { useAction, useLive, useRefresh } from "../hooks";
import { useI18n } from "../i18n";
import {
  BOOKING_STATUSES,
  type Board,
  type Booking,
  type BookingStatus,
  type Payments,
  type Policy,
} from "../model";
import { humanError } from "../problems";
import { href } from "../route";
import { isAdmin, session } from "../session";
import { useStore } from "../store";
import { instantAt, toApiInstant, wallClock } from "../time";
import { PaymentList } from "./mine";
import { ErrorNotice } from "./parts";

export function AdminPage() {
  const { t } = useI18n();
  const user = useStore(session);
  if (!isAdmin(user) || !user) {
    return (
      <div>
        <h1>{t.adminTitle}</h1>
        <p>{t.adminOnly}</p>
        {!user ? (
          <p>
            <a href={href("signin")}>{t.signIn}</a>
          </p>
        ) : null}
      </div>
    );
  }
  return <Console token={user.token} />;
}

type Lists = Record<BookingStatus, Booking[]>;

function group(pending: Booking[], all: Booking[]): Lists {
  const lists: Lists = {
    PENDING: pending,
    CONFIRMED: [],
    REGISTERED: [],
    REJECTED: [],
    CANCELLED: [],
  };
  for (const booking of all) {
    if (booking.status !== "PENDING") lists[booking.status].push(booking);
  }
  return lists;
}

function Console(props: { token: string }) {
  const { t } = useI18n();
  const { token } = props;
  const [lists, setLists] = useState<Lists | null>(null);
  const [tab, setTab] = useState<BookingStatus>("PENDING");
  const [error, setError] = useState<unknown>(null);
  const [details, setDetails] = useState<Booking | null>(null);

  const load = async (signal: AbortSignal) => {
    // Pending ones on their own, so none is ever pushed out by the newest of the others.
    const [pending, all] = await Promise.all([
      api.bookings(token, "PENDING", signal),
      api.bookings(token, undefined, signal),
    ]);
    return group(pending.bookings, all.bookings);
  };

  const refresh = useRefresh(async (signal) => {
    try {
      setLists(await load(signal));
      setError(null);
    } catch (e) {
      if (isAbort(e)) throw e;
      setError(e);
    }
  }, 200);

  useEffect(() => refresh(true), [token]);

  /** Reservations announced but not yet booked by registration. */
  const [expected, setExpected] = useState<string[]>([]);
  useEffect(() => {
    if (expected.length === 0) return;
    const controller = new AbortController();
    const known = (l: Lists) =>
      expected.every((id) =>
        BOOKING_STATUSES.some((s) => l[s].some((b) => b.reservationId === id)),
      );
    until(() => load(controller.signal), known, controller.signal)
      .then((l) => {
        setLists(l);
        setExpected([]);
      })
      .catch((e: unknown) => {
        if (!isAbort(e)) setError(e);
      });
    return () => controller.abort();
  }, [expected.join(",")]);

  useLive((message) => {
    if (message.kind === "change" && "reservationId" in message.change) {
      const id = message.change.reservationId;
      if (message.change.reservationStatus === "REQUESTED" && !expected.includes(id)) {
        setExpected([...expected, id]);
        return;
      }
    }
    refresh();
  });

  return (
    <div class="admin-page">
      <h1>{t.adminTitle}</h1>
      <ErrorNotice error={error} />
      <div class="admin-top">
        <PolicySwitch token={token} />
        <Occupancy token={token} />
      </div>
      <section aria-labelledby="bookings-heading" class="card">
        <h2 id="bookings-heading">{t.bookingsTitle}</h2>
        <div role="tablist" class="tabs" aria-labelledby="bookings-heading">
          {BOOKING_STATUSES.map((status) => (
            <button
              type="button"
              role="tab"
              key={status}
              id={`tab-${status}`}
              aria-selected={tab === status}
              aria-controls="bookings-panel"
              tabIndex={tab === status ? 0 : -1}
              onClick={() => setTab(status)}
              onKeyDown={(e) => {
                const i = BOOKING_STATUSES.indexOf(status);
                const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
                if (!step) return;
                e.preventDefault();
                const next =
                  BOOKING_STATUSES[(i + step + BOOKING_STATUSES.length) % BOOKING_STATUSES.length];
                if (next) {
                  setTab(next);
                  document.getElementById(`tab-${next}`)?.focus();
                }
              }}
            >
              {t.bookingStatus[status]}
              <span class="count">{lists ? lists[status].length : "…"}</span>
            </button>
          ))}
        </div>
        <div id="bookings-panel" role="tabpanel" aria-labelledby={`tab-${tab}`}>
          {!lists ? (
            <p class="hint">{t.working}</p>
          ) : lists[tab].length === 0 ? (
            <p class="hint">{t.noBookings}</p>
          ) : (
            <BookingTable
              bookings={lists[tab]}
              token={token}
              onDecided={() => refresh(true)}
              onDetails={setDetails}
            />
          )}
        </div>
      </section>
      {details ? (
        <BookingDetails booking={details} token={token} onClose={() => setDetails(null)} />
      ) : null}
    </div>
  );
}

function BookingTable(props: {
  bookings: Booking[];
  token: string;
  onDecided(): void;
  onDetails(booking: Booking): void;
}) {
  const { t } = useI18n();
  return (
    <div class="table-scroll">
      <table class="bookings">
        <thead>
          <tr>
            <th scope="col">{t.seat}</th>
            <th scope="col">{t.when}</th>
            <th scope="col">{t.price}</th>
            <th scope="col">{t.customer}</th>
            <th scope="col">{t.status}</th>
            <th scope="col">{t.actions}</th>
          </tr>
        </thead>
        <tbody>
          {props.bookings.map((booking) => (
            <BookingRow
              key={booking.reservationId}
              booking={booking}
              token={props.token}
              onDecided={props.onDecided}
              onDetails={props.onDetails}
            />
          ))}
        </tbody>
      </table>
    </div>
  );
}

function BookingRow(props: {
  booking: Booking;
  token: string;
  onDecided(): void;
  onDetails(booking: Booking): void;
}) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const { booking, token } = props;
  const [rejecting, setRejecting] = useState(false);
  const [reason, setReason] = useState("");
  const reasonId = `reason-${booking.reservationId}`;
  const decide = useAction(async (action: () => Promise<unknown>) => {
    await action();
    setRejecting(false);
    props.onDecided();
  });
  const { busy, error } = decide;

  return (
    <tr data-reservation={booking.reservationId}>
      <th scope="row">{booking.seatId}</th>
      <td>{i18n.window(booking.startsAt, booking.endsAt)}</td>
      <td>{i18n.money(booking.price)}</td>
      <td>
        <code title={booking.customerId}>{booking.customerId.slice(0, 8)}</code>
      </td>
      <td>
        <span class={`badge booking-${booking.status}`}>{t.bookingStatus[booking.status]}</span>
      </td>
      <td>
        <div class="row-actions">
          {booking.status === "PENDING" && !rejecting ? (
            <>
              <button
                type="button"
                class="primary"
                disabled={busy}
                aria-label={`${t.confirm} ${booking.seatId}`}
                onClick={() => void decide.run(() => api.confirm(token, booking.reservationId))}
              >
                {t.confirm}
              </button>
              <button
                type="button"
                disabled={busy}
                aria-label={`${t.reject} ${booking.seatId}`}
                onClick={() => setRejecting(true)}
              >
                {t.reject}
              </button>
            </>
          ) : null}
          {rejecting ? (
            <form
              class="reject-form"
              onSubmit={(e) => {
                e.preventDefault();
                void decide.run(() => api.reject(token, booking.reservationId, reason));
              }}
            >
              <label for={reasonId}>{t.rejectReason}</label>
              <input
                id={reasonId}
                value={reason}
                required
                maxLength={500}
                aria-invalid={!!error}
                onInput={(e) => setReason(e.currentTarget.value)}
              />
              <button type="submit" class="danger" disabled={busy}>
                {t.sendRejection}
              </button>
              <button type="button" onClick={() => setRejecting(false)}>
                {t.back}
              </button>
            </form>
          ) : null}
          <button
            type="button"
            class="link"
            aria-label={`${t.details} ${booking.seatId}`}
            onClick={() => props.onDetails(booking)}
          >
            {t.details}
          </button>
        </div>
        {error ? (
          <p class="field-error" role="alert">
            {humanError(t, locale, error)}
          </p>
        ) : null}
      </td>
    </tr>
  );
}

function BookingDetails(props: { booking: Booking; token: string; onClose(): void }) {
  const i18n = useI18n();
  const { t, locale } = i18n;
  const { booking, token } = props;
  const [payments, setPayments] = useState<Payments | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const controller = new AbortController();
    setPayments(null);
    api
      .payments(token, booking.reservationId, controller.signal)
      .then(setPayments)
      .catch((e: unknown) => {
        if (!isAbort(e)) setError(e);
      });
    return () => controller.abort();
  }, [booking.reservationId, token]);

  return (
    <section class="card details" aria-labelledby="details-heading">
      <h2 id="details-heading">{t.bookingDetails(booking.seatId)}</h2>
      <dl class="facts">
        <dt>{t.reservationId}</dt>
        <dd>
          <code>{booking.reservationId}</code>
        </dd>
        <dt>{t.when}</dt>
        <dd>{i18n.window(booking.startsAt, booking.endsAt)}</dd>
        <dt>{t.status}</dt>
        <dd>{t.bookingStatus[booking.status]}</dd>
        {booking.decidedBy ? (
          <>
            <dt>{t.decidedBy}</dt>
            <dd>{booking.decidedBy}</dd>
          </>
        ) : null}
        {booking.reason ? (
          <>
            <dt>{t.reasonLabel}</dt>
            <dd>{booking.reason}</dd>
          </>
        ) : null}
        {booking.entryPassCode ? (
          <>
            <dt>{t.entryPass}</dt>
            <dd>
              <code>{booking.entryPassCode}</code>
            </dd>
          </>
        ) : null}
      </dl>
      <h3>{t.payments}</h3>
      {error ? (
        <p class="notice error" role="alert">
          {humanError(t, locale, error)}
        </p>
      ) : (
        <PaymentList payments={payments} />
      )}
      <button type="button" onClick={props.onClose}>
        {t.closeDetails}
      </button>
    </section>
  );
}

function PolicySwitch(props: { token: string }) {
  const { t } = useI18n();
  const [policy, setPolicy] = useState<Policy | null>(null);
  const [error, setError] = useState<unknown>(null);

  useEffect(() => {
    const controller = new AbortController();
    api
      .policy(props.token, controller.signal)
      .then(setPolicy)
      .catch((e: unknown) => {
        if (!isAbort(e)) setError(e);
      });
    return () => controller.abort();
  }, [props.token]);

  const toggle = useAction(async (autoConfirm: boolean) =>
    setPolicy(await api.setPolicy(props.token, autoConfirm)),
  );

  return (
    <section class="card policy" aria-labelledby="policy-heading">
      <h2 id="policy-heading" class="visually-hidden">
        {t.autoConfirm}
      </h2>
      <label class="switch">
        <input
          type="checkbox"
          role="switch"
          id="auto-confirm"
          checked={policy?.autoConfirm ?? false}
          aria-checked={policy?.autoConfirm ?? false}
          disabled={!policy || toggle.busy}
          aria-describedby="auto-confirm-state"
          onChange={(e) => void toggle.run(e.currentTarget.checked)}
        />
        <span>{t.autoConfirm}</span>
      </label>
      <p id="auto-confirm-state" class="hint">
        {policy ? (policy.autoConfirm ? t.autoConfirmOn : t.autoConfirmOff) : t.working}
      </p>
      <ErrorNotice error={toggle.error ?? error} />
    </section>
  );
}

interface ZoneCount {
  zone: string;
  kind: string;
  total: number;
  occupied: number;
  held: number;
  disabled: number;
}

function countZones(board: Board): ZoneCount[] {
  const zones: ZoneCount[] = [];
  for (const seat of board.seats) {
    let zone = zones.find((z) => z.zone === seat.zone);
    if (!zone) {
      zone = { zone: seat.zone, kind: seat.kind, total: 0, occupied: 0, held: 0, disabled: 0 };
      zones.push(zone);
    }
    zone.total++;
    if (seat.status === "OCCUPIED") zone.occupied++;
    else if (seat.status === "HELD") zone.held++;
    else if (seat.status === "DISABLED") zone.disabled++;
  }
  return zones;
}

/** Today's occupancy per zone: the board now (following the live board and the clock), or
 * at another hour of today on the cafe's clock. */
function Occupancy(props: { token: string }) {
  const { t, locale, ...i18n } = useI18n();
  const [zones, setZones] = useState<ZoneCount[] | null>(null);
  const [at, setAt] = useState<string | null>(null);
  const [hour, setHour] = useState<number | null>(null);
  const [error, setError] = useState<unknown>(null);
  const today = wallClock(new Date(), CAFE_TIME_ZONE).date;

  const refresh = useRefresh(async (signal) => {
    try {
      const instant = hour === null ? new Date() : instantAt(today, hour, CAFE_TIME_ZONE);
      const board = await api.board(toApiInstant(instant), props.token, signal);
      setZones(countZones(board));
      setAt(board.at);
      setError(null);
    } catch (e) {
      if (isAbort(e)) throw e;
      setError(e);
    }
  }, 300);

  useEffect(() => {
    refresh(true);
    const timer = setInterval(() => refresh(), 60_000);
    return () => clearInterval(timer);
  }, [props.token, hour]);

  useLive(() => refresh());

  return (
    <section class="card occupancy" aria-labelledby="occupancy-heading">
      <div class="occupancy-head">
        <h2 id="occupancy-heading">
          {hour === null ? t.occupancyTitle : t.occupancyToday}
          {at ? <span class="hint"> · {i18n.time(at)}</span> : null}
        </h2>
        <label class="inline">
          <span>{t.occupancyAt}</span>
          <select
            id="occupancy-hour"
            value={hour === null ? "now" : String(hour)}
            onChange={(e) => {
              const value = e.currentTarget.value;
              setHour(value === "now" ? null : Number(value));
            }}
          >
            <option value="now">{t.now}</option>
            {Array.from({ length: 24 }, (_, h) => (
              <option key={h} value={String(h)}>
                {i18n.hour(h)}
              </option>
            ))}
          </select>
        </label>
      </div>
      {error ? (
        <p class="notice error" role="alert">
          {humanError(t, locale, error)}
        </p>
      ) : !zones ? (
        <p class="hint">{t.working}</p>
      ) : (
        <ul class="zones">
          {zones.map((z) => {
            const usable = z.total - z.disabled;
            const share = usable > 0 ? Math.round((100 * z.occupied) / usable) : 0;
            return (
              <li key={z.zone} data-zone={z.zone}>
                <span class="zone-name">
                  {z.zone} · {t.seatKind[z.kind] ?? z.kind}
                </span>
                <meter min={0} max={usable} value={z.occupied} aria-label={`${z.zone} ${share}%`} />
                <span class="zone-count">{t.occupancyLine(z.occupied, z.held, usable)}</span>
              </li>
            );
          })}
        </ul>
      )}
    </section>
  );
}
