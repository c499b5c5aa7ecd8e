"""Events are checked against the published language's JSON Schemas before anything reads them."""

import json

import pytest

from conftest import REPO
from events import Reservation, payload
from notification.outbound.schemas import EventSchemas, Invalid, UnknownType

SCHEMAS = EventSchemas(REPO / "shared-events" / "schemas")


def test_every_event_of_the_published_language_has_a_schema():
    assert len(SCHEMAS.types) == len(list((REPO / "shared-events" / "schemas").glob("*.schema.json")))
    assert ("SeatRegistered", 1) in SCHEMAS.types


def test_events_as_the_services_publish_them_pass():
    for envelope in Reservation("alice").whole_saga():
        checked = SCHEMAS.check(payload(envelope))
        assert checked.envelope["id"] == envelope["id"]


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda e: e["data"].pop("entryPassCode"), "entryPassCode"),
        (lambda e: e["data"].update(startsAt="tomorrow"), "startsAt"),
        (lambda e: e.pop("correlationId"), "correlationId"),
        (lambda e: e.update(version="1"), "integer `version`"),
    ],
)
def test_a_changed_shape_is_invalid(change, expected):
    envelope = Reservation("alice").seat_registered()
    change(envelope)
    with pytest.raises(Invalid, match=expected):
        SCHEMAS.check(payload(envelope))


def test_bytes_that_are_no_event_are_invalid_and_an_unknown_type_is_only_unknown():
    for junk in [b"{not json", b"[1,2]", b"\xff\xfe", None]:
        with pytest.raises(Invalid):
            SCHEMAS.check(junk)
    newer = Reservation("alice").reserved()
    newer["type"] = "SeatTeleported"
    with pytest.raises(UnknownType):
        SCHEMAS.check(json.dumps(newer).encode())
    newer["version"] = 2
    newer["type"] = "SeatReserved"
    with pytest.raises(UnknownType):
        SCHEMAS.check(json.dumps(newer).encode())
