"""Which events a customer hears about, and what they are told, in Korean and English.

The seat service's reservation events carry the customer (`customerId`); the registration and
payment events carry only the reservation id. So the customer of a reservation is learnt from
the seat events and remembered; a registration or payment event that arrives before any seat
event of its reservation (three topics are read side by side) waits until one does.

One source per fact, so a customer hears each thing once: the reservation's own transitions
come from seat, the money from payment (what was charged, what was refunded), the entry pass
from registration. Events that repeat a fact (`ReservationPaid`, `ReservationRegistered`,
`BookingConfirmed`, …) or concern no customer (`SeatDefined`) notify nobody.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from .model import Consumed, CustomerId, Kind, Message, Notification, ReservationId

# Korea has no daylight saving time: a fixed offset needs no time zone database.
KST = timezone(timedelta(hours=9), "KST")

# Seat's reservation lifecycle events: each carries the reservation reference with the customer.
SEAT_RESERVATION_EVENTS = frozenset(
    {
        "SeatReserved",
        "ReservationConfirmed",
        "ReservationRejected",
        "ReservationPaid",
        "ReservationPaymentFailed",
        "ReservationRegistered",
        "ReservationCancelled",
        "ReservationExpired",
        "ReservationCompleted",
    }
)

# Events of the other contexts that concern one reservation (by `data.reservationId`).
RESERVATION_EVENTS = frozenset(
    {
        "BookingConfirmed",
        "BookingRejected",
        "SeatRegistered",
        "RegistrationCancelled",
        "PaymentCompleted",
        "PaymentDeclined",
        "PaymentRefunded",
    }
)

NOTIFYING = {
    "SeatReserved": Kind.REQUESTED,
    "ReservationConfirmed": Kind.CONFIRMED,
    "ReservationRejected": Kind.REJECTED,
    "PaymentCompleted": Kind.PAID,
    "SeatRegistered": Kind.REGISTERED,
    "ReservationPaymentFailed": Kind.PAYMENT_FAILED,
    "ReservationExpired": Kind.EXPIRED,
    "ReservationCancelled": Kind.CANCELLED,
    "PaymentRefunded": Kind.REFUNDED,
}


def owner(event: Consumed) -> tuple[ReservationId, CustomerId] | None:
    """The reservation and its customer, when the event names both (seat's events)."""
    if event.event_type not in SEAT_RESERVATION_EVENTS:
        return None
    return (
        ReservationId.parse(event.data["reservationId"]),
        CustomerId.parse(event.data["customerId"]),
    )


def reservation_of(event: Consumed) -> ReservationId | None:
    """The reservation an event concerns; None for events about no reservation."""
    if event.event_type in SEAT_RESERVATION_EVENTS or event.event_type in RESERVATION_EVENTS:
        return ReservationId.parse(event.data["reservationId"])
    return None


def notifies(event: Consumed) -> bool:
    return event.event_type in NOTIFYING


def _when(raw: str) -> str:
    return datetime.fromisoformat(raw).astimezone(KST).strftime("%Y-%m-%d %H:%M")


def _window(data: dict[str, Any]) -> str:
    start = datetime.fromisoformat(data["startsAt"]).astimezone(KST)
    end = datetime.fromisoformat(data["endsAt"]).astimezone(KST)
    same_day = start.date() == end.date()
    return f"{start:%Y-%m-%d %H:%M}–{end:%H:%M}" if same_day else (
        f"{start:%Y-%m-%d %H:%M}–{end:%Y-%m-%d %H:%M}"
    )


def _won(money: dict[str, Any]) -> tuple[str, str]:
    amount = int(money["amount"])
    return f"{amount:,}원", f"KRW {amount:,}"


def _texts(event: Consumed) -> tuple[Kind, Message, Message, dict[str, Any]]:
    data = event.data
    kind = NOTIFYING[event.event_type]
    seat = data.get("seatId", "")
    if kind is Kind.REQUESTED:
        window = _window(data)
        ko_price, en_price = _won(data["price"])
        return (
            kind,
            Message(
                "예약 요청 접수",
                f"{seat} 좌석 {window} (KST) 예약 요청이 접수되었습니다. 금액 {ko_price}. "
                f"카페의 확인을 기다리고 있어요 ({_when(data['holdExpiresAt'])}까지 결제되지 않으면 만료됩니다).",
            ),
            Message(
                "Reservation requested",
                f"Your request for seat {seat}, {window} (KST), {en_price}, was received and "
                f"awaits the cafe's confirmation (unpaid by {_when(data['holdExpiresAt'])} KST it expires).",
            ),
            {"seatId": seat, "startsAt": data["startsAt"], "endsAt": data["endsAt"],
             "price": data["price"]},
        )
    if kind is Kind.CONFIRMED:
        window = _window(data)
        return (
            kind,
            Message("예약 확정", f"카페가 {seat} 좌석 {window} (KST) 예약을 확정했습니다. 결제를 진행합니다."),
            Message(
                "Reservation confirmed",
                f"The cafe confirmed seat {seat} for {window} (KST). Your payment is being taken.",
            ),
            {"seatId": seat, "startsAt": data["startsAt"], "endsAt": data["endsAt"]},
        )
    if kind is Kind.REJECTED:
        reason = data["reason"]
        return (
            kind,
            Message("예약 거절", f"카페가 {seat} 좌석 예약을 거절했습니다. 사유: {reason}"),
            Message("Reservation rejected", f"The cafe turned down your booking of seat {seat}. Reason: {reason}"),
            {"seatId": seat, "reason": reason},
        )
    if kind is Kind.PAID:
        ko, en = _won(data["amount"])
        return (
            kind,
            Message("결제 완료", f"{ko}이 결제되었습니다."),
            Message("Payment completed", f"You were charged {en}."),
            {"paymentId": data["paymentId"], "amount": data["amount"]},
        )
    if kind is Kind.REGISTERED:
        window = _window(data)
        code = data["entryPassCode"]
        return (
            kind,
            Message(
                "이용 등록 완료",
                f"{seat} 좌석 {window} (KST) 이용이 등록되었습니다. 입장 코드: {code}",
            ),
            Message(
                "You're registered",
                f"Seat {seat} is yours for {window} (KST). Entry pass code: {code}",
            ),
            {"seatId": seat, "startsAt": data["startsAt"], "endsAt": data["endsAt"],
             "entryPassCode": code, "registrationId": data["registrationId"]},
        )
    if kind is Kind.PAYMENT_FAILED:
        reason = data["reason"]
        return (
            kind,
            Message("결제 실패", f"결제가 되지 않아 {seat} 좌석 예약이 취소되었습니다. 사유: {reason}"),
            Message(
                "Payment failed",
                f"Your payment did not go through, so seat {seat} was released. Reason: {reason}",
            ),
            {"seatId": seat, "reason": reason},
        )
    if kind is Kind.EXPIRED:
        return (
            kind,
            Message("예약 만료", f"결제 기한이 지나 {seat} 좌석 예약이 만료되었습니다."),
            Message("Reservation expired", f"Your booking of seat {seat} was not paid in time and has expired."),
            {"seatId": seat, "expiredIn": data["expiredIn"]},
        )
    if kind is Kind.CANCELLED:
        by_customer = data["cancelledBy"] == "customer"
        ko_who, en_who = ("고객님의 요청으로", "at your request") if by_customer else (
            "카페에 의해", "by the cafe"
        )
        ko_refund = " 결제하신 금액은 환불됩니다." if data["wasPaid"] else ""
        en_refund = " Your payment will be refunded." if data["wasPaid"] else ""
        return (
            kind,
            Message("예약 취소", f"{seat} 좌석 예약이 {ko_who} 취소되었습니다.{ko_refund}"),
            Message("Reservation cancelled", f"Your booking of seat {seat} was cancelled {en_who}.{en_refund}"),
            {"seatId": seat, "cancelledBy": data["cancelledBy"], "wasPaid": data["wasPaid"]},
        )
    # Kind.REFUNDED
    ko, en = _won(data["amount"])
    return (
        kind,
        Message("환불 완료", f"{ko}이 환불되었습니다."),
        Message("Refund completed", f"{en} was refunded to you."),
        {"refundId": data["refundId"], "paymentId": data["paymentId"], "amount": data["amount"]},
    )


def notification_for(event: Consumed, customer: CustomerId) -> Notification | None:
    """What `customer` is told about `event`, or None when it tells them nothing."""
    if not notifies(event):
        return None
    reservation = reservation_of(event)
    if reservation is None:
        return None
    kind, ko, en, details = _texts(event)
    return Notification(
        event_id=event.event_id,
        customer_id=customer,
        reservation_id=reservation,
        kind=kind,
        occurred_at=event.occurred_at,
        messages={"ko": ko, "en": en},
        details=details,
    )
