// The public API's shapes (PRODUCT.md and the README's API table), as the gateway serves them.

export interface Money {
  amount: number;
  currency: string;
}

export type SeatStatus = "FREE" | "HELD" | "OCCUPIED" | "DISABLED";

export type ReservationStatus =
  | "REQUESTED"
  | "CONFIRMED"
  | "PAID"
  | "REGISTERED"
  | "COMPLETED"
  | "REJECTED"
  | "PAYMENT_FAILED"
  | "EXPIRED"
  | "CANCELLED";

export const LIVE_STATUSES: readonly ReservationStatus[] = [
  "REQUESTED",
  "CONFIRMED",
  "PAID",
  "REGISTERED",
];

/** The saga's happy path, in order: what a progress bar shows. */
export const SAGA_STEPS: readonly ReservationStatus[] = [
  "REQUESTED",
  "CONFIRMED",
  "PAID",
  "REGISTERED",
];

export type BookingStatus = "PENDING" | "CONFIRMED" | "REJECTED" | "REGISTERED" | "CANCELLED";

export const BOOKING_STATUSES: readonly BookingStatus[] = [
  "PENDING",
  "CONFIRMED",
  "REGISTERED",
  "REJECTED",
  "CANCELLED",
];

/** `GET /api/seats`: one seat of the catalogue. */
export interface Seat {
  id: string;
  zone: string;
  kind: string;
  hourlyPrice: Money;
  enabled: boolean;
}

/** `GET /api/board`: one seat's status at the instant asked about. */
export interface BoardSeat {
  seatId: string;
  zone: string;
  kind: string;
  hourlyPrice: Money;
  status: SeatStatus;
  until?: string;
}

export interface Board {
  at: string;
  seats: BoardSeat[];
}

/** `GET /api/board/stream`'s `board-changed` data. */
export type BoardChange =
  | {
      seatId: string;
      reservationId: string;
      reservationStatus: ReservationStatus;
      startsAt: string;
      endsAt: string;
      occurredAt: string;
    }
  | { seatId: string; enabled: boolean };

/** `GET /api/reservations/{id}`: seat's authoritative state. */
export interface Reservation {
  reservationId: string;
  seatId: string;
  customerId: string;
  startsAt: string;
  endsAt: string;
  hours: number;
  price: Money;
  status: ReservationStatus;
  statusReason?: string;
  holdExpiresAt: string;
  paymentPending: boolean;
  paymentAttempts: number;
  paymentId?: string;
  registrationId?: string;
  createdAt: string;
  updatedAt: string;
}

/** `GET /api/my/reservations`: one entry of the caller's timeline (seat-view). */
export interface TimelineEntry {
  reservationId: string;
  seatId: string;
  startsAt: string;
  endsAt: string;
  hours: number;
  price: Money | null;
  status: ReservationStatus;
  holdExpiresAt: string | null;
  reason?: string;
  bookingDecision?: string;
  paymentStatus?: string;
  paymentId?: string;
  refundStatus?: string;
  refundAmount?: Money;
  registrationStatus?: string;
  registrationId?: string;
  entryPassCode?: string;
  createdAt: string;
  updatedAt: string;
}

/** `GET /api/admin/bookings`: one booking (registration). */
export interface Booking {
  reservationId: string;
  seatId: string;
  customerId: string;
  startsAt: string;
  endsAt: string;
  price: Money;
  status: BookingStatus;
  holdExpiresAt: string;
  decidedBy?: string;
  reason?: string;
  registrationId?: string;
  entryPassCode?: string;
  registeredAt?: string;
  createdAt: string;
  updatedAt: string;
}

export interface Policy {
  cafeId: string;
  autoConfirm: boolean;
  updatedBy?: string;
  updatedAt?: string;
}

export interface Refund {
  refundId: string;
  status: string;
  amount: Money;
  createdAt: string;
  updatedAt: string;
}

export interface Payment {
  paymentId: string;
  status: string;
  amount: Money;
  reason?: string;
  createdAt: string;
  updatedAt: string;
  refunds: Refund[];
}

export interface Payments {
  reservationId: string;
  payments: Payment[];
}

export interface TokenResponse {
  access_token: string;
  token_type: string;
  expires_in: number;
}

/** Whether nothing more is owed back: a reservation still live, or every completed payment of
 * a cancelled one refunded. */
export function refundsSettled(status: ReservationStatus | undefined, payments: Payments): boolean {
  return (
    status !== "CANCELLED" ||
    payments.payments.every(
      (payment) =>
        payment.status !== "COMPLETED" || payment.refunds.some((r) => r.status === "COMPLETED"),
    )
  );
}
