"""What customers are told, in both languages, for every event of a reservation."""

from datetime import datetime

from events import Reservation
from notification.domain import policy
from notification.domain.model import Consumed, CustomerId, Kind


def consumed(envelope: dict) -> Consumed:
    occurred_at = datetime.fromisoformat(envelope["occurredAt"].replace("Z", "+00:00"))
    return Consumed.from_envelope(envelope, occurred_at, "t")


def test_each_fact_of_the_saga_is_told_once_from_its_own_source():
    r = Reservation("alice")
    kinds = [
        n.kind
        for e in r.whole_saga()
        if (n := policy.notification_for(consumed(e), CustomerId("alice"))) is not None
    ]
    assert kinds == [
        Kind.REQUESTED, Kind.CONFIRMED, Kind.PAID, Kind.REGISTERED, Kind.CANCELLED, Kind.REFUNDED,
    ]


def test_messages_carry_the_reason_the_entry_pass_and_the_amount_in_korean_and_english():
    r = Reservation("alice", seat="B-07")
    alice = CustomerId("alice")
    registered = policy.notification_for(consumed(r.seat_registered("9911-2233")), alice)
    assert "9911-2233" in registered.messages["ko"].body
    assert "입장 코드" in registered.messages["ko"].body
    assert "Entry pass code: 9911-2233" in registered.messages["en"].body
    assert registered.details["entryPassCode"] == "9911-2233"

    rejected = policy.notification_for(consumed(r.rejected("no food allowed")), alice)
    assert rejected.kind is Kind.REJECTED
    assert "사유: no food allowed" in rejected.messages["ko"].body
    assert "Reason: no food allowed" in rejected.messages["en"].body

    paid = policy.notification_for(consumed(r.payment_completed()), alice)
    assert paid.messages["ko"].body == "6,000원이 결제되었습니다."
    assert paid.messages["en"].body == "You were charged KRW 6,000."

    failed = policy.notification_for(consumed(r.payment_failed("insufficient funds")), alice)
    assert failed.kind is Kind.PAYMENT_FAILED and "insufficient funds" in failed.messages["en"].body
    expired = policy.notification_for(consumed(r.expired()), alice)
    assert expired.kind is Kind.EXPIRED and "만료" in expired.messages["ko"].body
    # Times are the cafe's (KST): 1 day ahead on the hour, UTC+9.
    confirmed = policy.notification_for(consumed(r.confirmed()), alice)
    assert r.starts.astimezone(policy.KST).strftime("%H:%M") in confirmed.messages["en"].body


def test_events_about_no_customer_or_repeating_a_fact_notify_nobody():
    r = Reservation("alice")
    alice = CustomerId("alice")
    for envelope in [r.booking_confirmed(), r.paid(), r.registered()]:
        assert policy.notification_for(consumed(envelope), alice) is None
    assert policy.owner(consumed(r.paid())) is not None  # but it still names the customer
    assert policy.owner(consumed(r.payment_completed())) is None
