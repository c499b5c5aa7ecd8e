"""The service as its own process against a real broker: what customers see over HTTP, that a
redelivery or a restart notifies once, that poison goes to the dead-letter topic and the
partition moves on, that the stream pushes, that bad requests change nothing."""

from __future__ import annotations

import json
import signal
import threading
import time

import httpx

from conftest import eventually
from events import PAYMENT, SEAT, Reservation


def kinds(body: dict) -> list[str]:
    return [n["kind"] for n in body["notifications"]]


SAGA_NEWEST_FIRST = [
    "payment.refunded",
    "reservation.cancelled",
    "reservation.registered",
    "payment.completed",
    "reservation.confirmed",
    "reservation.requested",
]


def test_a_whole_saga_is_told_to_its_customer_newest_first_in_both_languages(shared_service):
    service = shared_service
    r = Reservation("alice-" + service.prefix[3:11])
    service.publish(*r.whole_saga())
    body = service.wait_for(r.customer, 6)
    assert kinds(body) == SAGA_NEWEST_FIRST
    assert body["unread"] == 6 and body["readUpTo"] == 0
    registered = body["notifications"][2]
    assert registered["details"]["entryPassCode"] == "4821-7730"
    assert "입장 코드: 4821-7730" in registered["body"]  # Korean by default
    assert registered["messages"]["en"]["title"] == "You're registered"
    english = service.notifications(r.customer, lang="en")
    assert english["notifications"][0]["body"].endswith("was refunded to you.")

    # Nobody else sees them.
    assert service.notifications("mallory")["notifications"] == []

    # The read marker: move it, it stays, never backwards, never beyond the newest.
    token = service.keys.token(r.customer)
    auth = {"authorization": f"Bearer {token}"}
    moved = service.http.put(f"{service.url}/api/notifications/read-marker", json={"seq": 4}, headers=auth)
    assert moved.status_code == 200 and moved.json() == {"readUpTo": 4, "latestSeq": 6, "unread": 2}
    body = service.notifications(r.customer)
    # Read means arrived (seq) no later than the marker; the three topics arrive interleaved.
    assert [n["read"] for n in body["notifications"]] == [n["seq"] <= 4 for n in body["notifications"]]
    assert sum(n["read"] for n in body["notifications"]) == 4
    beyond = service.http.put(f"{service.url}/api/notifications/read-marker", json={"seq": 7}, headers=auth)
    assert beyond.status_code == 422
    assert beyond.headers["content-type"] == "application/problem+json"
    assert beyond.json()["type"] == "/problems/invalid-value"
    for bad in [b"{", b'{"seq":"4"}', b'{"seq":-1}', b"[4]", b'{"seq":true}']:
        response = service.http.put(f"{service.url}/api/notifications/read-marker", content=bad,
                                    headers={**auth, "content-type": "application/json"})
        assert response.status_code == 400, bad
        assert response.headers["content-type"] == "application/problem+json"
    assert service.notifications(r.customer)["readUpTo"] == 4  # nothing changed


def test_requests_without_a_valid_token_are_refused_as_problems(shared_service):
    service = shared_service
    url = f"{service.url}/api/notifications"
    missing = service.http.get(url)
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"] == "Bearer"
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    forged = service.keys.token("alice", key=Ed25519PrivateKey.generate())
    assert service.http.get(url, headers={"authorization": f"Bearer {forged}"}).status_code == 401
    other_audience = service.keys.token("alice", audience="elsewhere")
    assert service.http.get(url, headers={"authorization": f"Bearer {other_audience}"}).status_code == 401
    from datetime import timedelta

    expired = service.keys.token("alice", expires_in=timedelta(minutes=-5))
    assert service.http.get(url, headers={"authorization": f"Bearer {expired}"}).status_code == 401
    machine = service.keys.token("seat-service", roles=("service",))
    assert service.http.get(url, headers={"authorization": f"Bearer {machine}"}).status_code == 403
    assert service.http.get(f"{service.url}/api/nothing-here").json()["type"] == "/problems/not-found"


def test_a_redelivered_event_and_a_restart_notify_once(service):
    r = Reservation("carol")
    reserved, confirmed = r.reserved(), r.confirmed()
    service.publish(reserved, reserved, confirmed)
    service.wait_for("carol", 2)
    assert service.stop() == 0  # SIGTERM: offsets committed, group left

    # Published while the service is down; then a copy of an old one (a producer retry).
    service.publish(r.payment_completed(), reserved)
    service.start()
    body = service.wait_for("carol", 3)
    assert kinds(body) == ["payment.completed", "reservation.confirmed", "reservation.requested"]
    # Everything consumed before the restart stayed consumed: nothing came twice.
    assert sorted(n["seq"] for n in body["notifications"]) == [1, 2, 3]
    metrics = service.http.get(f"{service.url}/metrics").text
    assert 'consumer_events_total{outcome="duplicate"} 1.0' in metrics, metrics


def test_on_sigterm_with_a_drain_it_reports_not_ready_and_serves_until_the_drain_ends(service):
    service.stop()
    service.extra_env["SHUTDOWN_DRAIN_MS"] = "3000"
    service.start()
    r = Reservation("dora")
    service.publish(r.reserved())
    service.wait_for("dora", 1)

    service.process.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    ready = service.http.get(f"{service.url}/health/ready")
    assert ready.status_code == 503
    assert ready.json()["detail"] == "shutting down"
    for _ in range(5):  # still serving, from the same pooled connection
        assert len(service.notifications("dora")["notifications"]) == 1
        time.sleep(0.2)
    assert service.process.poll() is None, "still running 1.5 s into a 3 s drain"
    assert service.process.wait(30) == 0
    service.process = None


def test_events_that_do_not_match_their_schema_are_dead_lettered_and_the_partition_moves_on(service):
    r = Reservation("dave")
    renamed = r.seat_registered()
    renamed["data"]["passCode"] = renamed["data"].pop("entryPassCode")  # a producer renamed a field
    service.publish(r.reserved())
    service.publish(renamed)
    service.publish(raw=b"{not json", topic=PAYMENT)
    service.publish(r.refunded())  # after the poison, on the same partition of another topic
    body = service.wait_for("dave", 2)
    assert kinds(body) == ["payment.refunded", "reservation.requested"]

    dead = service.read_topic("studycafe.dlq.notification.v1", 2)
    assert len(dead) == 2
    errors = sorted(dict(m.headers())["dlq-error"].decode() for m in dead)
    assert any("does not match its schema" in e and "entryPassCode" in e for e in errors), errors
    assert any("not JSON" in e for e in errors), errors
    assert {dict(m.headers())["dlq-consumer-group"] for m in dead} == {b"notification"}
    # The dead-lettered bytes are the original ones.
    assert json.loads(next(m.value() for m in dead if m.key() != b"junk"))["data"]["passCode"]


def test_an_unknown_event_type_is_skipped_not_dead_lettered(shared_service):
    service = shared_service
    r = Reservation("erin")
    newer = r.reserved()
    newer["type"], newer["version"] = "SeatTeleported", 1
    service.producer.produce(service.prefix + SEAT, key=r.id.encode(), value=json.dumps(newer).encode())
    service.publish(r.reserved())
    service.wait_for("erin", 1)
    metrics = service.http.get(f"{service.url}/metrics").text
    assert 'consumer_events_total{outcome="skipped"} 1.0' in metrics
    assert 'consumer_events_total{outcome="dead_lettered"}' not in metrics


def test_the_live_stream_pushes_the_callers_notifications(shared_service):
    service = shared_service
    r = Reservation("frank")
    token = service.keys.token("frank")
    received: list[dict] = []
    opened = threading.Event()

    def listen() -> None:
        with httpx.Client(timeout=60, trust_env=False) as client, client.stream(
            "GET", f"{service.url}/api/notifications/stream",
            headers={"authorization": f"Bearer {token}", "accept": "text/event-stream", "accept-language": "en"},
        ) as response:
            assert response.status_code == 200
            event = None
            for line in response.iter_lines():
                opened.set()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: ") and event == "notification":
                    received.append(json.loads(line[6:]))
                    if len(received) == 2:
                        return

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    eventually("the stream is open", opened.is_set)
    service.publish(r.reserved(), r.rejected("the cafe is closed that day"))
    thread.join(60)
    assert [n["kind"] for n in received] == ["reservation.requested", "reservation.rejected"]
    assert received[1]["body"] == "The cafe turned down your booking of seat A-01. Reason: the cafe is closed that day"

    # A reconnecting client names the last one it saw and gets what it missed.
    with httpx.Client(timeout=30, trust_env=False) as client, client.stream(
        "GET", f"{service.url}/api/notifications/stream",
        headers={"authorization": f"Bearer {token}", "last-event-id": "1"},
    ) as response:
        for line in response.iter_lines():
            if line.startswith("data: "):
                assert json.loads(line[6:])["kind"] == "reservation.rejected"
                break
