-- The read side's materialized views. Every one of them can be thrown away and rebuilt by
-- replaying the topics (`seat-view-service --rebuild`). Instants are unix microseconds (UTC).

-- Which generation of the views this is (its consumer group is derived from it).
CREATE TABLE view_meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO view_meta (key, value) VALUES ('generation', 1);

-- The seat catalogue, from SeatDefined (the latest definition of a seat wins).
CREATE TABLE board_seats (
    seat_id      TEXT PRIMARY KEY,
    zone         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    hourly_price INTEGER NOT NULL CHECK (hourly_price >= 0),
    enabled      INTEGER NOT NULL
);

-- Reservations as the seat topic tells them (authoritative status).
CREATE TABLE view_reservations (
    reservation_id  TEXT PRIMARY KEY,
    seat_id         TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    hours           INTEGER NOT NULL,
    price           INTEGER,
    hold_expires_at INTEGER,
    status          TEXT NOT NULL,
    reason          TEXT,
    payment_id      TEXT,
    registration_id TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    CHECK (ends_at > starts_at)
);

-- A customer's timeline, newest first.
CREATE INDEX view_reservations_by_customer
    ON view_reservations (customer_id, created_at DESC, reservation_id DESC);
-- The board: reservations that can show on it, by window.
CREATE INDEX view_reservations_on_board
    ON view_reservations (starts_at, ends_at)
    WHERE status IN ('REQUESTED', 'CONFIRMED', 'PAID', 'REGISTERED', 'COMPLETED');

-- What registration and payment said about a reservation, kept apart from the seat topic's
-- part because the topics are not ordered with each other.
CREATE TABLE view_reservation_details (
    reservation_id      TEXT PRIMARY KEY,
    booking             TEXT,
    registration_status TEXT,
    registration_id     TEXT,
    entry_pass_code     TEXT,
    payment_status      TEXT,
    payment_id          TEXT,
    refund_id           TEXT,
    refund_amount       INTEGER,
    updated_at          INTEGER NOT NULL
);
