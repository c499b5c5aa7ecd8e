"""What the application needs from the outside world, as protocols."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .model import Consumed, CustomerId, Notification, ReservationId


class StoreError(Exception):
    """The store could not be read or written (disk full, I/O error): worth retrying."""


class NotificationStore(Protocol):
    """Durable notifications, the reservation → customer map and processed event ids.

    Every method that writes returns only once the write is on disk (fsync), so the consumer
    may store its offset right after.
    """

    def is_processed(self, event_id: str) -> bool: ...

    def customer_of(self, reservation: ReservationId) -> CustomerId | None: ...

    def remember_customer(
        self, reservation: ReservationId, customer: CustomerId, event_id: str
    ) -> None: ...

    def park(self, consumed: Consumed) -> None:
        """Keeps an event whose reservation's customer is not known yet (it arrived on another
        topic before `SeatReserved`)."""
        ...

    def parked_for(self, reservation: ReservationId) -> list[Consumed]: ...

    def append(self, notifications: Iterable[Notification]) -> list[Notification]:
        """Stores notifications (numbered per customer); returns them with their `seq`."""
        ...

    def mark_processed(self, event_id: str) -> None: ...

    def notifications_of(self, customer: CustomerId) -> list[Notification]: ...

    def read_marker(self, customer: CustomerId) -> int: ...

    def move_read_marker(self, customer: CustomerId, seq: int) -> int: ...


class Delivery(Protocol):
    """Where a notification goes besides the customer's list: e-mail, SMS or push providers
    plug in here. Called after the notification is stored; an implementation must tolerate
    being called again for the same notification (a crash between store and delivery)."""

    def deliver(self, notification: Notification) -> None: ...


class Listener(Protocol):
    """Live subscribers (the SSE stream)."""

    def published(self, notification: Notification) -> None: ...
