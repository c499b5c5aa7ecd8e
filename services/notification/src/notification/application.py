"""The use case: one consumed event, applied once.

`NotifyCustomers.handle` is what the Kafka consumer calls for every valid event. It returns
only when everything it decided is on disk, so the consumer may store the offset right after.
The order of writes makes a crash at any point harmless:

1. the reservation's customer (seat events) — re-learning it is a no-op;
2. the notifications (the event's own, and those of events parked for that reservation) —
   stored once per event id, whatever the retries;
3. delivery through the port — at least once (a crash before step 4 delivers again; the
   delivery adapter drops what it already sent);
4. the event id as processed — from here on a redelivery changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from enum import Enum

from .domain import policy
from .domain.model import Consumed, Notification
from .domain.ports import Delivery, Listener, NotificationStore

log = logging.getLogger("notification.application")


class Outcome(str, Enum):
    NOTIFIED = "notified"
    RECORDED = "recorded"  # applied, nobody to tell (e.g. BookingConfirmed)
    PARKED = "parked"  # waiting for its reservation's customer
    DUPLICATE = "duplicate"


class NotifyCustomers:
    def __init__(
        self,
        store: NotificationStore,
        delivery: Delivery,
        listeners: Iterable[Listener] = (),
    ) -> None:
        self._store = store
        self._delivery = delivery
        self._listeners = list(listeners)

    def subscribe(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def handle(self, event: Consumed) -> Outcome:
        if self._store.is_processed(event.event_id):
            return Outcome.DUPLICATE
        pending: list[Notification] = []
        owner = policy.owner(event)
        if owner is not None:
            reservation, customer = owner
            self._store.remember_customer(reservation, customer, event.event_id)
            for parked in self._store.parked_for(reservation):
                released = policy.notification_for(parked, customer)
                if released is not None:
                    pending.append(released)
        reservation = policy.reservation_of(event)
        outcome = Outcome.RECORDED
        if reservation is not None and policy.notifies(event):
            customer = self._store.customer_of(reservation)
            if customer is None:
                self._store.park(event)
                outcome = Outcome.PARKED
            else:
                own = policy.notification_for(event, customer)
                if own is not None:
                    pending.append(own)
                    outcome = Outcome.NOTIFIED
        if pending:
            stored = self._store.append(pending)
            for notification in stored:
                self._delivery.deliver(notification)
            for notification in stored:
                for listener in self._listeners:
                    listener.published(notification)
        self._store.mark_processed(event.event_id)
        log.info(
            "event applied",
            extra={
                "event_type": event.event_type,
                "event_id": event.event_id,
                "correlation_id": event.correlation_id,
                "outcome": outcome.value,
                "notifications": len(pending),
            },
        )
        return outcome
