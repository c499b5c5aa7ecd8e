"""Value objects and the notification itself."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from enum import Enum
from typing import Any, Self

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")


class InvalidValue(ValueError):
    """A value that cannot be one of ours (an empty id, an id with a slash)."""


@dataclass(frozen=True, order=True)
class _Id:
    """An id of another context, as events and tokens carry it: 1-128 letters, digits or
    `._:@-`, starting with a letter or digit (so never a path)."""

    value: str
    what = "id"

    @classmethod
    def parse(cls, raw: object) -> Self:
        if not isinstance(raw, str) or not _ID.match(raw):
            raise InvalidValue(f"{cls.what} {raw!r} is not 1-128 letters, digits or ._:@-")
        return cls(raw)

    def __str__(self) -> str:
        return self.value


class CustomerId(_Id):
    """Identity's user id (the token's `sub`, the events' `customerId`)."""

    what = "customer id"


class ReservationId(_Id):
    """Seat's reservation id (the events' `reservationId` and correlation id)."""

    what = "reservation id"


class Kind(str, Enum):
    """What happened, as the customer hears it. The value is the stable API name."""

    REQUESTED = "reservation.requested"
    CONFIRMED = "reservation.confirmed"
    REJECTED = "reservation.rejected"
    PAID = "payment.completed"
    REGISTERED = "reservation.registered"
    PAYMENT_FAILED = "reservation.payment-failed"
    EXPIRED = "reservation.expired"
    CANCELLED = "reservation.cancelled"
    REFUNDED = "payment.refunded"


@dataclass(frozen=True)
class Message:
    title: str
    body: str


@dataclass(frozen=True)
class Notification:
    """One thing told to one customer. `event_id` is the event it came from (one each), so
    it doubles as the notification's id. `seq` is its place in the customer's arrivals (1, 2,
    …): the read marker counts in it, so a late arrival is never marked read unseen."""

    event_id: str
    customer_id: CustomerId
    reservation_id: ReservationId
    kind: Kind
    occurred_at: datetime
    messages: dict[str, Message]
    details: dict[str, Any] = field(default_factory=dict)
    seq: int = 0

    def with_seq(self, seq: int) -> Notification:
        return Notification(
            event_id=self.event_id,
            customer_id=self.customer_id,
            reservation_id=self.reservation_id,
            kind=self.kind,
            occurred_at=self.occurred_at,
            messages=self.messages,
            details=self.details,
            seq=seq,
        )

    def sort_key(self) -> tuple[datetime, str]:
        # Event ids are UUID v7: within one instant they still order by creation.
        return (self.occurred_at, self.event_id)


@dataclass(frozen=True)
class Consumed:
    """One event off the wire, its envelope checked against its schema."""

    event_id: str
    event_type: str
    version: int
    occurred_at: datetime
    correlation_id: str
    data: dict[str, Any]
    topic: str

    def to_record(self) -> dict[str, Any]:
        return {
            "id": self.event_id,
            "type": self.event_type,
            "version": self.version,
            "occurredAt": self.occurred_at.isoformat(),
            "correlationId": self.correlation_id,
            "data": self.data,
            "topic": self.topic,
        }

    @classmethod
    def from_envelope(cls, envelope: dict[str, Any], occurred_at: datetime, topic: str) -> Consumed:
        """An envelope its schema has accepted (`occurred_at` parsed from it)."""
        return cls(
            event_id=envelope["id"],
            event_type=envelope["type"],
            version=envelope["version"],
            occurred_at=occurred_at,
            correlation_id=envelope["correlationId"],
            data=envelope["data"],
            topic=topic,
        )

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Consumed:
        return cls(
            event_id=record["id"],
            event_type=record["type"],
            version=int(record["version"]),
            occurred_at=datetime.fromisoformat(record["occurredAt"]),
            correlation_id=record["correlationId"],
            data=record["data"],
            topic=record["topic"],
        )
