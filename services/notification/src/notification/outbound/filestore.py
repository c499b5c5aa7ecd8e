"""The notification store on the file system (the third kind of storage of the suite, beside
relational databases and Redis).

Layout under `NOTIFICATION_DATA_DIR`:

- `customers/<customer>.jsonl` — one append-only file per customer: their notifications, in
  arrival order (`seq` 1, 2, …);
- `read-markers/<customer>.json` — how far the customer has read, replaced atomically;
- `reservations.jsonl` — which customer each reservation belongs to;
- `parked.jsonl` — events that arrived before their reservation's customer was known;
- `processed.jsonl` — ids of the events applied, so a redelivered event changes nothing.

Everything is loaded into memory at start-up (a cafe's notifications are small) and every
write is on disk before the call returns. One lock serialises writers; readers copy under it.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any

from ..domain.model import (
    Consumed,
    CustomerId,
    Kind,
    Message,
    Notification,
    ReservationId,
)
from ..domain.ports import StoreError
from .files import JsonLines, read_document, write_atomically

_SAFE = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def file_name(customer: CustomerId) -> str:
    """A file name for a customer id: the id itself when it is plainly safe (identity's ids
    are UUIDs), a hash of it otherwise (the id is inside every record anyway)."""
    if _SAFE.match(customer.value):
        return customer.value
    return "h-" + hashlib.sha256(customer.value.encode()).hexdigest()[:40]


def to_record(n: Notification) -> dict[str, Any]:
    return {
        "seq": n.seq,
        "eventId": n.event_id,
        "customerId": n.customer_id.value,
        "reservationId": n.reservation_id.value,
        "kind": n.kind.value,
        "occurredAt": n.occurred_at.isoformat(),
        "messages": {lang: {"title": m.title, "body": m.body} for lang, m in n.messages.items()},
        "details": n.details,
    }


def from_record(r: dict[str, Any]) -> Notification:
    return Notification(
        event_id=r["eventId"],
        customer_id=CustomerId(r["customerId"]),
        reservation_id=ReservationId(r["reservationId"]),
        kind=Kind(r["kind"]),
        occurred_at=datetime.fromisoformat(r["occurredAt"]),
        messages={lang: Message(m["title"], m["body"]) for lang, m in r["messages"].items()},
        details=r.get("details", {}),
        seq=int(r["seq"]),
    )


class FileStore:
    def __init__(self, root: Path) -> None:
        self._root = root
        self._lock = threading.Lock()
        try:
            root.mkdir(parents=True, exist_ok=True)
            (root / "customers").mkdir(exist_ok=True)
            self._processed_file = JsonLines(root / "processed.jsonl")
            self._processed = {r["id"] for r in self._processed_file.records}
            self._processed_file.records.clear()
            self._reservations_file = JsonLines(root / "reservations.jsonl")
            self._owners = {
                ReservationId(r["reservation"]): CustomerId(r["customer"])
                for r in self._reservations_file.records
            }
            self._reservations_file.records.clear()
            self._parked_file = JsonLines(root / "parked.jsonl")
            self._parked: dict[ReservationId, list[Consumed]] = defaultdict(list)
            for r in self._parked_file.records:
                event = Consumed.from_record(r)
                self._parked[ReservationId(event.data["reservationId"])].append(event)
            self._parked_file.records.clear()
            self._customers: dict[CustomerId, JsonLines] = {}
            self._notifications: dict[CustomerId, list[Notification]] = {}
            for path in sorted((root / "customers").glob("*.jsonl")):
                lines = JsonLines(path)
                notifications = [from_record(r) for r in lines.records]
                lines.records.clear()
                if notifications:
                    customer = notifications[0].customer_id
                    self._customers[customer] = lines
                    self._notifications[customer] = notifications
                else:
                    lines.close()
        except OSError as e:
            raise StoreError(f"cannot open the store at {root}: {e}") from e

    @property
    def root(self) -> Path:
        return self._root

    # --- what the consumer writes -----------------------------------------------------------

    def is_processed(self, event_id: str) -> bool:
        with self._lock:
            return event_id in self._processed

    def customer_of(self, reservation: ReservationId) -> CustomerId | None:
        with self._lock:
            return self._owners.get(reservation)

    def remember_customer(
        self, reservation: ReservationId, customer: CustomerId, event_id: str
    ) -> None:
        with self._lock:
            if self._owners.get(reservation) == customer:
                return
            self._write(
                self._reservations_file,
                {"reservation": reservation.value, "customer": customer.value, "event": event_id},
            )
            self._owners[reservation] = customer

    def park(self, consumed: Consumed) -> None:
        with self._lock:
            reservation = ReservationId(consumed.data["reservationId"])
            if any(p.event_id == consumed.event_id for p in self._parked[reservation]):
                return
            self._write(self._parked_file, consumed.to_record())
            self._parked[reservation].append(consumed)

    def parked_for(self, reservation: ReservationId) -> list[Consumed]:
        with self._lock:
            return list(self._parked.get(reservation, ()))

    def append(self, notifications: Iterable[Notification]) -> list[Notification]:
        with self._lock:
            stored: list[Notification] = []
            for notification in notifications:
                customer = notification.customer_id
                existing = self._notifications.setdefault(customer, [])
                same = next((n for n in existing if n.event_id == notification.event_id), None)
                if same is not None:
                    stored.append(same)
                    continue
                numbered = notification.with_seq(len(existing) + 1)
                lines = self._customers.get(customer)
                try:
                    if lines is None:
                        lines = JsonLines(self._root / "customers" / f"{file_name(customer)}.jsonl")
                        self._customers[customer] = lines
                    lines.append(to_record(numbered))
                except OSError as e:
                    raise StoreError(f"cannot write {customer}'s notifications: {e}") from e
                existing.append(numbered)
                stored.append(numbered)
            return stored

    def mark_processed(self, event_id: str) -> None:
        with self._lock:
            if event_id in self._processed:
                return
            self._write(self._processed_file, {"id": event_id})
            self._processed.add(event_id)

    # --- what the API reads -----------------------------------------------------------------

    def notifications_of(self, customer: CustomerId) -> list[Notification]:
        with self._lock:
            return list(self._notifications.get(customer, ()))

    def read_marker(self, customer: CustomerId) -> int:
        document = read_document(self._marker_path(customer))
        return int(document["seq"]) if document else 0

    def move_read_marker(self, customer: CustomerId, seq: int) -> int:
        """Moves the marker forward to `seq` (never back); returns where it now is."""
        with self._lock:
            current = self.read_marker(customer)
            if seq <= current:
                return current
            try:
                write_atomically(
                    self._marker_path(customer), {"customerId": customer.value, "seq": seq}
                )
            except OSError as e:
                raise StoreError(f"cannot write {customer}'s read marker: {e}") from e
            return seq

    def latest_seq(self, customer: CustomerId) -> int:
        with self._lock:
            return len(self._notifications.get(customer, ()))

    def writable(self) -> bool:
        """For readiness: the data directory takes a write."""
        probe = self._root / ".ready-probe"
        try:
            probe.write_bytes(b"ok")
            probe.unlink()
        except OSError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            for lines in [
                self._processed_file,
                self._reservations_file,
                self._parked_file,
                *self._customers.values(),
            ]:
                lines.close()

    def _marker_path(self, customer: CustomerId) -> Path:
        return self._root / "read-markers" / f"{file_name(customer)}.json"

    @staticmethod
    def _write(lines: JsonLines, record: dict[str, Any]) -> None:
        try:
            lines.append(record)
        except OSError as e:
            raise StoreError(f"cannot write {lines.path}: {e}") from e
