// One reservation followed live through the saga: REQUESTED → CONFIRMED → PAID → REGISTERED,
// or why it stopped; the entry pass once registered; cancellation and its refund.
//
// Seat's own answer (`GET /api/reservations/{id}`) is the state shown; the live board's events
// for this reservation say when to ask again. The entry pass and the refund come from services
// that announce nothing on the board, so those are asked for again, with growing pauses, until
// they are there.

import { useEffect, useState } from "preact/hooks";
import { api, isAbort, until } from "../api";
import { useAction, useLive, useRefresh } from "../hooks";
import { useI18n } from "../i18n";
import {
  LIVE_STATUSES,
  type Payments,
  type Reservation,
  refundsSettled,
  SAGA_STEPS,
} from "../model";
import { session } from "../session";
import { useStore } from "../store";
import { CancelButton, ErrorNotice } from "./parts";

export function Progress(props: { id: string; onDone(): void }) {
  const i18n = useI18n();
  const { t } = i18n;
  const user = useStore(session);
  const [reservation, setReservation] = useState<Reservation | null>(null);
  const [entryPass, setEntryPass] = useState<string | null>(null);
  const [payments, setPayments] = useState<Payments | null>(null);
  const [error, setError] = useState<unknown>(null);
  const token = user?.token;

  const refresh = useRefresh(async (signal) => {
    if (!token) return;
    try {
      setReservation(await api.reservation(token, props.id, signal));
      setError(null);
    } catch (e) {
      if (isAbort(e)) throw e;
      setError(e);
    }
  }, 50);

  useEffect(() => refresh(true), [props.id, token]);

  useLive((message) => {
    if (message.kind === "resync") refresh();
    else if ("reservationId" in message.change && message.change.reservationId === props.id) {
      refresh();
    }
  });

  const status = reservation?.status;

  // The entry pass: registration issues it; seat-view's timeline carries it.
  useEffect(() => {
    if (!token || status !== "REGISTERED" || entryPass) return;
    const controller = new AbortController();
    const find = async () => {
      const mine = await api.myReservations(token, controller.signal);
      return mine.reservations.find((r) => r.reservationId === props.id)?.entryPassCode ?? null;
    };
    until(find, (code) => code !== null, controller.signal)
      .then(setEntryPass)
      .catch((e: unknown) => {
        if (!isAbort(e)) setError(e);
      });
    return () => controller.abort();
  }, [status, token, props.id]);

  // Payments, and after a cancellation the refund until it is done.
  useEffect(() => {
    if (!token || !reservation?.paymentId) return;
    const controller = new AbortController();
    until(
      () => api.payments(token, props.id, controller.signal),
      (p) => refundsSettled(status, p),
      controller.signal,
    )
      .then(setPayments)
      .catch((e: unknown) => {
        if (!isAbort(e)) setError(e);
      });
    return () => controller.abort();
  }, [status, reservation?.paymentId, token, props.id]);

  const cancel = useAction(async () => {
    if (!token) return;
    await api.cancel(token, props.id);
    refresh(true);
  });

  if (!token) return null;
  const stepIndex = status ? SAGA_STEPS.indexOf(status) : -1;
  const live = !!status && LIVE_STATUSES.includes(status);
  const ended = reservation ? new Date(reservation.endsAt) <= new Date() : false;
  const outcome = status ? t.reservationOutcome[status] : undefined;
  const refunds = payments?.payments.flatMap((p) => p.refunds) ?? [];

  return (
    <section
      class="card progress"
      aria-labelledby="progress-heading"
      data-reservation={props.id}
      data-status={status}
    >
      <h2 id="progress-heading">{t.yourReservation}</h2>
      {reservation ? (
        <>
          <p class="chosen-seat">
            <strong>{reservation.seatId}</strong> · {i18n.money(reservation.price)}
          </p>
          <p>{i18n.window(reservation.startsAt, reservation.endsAt)}</p>
          <ol class="steps">
            {SAGA_STEPS.map((step, i) => (
              <li
                key={step}
                class={
                  i < stepIndex || status === "COMPLETED" ? "done" : i === stepIndex ? "now" : ""
                }
                aria-current={i === stepIndex ? "step" : undefined}
              >
                {t.reservationStatus[step]}
              </li>
            ))}
          </ol>
          <p class="status-line" role="status">
            <span class={`badge status-${status}`}>{status && t.reservationStatus[status]}</span>{" "}
            {status === "REQUESTED" && t.waitingForCafe}
            {status === "CONFIRMED" &&
              (reservation.paymentPending && reservation.paymentAttempts > 0
                ? t.paymentPending
                : t.paying)}
            {outcome}
          </p>
          {reservation.statusReason && !live ? (
            <p>
              {t.reasonLabel}: {reservation.statusReason}
            </p>
          ) : null}
          {status === "REQUESTED" || status === "CONFIRMED" ? (
            <p class="hint">{t.holdUntil(i18n.dateTime(reservation.holdExpiresAt))}</p>
          ) : null}
          {status === "REGISTERED" ? (
            entryPass ? (
              <section class="entry-pass" aria-labelledby="entry-pass-label">
                <p id="entry-pass-label">{t.entryPass}</p>
                <p class="code" data-testid="entry-pass">
                  {entryPass}
                </p>
                <p class="hint">{t.entryPassHint}</p>
              </section>
            ) : (
              <p class="hint">{t.entryPassComing}</p>
            )
          ) : null}
          {refunds.length > 0 || (status === "CANCELLED" && reservation.paymentId) ? (
            <p class="refund" role="status">
              {t.refund}:{" "}
              {refunds.some((r) => r.status === "COMPLETED")
                ? t.refundDone(
                    i18n.won(
                      refunds
                        .filter((r) => r.status === "COMPLETED")
                        .reduce((sum, r) => sum + r.amount.amount, 0),
                    ),
                  )
                : t.refundPending}
            </p>
          ) : null}
        </>
      ) : error ? null : (
        <p class="hint">{t.working}</p>
      )}
      <ErrorNotice error={cancel.error ?? error} />
      <div class="actions">
        {live && !ended ? (
          <CancelButton busy={cancel.busy} onCancel={() => void cancel.run()} />
        ) : null}
        <button type="button" onClick={props.onDone}>
          {t.bookAnother}
        </button>
      </div>
    </section>
  );
}
