"""The delivery port's adapter for now: an "outbox file" and a log line.

Each notification is appended (fsynced) to `outbox/deliveries.jsonl` under the data directory,
addressed to the customer, in both languages: the hand-off point for an e-mail, SMS or push
sender, which tails the file and remembers how far it got. A notification delivered twice
(the service crashed between delivering and recording the event as processed) is written once.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from ..domain.model import Notification
from .files import JsonLines
from .filestore import to_record

log = logging.getLogger("notification.delivery")


class OutboxFileDelivery:
    def __init__(self, data_dir: Path) -> None:
        self._lock = threading.Lock()
        self._file = JsonLines(data_dir / "outbox" / "deliveries.jsonl")
        self._delivered = {r["eventId"] for r in self._file.records}
        self._file.records.clear()

    def deliver(self, notification: Notification) -> None:
        with self._lock:
            if notification.event_id in self._delivered:
                return
            self._file.append({"channel": "outbox-file", **to_record(notification)})
            self._delivered.add(notification.event_id)
        log.info(
            "notification delivered",
            extra={
                "customer_id": notification.customer_id.value,
                "kind": notification.kind.value,
                "event_id": notification.event_id,
                "title_en": notification.messages["en"].title,
            },
        )

    def close(self) -> None:
        self._file.close()
