"""The notification service's side of the message contracts: it states, as Pact message pacts,
the events it consumes from seat, registration and payment (what it needs of each: the whole
envelope its JSON Schema requires, every field with its type, `type` and `version` exactly),
and proves it handles each stated message: the real schema check and the real policy turn it
into the notification the customer is meant to get.

The pacts go to `tests/contracts/pacts/notification-<producer>.json`, where the producers'
verification (`cargo test -p studycafe-e2e --test contracts -- provider`) checks them against
the events the Rust services really publish.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pact import Pact, match

from conftest import REPO
from events import PAYMENT, REGISTRATION, SEAT, TOPIC_OF, Reservation
from notification.domain import policy
from notification.domain.model import Consumed, CustomerId
from notification.outbound.schemas import EventSchemas

PACTS = REPO / "tests" / "contracts" / "pacts"
SCHEMAS = EventSchemas(REPO / "shared-events" / "schemas")

# The events the service tells customers about, and what it tells them.
NOTIFIED = {
    "SeatReserved": "reservation.requested",
    "ReservationConfirmed": "reservation.confirmed",
    "ReservationRejected": "reservation.rejected",
    "ReservationPaymentFailed": "reservation.payment-failed",
    "ReservationExpired": "reservation.expired",
    "ReservationCancelled": "reservation.cancelled",
    "SeatRegistered": "reservation.registered",
    "PaymentCompleted": "payment.completed",
    "PaymentRefunded": "payment.refunded",
}
# Closed vocabularies the policy branches on: stated exactly.
EXACT = {"type", "version", "currency", "cancelledBy"}


def loosely(value: Any, key: str | None = None) -> Any:
    if isinstance(value, dict):
        return {k: loosely(v, k) for k, v in value.items()}
    if key in EXACT:
        return value
    return match.like(value)


def example(event_type: str) -> dict[str, Any]:
    """A fixed example (the pact files stay the same from run to run)."""
    r = Reservation("0198c0de-0000-7000-8000-00000000c001")
    r.id = "0198c0de-0000-7000-8000-000000000001"
    r.payment_id = "0198c0de-0000-7000-8000-0000000000ee"
    r.starts = datetime(2030, 1, 1, 9, tzinfo=UTC)
    r.ends = datetime(2030, 1, 1, 11, tzinfo=UTC)
    r.clock = datetime(2030, 1, 1, 8, tzinfo=UTC)
    envelope = {
        "SeatReserved": r.reserved,
        "ReservationConfirmed": r.confirmed,
        "ReservationRejected": r.rejected,
        "ReservationPaymentFailed": r.payment_failed,
        "ReservationExpired": r.expired,
        "ReservationCancelled": r.cancelled,
        "SeatRegistered": r.seat_registered,
        "PaymentCompleted": r.payment_completed,
        "PaymentRefunded": r.refunded,
    }[event_type]()
    envelope["id"] = "0198c0de-0000-7000-8000-0000000000e1"
    envelope["causationId"] = "0198c0de-0000-7000-8000-0000000000ca"
    for key in ("registrationId", "refundId"):
        if key in envelope["data"]:
            envelope["data"][key] = "0198c0de-0000-7000-8000-0000000000ee"
    return envelope


def handle(body: str | bytes | None, _metadata: dict[str, object]) -> None:
    """What the consumer does with a message, short of Kafka and files."""
    raw = body.encode() if isinstance(body, str) else body
    checked = SCHEMAS.check(raw)  # raises Invalid: the service would dead-letter it
    event = Consumed.from_envelope(
        checked.envelope, checked.occurred_at, TOPIC_OF[checked.envelope["type"]]
    )
    notification = policy.notification_for(event, CustomerId("someone"))
    assert notification is not None, f"{event.event_type} notified nobody"
    assert notification.kind.value == NOTIFIED[event.event_type]
    for language in ("ko", "en"):
        assert notification.messages[language].body


def test_the_notification_service_states_the_events_it_consumes() -> None:
    written = []
    for producer, topic in (("seat", SEAT), ("registration", REGISTRATION), ("payment", PAYMENT)):
        pact = Pact("notification", producer).with_specification("V4")
        for event_type in NOTIFIED:
            if TOPIC_OF[event_type] != topic:
                continue
            (
                pact.upon_receiving(f"a {event_type} event", "Async")
                .given(f"a reservation's saga produced {event_type}")
                .with_body(loosely(example(event_type)), "application/json")
            )
        pact.verify(handle, "Async")
        target = PACTS / f"notification-{producer}.json"
        target.unlink(missing_ok=True)
        pact.write_file(PACTS, overwrite=True)
        written.append(target)
    for path in written:
        contents = json.loads(Path(path).read_text())
        assert contents["consumer"]["name"] == "notification"
        assert contents["interactions"], path


def test_a_message_without_a_field_the_service_needs_fails_its_handling() -> None:
    """The handler above is the check: a producer's message missing `entryPassCode` fails it."""
    broken = example("SeatRegistered")
    broken["data"]["passCode"] = broken["data"].pop("entryPassCode")
    try:
        handle(json.dumps(broken), {})
    except Exception as e:  # noqa: BLE001 — the point is that it fails
        assert "entryPassCode" in str(e)
    else:
        raise AssertionError("a renamed entryPassCode was accepted")
