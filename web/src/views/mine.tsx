// The customer's reservations (seat-view's timeline), newest first, with their payments and
// refunds; refreshed when the live board moves one of them.

import { useEffect, useState } from "preact/hooks";
import { api, isAbort, until } from "../api";
import { useAction, useLive, useRefresh } from "../hooks";
import { useI18n } from "../i18n";
import { LIVE_STATUSES, type Payments, refundsSettled, type TimelineEntry } from "../model";
import { href } from "../route";
import { isCustomer, session } from "../session";
import { useStore } from "../store";
import { CancelButton, ErrorNotice } from "./parts";

export function MinePage() {
  const { t } = useI18n();
  const user = useStore(session);
  const token = user?.token;
  const [entries, setEntries] = useState<TimelineEntry[] | null>(null);
  const [error, setError] = useState<unknown>(null);

  const refresh = useRefresh(async (signal) => {
    if (!token) return;
    try {
      setEntries((await api.myReservations(token, signal)).reservations);
      setError(null);
    } catch (e) {
      if (isAbort(e)) throw e;
      setError(e);
    }
  });

  useEffect(() => refresh(true), [token]);

  useLive((message) => {
    if (message.kind === "resync") refresh();
    else if (
      "reservationId" in message.change &&
      entries?.some(
        (e) => e.reservationId === (message.change as { reservationId: string }).reservationId,
      )
    ) {
      refresh();
    }
  });

  if (!isCustomer(user)) {
    return (
      <div>
        <h1>{t.mineTitle}</h1>
        <p>
          <a href={href("signin")}>{t.signInToReserve}</a>
        </p>
      </div>
    );
  }

  return (
    <div class="mine-page">
      <h1>{t.mineTitle}</h1>
      <ErrorNotice error={error} />
      {entries === null ? (
        <p class="hint">{t.working}</p>
      ) : entries.length === 0 ? (
        <p>{t.mineEmpty}</p>
      ) : (
        <ul class="reservations">
          {entries.map((entry) => (
            <Entry key={entry.reservationId} entry={entry} token={token ?? ""} onChange={refresh} />
          ))}
        </ul>
      )}
    </div>
  );
}

function Entry(props: { entry: TimelineEntry; token: string; onChange(now?: boolean): void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const { entry, token } = props;
  const [payments, setPayments] = useState<Payments | null>(null);
  const [open, setOpen] = useState(false);
  const [error, setError] = useState<unknown>(null);

  // Open, the payments follow the entry's changes (a refund arriving after a cancellation).
  useEffect(() => {
    if (!open) return;
    const controller = new AbortController();
    until(
      () => api.payments(token, entry.reservationId, controller.signal),
      (p) => refundsSettled(entry.status, p),
      controller.signal,
    )
      .then(setPayments)
      .catch((e: unknown) => {
        if (!isAbort(e)) setError(e);
      });
    return () => controller.abort();
  }, [open, entry.status, entry.refundStatus, token, entry.reservationId]);

  const cancel = useAction(async () => {
    await api.cancel(token, entry.reservationId);
    setOpen(true);
    props.onChange(true);
  });

  const live = LIVE_STATUSES.includes(entry.status);
  const ended = new Date(entry.endsAt) <= new Date();
  const panelId = `payments-${entry.reservationId}`;
  return (
    <li class="card reservation" data-reservation={entry.reservationId}>
      <div class="reservation-head">
        <strong class="seat-id">{entry.seatId}</strong>
        <span class={`badge status-${entry.status}`}>{t.reservationStatus[entry.status]}</span>
      </div>
      <p>{i18n.window(entry.startsAt, entry.endsAt)}</p>
      <p>
        {t.price}: {i18n.money(entry.price)}
        {entry.paymentStatus ? (
          <>
            {" · "}
            {t.payment}: {t.paymentStatus[entry.paymentStatus] ?? entry.paymentStatus}
          </>
        ) : null}
      </p>
      {entry.reason ? (
        <p>
          {t.reasonLabel}: {entry.reason}
        </p>
      ) : null}
      {entry.entryPassCode && entry.status === "REGISTERED" ? (
        <p>
          {t.entryPass}: <code class="code-inline">{entry.entryPassCode}</code>
        </p>
      ) : null}
      {entry.refundAmount ? (
        <p>
          {t.refund}: {t.refundDone(i18n.money(entry.refundAmount))}
        </p>
      ) : null}
      <ErrorNotice error={cancel.error ?? error} />
      <div class="actions">
        <button
          type="button"
          aria-expanded={open}
          aria-controls={panelId}
          onClick={() => setOpen(!open)}
        >
          {open ? t.hidePayments : t.showPayments}
        </button>
        {live && !ended ? (
          <CancelButton busy={cancel.busy} onCancel={() => void cancel.run()} />
        ) : null}
      </div>
      {open ? (
        <div id={panelId}>
          <PaymentList payments={payments} />
        </div>
      ) : null}
    </li>
  );
}

/** Payments and refunds of one reservation, as `GET /api/payments` tells them. */
export function PaymentList(props: { payments: Payments | null }) {
  const i18n = useI18n();
  const { t } = i18n;
  if (!props.payments) return <p class="hint">{t.working}</p>;
  if (props.payments.payments.length === 0) return <p class="hint">{t.noPayments}</p>;
  const status = (s: string) => t.paymentStatus[s] ?? s.toLowerCase();
  return (
    <ul class="payments" aria-label={t.payments}>
      {props.payments.payments.map((payment) => (
        <li key={payment.paymentId}>
          {t.paymentLine(status(payment.status), i18n.money(payment.amount))}
          <span class="hint"> · {i18n.dateTime(payment.createdAt)}</span>
          {payment.reason ? <span class="hint"> · {payment.reason}</span> : null}
          {payment.refunds.length > 0 ? (
            <ul>
              {payment.refunds.map((refund) => (
                <li key={refund.refundId}>
                  {t.refundLine(status(refund.status), i18n.money(refund.amount))}
                  <span class="hint"> · {i18n.dateTime(refund.updatedAt)}</span>
                </li>
              ))}
            </ul>
          ) : null}
        </li>
      ))}
    </ul>
  );
}
