"""The file store on real files: what survives a restart, a torn write, a redelivery."""

import pytest

from notification.application import NotifyCustomers, Outcome
from notification.domain.model import CustomerId
from notification.outbound.delivery import OutboxFileDelivery
from notification.outbound.filestore import FileStore, file_name

from events import Reservation
from test_policy import consumed


class Recorder:
    def __init__(self):
        self.seen = []

    def published(self, notification):
        self.seen.append(notification)


def open_app(root):
    store = FileStore(root)
    delivery = OutboxFileDelivery(root)
    return store, delivery, NotifyCustomers(store, delivery, [])


def test_a_redelivered_event_notifies_once_even_across_a_restart(tmp_path):
    store, delivery, app = open_app(tmp_path)
    r = Reservation("alice")
    reserved = consumed(r.reserved())
    assert app.handle(reserved) is Outcome.NOTIFIED
    assert app.handle(reserved) is Outcome.DUPLICATE
    store.close(); delivery.close()

    store, delivery, app = open_app(tmp_path)
    assert app.handle(reserved) is Outcome.DUPLICATE
    assert [n.seq for n in store.notifications_of(CustomerId("alice"))] == [1]
    deliveries = (tmp_path / "outbox" / "deliveries.jsonl").read_text().splitlines()
    assert len(deliveries) == 1


def test_a_crash_after_the_notification_but_before_the_processed_mark_does_not_duplicate(tmp_path):
    store, delivery, app = open_app(tmp_path)
    r = Reservation("alice")
    reserved = consumed(r.reserved())
    app.handle(reserved)
    # Simulate the crash: the processed record never reached the disk.
    (tmp_path / "processed.jsonl").write_text("")
    store.close(); delivery.close()
    store, delivery, app = open_app(tmp_path)
    assert app.handle(reserved) is Outcome.NOTIFIED  # applied again...
    assert len(store.notifications_of(CustomerId("alice"))) == 1  # ...but stored once
    assert len((tmp_path / "outbox" / "deliveries.jsonl").read_text().splitlines()) == 1


def test_a_torn_last_line_is_cut_off_at_start_up(tmp_path):
    store, delivery, app = open_app(tmp_path)
    r = Reservation("alice")
    app.handle(consumed(r.reserved()))
    app.handle(consumed(r.confirmed()))
    store.close(); delivery.close()
    path = tmp_path / "customers" / f"{file_name(CustomerId('alice'))}.jsonl"
    whole = path.read_bytes()
    with path.open("ab") as f:
        f.write(b'{"seq":3,"eventId":"torn')  # the power went out mid-append
    store, delivery, app = open_app(tmp_path)
    assert [n.seq for n in store.notifications_of(CustomerId("alice"))] == [1, 2]
    assert path.read_bytes() == whole
    app.handle(consumed(r.seat_registered()))
    assert [n.seq for n in store.notifications_of(CustomerId("alice"))] == [1, 2, 3]


def test_events_that_arrive_before_their_customer_is_known_wait_for_seat_reserved(tmp_path):
    store, delivery, app = open_app(tmp_path)
    recorder = Recorder()
    app.subscribe(recorder)
    r = Reservation("bob")
    events = r.whole_saga()
    payment = consumed(events[3])  # PaymentCompleted, read off its topic before the seat topic
    assert app.handle(payment) is Outcome.PARKED
    assert store.notifications_of(CustomerId("bob")) == []
    store.close(); delivery.close()
    store, delivery, app = open_app(tmp_path)  # parked events survive a restart
    app.subscribe(recorder)
    assert app.handle(consumed(events[0])) is Outcome.NOTIFIED
    kinds = sorted(n.kind.value for n in store.notifications_of(CustomerId("bob")))
    assert kinds == ["payment.completed", "reservation.requested"]
    assert {n.kind.value for n in recorder.seen} == {"payment.completed", "reservation.requested"}


def test_the_read_marker_moves_forward_only_and_survives_a_restart(tmp_path):
    store, delivery, app = open_app(tmp_path)
    alice = CustomerId("alice")
    assert store.read_marker(alice) == 0
    assert store.move_read_marker(alice, 2) == 2
    assert store.move_read_marker(alice, 1) == 2
    store.close(); delivery.close()
    store = FileStore(tmp_path)
    assert store.read_marker(alice) == 2
    assert not list((tmp_path / "read-markers").glob(".*tmp"))


def test_customer_ids_that_are_not_safe_file_names_get_a_hashed_file(tmp_path):
    store, delivery, app = open_app(tmp_path)
    r = Reservation("../../etc/passwd")
    with pytest.raises(ValueError):
        app.handle(consumed(r.reserved()))  # not a customer id at all: rejected (dead-lettered)
    r = Reservation("kim@cafe.example")
    app.handle(consumed(r.reserved()))
    names = [p.name for p in (tmp_path / "customers").iterdir()]
    assert names == [f"{file_name(CustomerId('kim@cafe.example'))}.jsonl"]
    assert names[0].startswith("h-")
