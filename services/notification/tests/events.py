"""Envelopes of the published language, as the Rust services put them on the wire."""

from __future__ import annotations

import json
import os
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

SEAT, REGISTRATION, PAYMENT = "studycafe.seat.v1", "studycafe.registration.v1", "studycafe.payment.v1"
TOPIC_OF = {
    **dict.fromkeys(
        [
            "SeatDefined", "SeatReserved", "ReservationConfirmed", "ReservationRejected",
            "ReservationPaid", "ReservationPaymentFailed", "ReservationRegistered",
            "ReservationCancelled", "ReservationExpired", "ReservationCompleted",
        ],
        SEAT,
    ),
    **dict.fromkeys(
        ["BookingConfirmed", "BookingRejected", "SeatRegistered", "RegistrationCancelled"],
        REGISTRATION,
    ),
    **dict.fromkeys(["PaymentCompleted", "PaymentDeclined", "PaymentRefunded"], PAYMENT),
}
SOURCE = {SEAT: "seat", REGISTRATION: "registration", PAYMENT: "payment"}


def uuid7() -> str:
    """A UUID v7 (time-ordered), as the Rust services make them."""
    millis = int(time.time() * 1000)
    raw = bytearray(millis.to_bytes(6, "big") + os.urandom(10))
    raw[6] = (raw[6] & 0x0F) | 0x70
    raw[8] = (raw[8] & 0x3F) | 0x80
    return str(uuid.UUID(bytes=bytes(raw)))


def rfc3339(t: datetime) -> str:
    return t.astimezone(UTC).isoformat().replace("+00:00", "Z")


class Reservation:
    """One reservation's events, in saga order, each a bit later than the one before."""

    def __init__(self, customer: str, seat: str = "A-01") -> None:
        self.id = uuid7()
        self.customer = customer
        self.seat = seat
        self.starts = (datetime.now(UTC) + timedelta(days=1)).replace(minute=0, second=0, microsecond=0)
        self.ends = self.starts + timedelta(hours=2)
        self.clock = datetime.now(UTC)
        self.payment_id = uuid7()

    def ref(self) -> dict[str, Any]:
        return {
            "reservationId": self.id,
            "seatId": self.seat,
            "customerId": self.customer,
            "startsAt": rfc3339(self.starts),
            "endsAt": rfc3339(self.ends),
        }

    def event(self, event_type: str, **data: Any) -> dict[str, Any]:
        self.clock += timedelta(milliseconds=10)
        topic = TOPIC_OF[event_type]
        return {
            "id": uuid7(),
            "type": event_type,
            "version": 1,
            "occurredAt": rfc3339(self.clock),
            "source": SOURCE[topic],
            "correlationId": self.id,
            "causationId": uuid7(),
            "data": data,
        }

    def reserved(self) -> dict[str, Any]:
        return self.event(
            "SeatReserved",
            **self.ref(),
            hours=2,
            price={"amount": 6000, "currency": "KRW"},
            holdExpiresAt=rfc3339(self.clock + timedelta(minutes=10)),
        )

    def booking_confirmed(self) -> dict[str, Any]:
        return self.event("BookingConfirmed", reservationId=self.id, confirmedBy="admin-1")

    def confirmed(self) -> dict[str, Any]:
        return self.event("ReservationConfirmed", **self.ref())

    def rejected(self, reason: str = "closed for cleaning") -> dict[str, Any]:
        return self.event("ReservationRejected", **self.ref(), reason=reason)

    def payment_completed(self) -> dict[str, Any]:
        return self.event(
            "PaymentCompleted",
            reservationId=self.id,
            paymentId=self.payment_id,
            amount={"amount": 6000, "currency": "KRW"},
        )

    def paid(self) -> dict[str, Any]:
        return self.event(
            "ReservationPaid", **self.ref(), paymentId=self.payment_id,
            amount={"amount": 6000, "currency": "KRW"},
        )

    def seat_registered(self, code: str = "4821-7730") -> dict[str, Any]:
        return self.event(
            "SeatRegistered",
            reservationId=self.id,
            registrationId=uuid7(),
            seatId=self.seat,
            entryPassCode=code,
            startsAt=rfc3339(self.starts),
            endsAt=rfc3339(self.ends),
        )

    def registered(self) -> dict[str, Any]:
        return self.event("ReservationRegistered", **self.ref(), registrationId=uuid7())

    def payment_failed(self, reason: str = "card declined") -> dict[str, Any]:
        return self.event("ReservationPaymentFailed", **self.ref(), reason=reason)

    def expired(self) -> dict[str, Any]:
        return self.event("ReservationExpired", **self.ref(), expiredIn="CONFIRMED")

    def cancelled(self, was_paid: bool = True) -> dict[str, Any]:
        return self.event("ReservationCancelled", **self.ref(), cancelledBy="customer", wasPaid=was_paid)

    def refunded(self) -> dict[str, Any]:
        return self.event(
            "PaymentRefunded",
            reservationId=self.id,
            paymentId=self.payment_id,
            refundId=uuid7(),
            amount={"amount": 6000, "currency": "KRW"},
        )

    def whole_saga(self) -> list[dict[str, Any]]:
        """Reserved, confirmed, paid, registered, then cancelled and refunded: every event the
        Rust services publish for it, in the order they would."""
        return [
            self.reserved(),
            self.booking_confirmed(),
            self.confirmed(),
            self.payment_completed(),
            self.paid(),
            self.seat_registered(),
            self.registered(),
            self.cancelled(),
            self.refunded(),
        ]


def payload(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope).encode()
