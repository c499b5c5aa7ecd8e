-- The seat catalogue (loaded from the catalogue file at start-up) and reservations.
CREATE TABLE seats (
    seat_id      TEXT PRIMARY KEY,
    zone         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    hourly_price INTEGER NOT NULL CHECK (hourly_price >= 0),
    enabled      INTEGER NOT NULL,
    position     INTEGER NOT NULL
);

CREATE TABLE reservations (
    reservation_id       TEXT PRIMARY KEY,
    seat_id              TEXT NOT NULL REFERENCES seats (seat_id),
    customer_id          TEXT NOT NULL,
    starts_at            INTEGER NOT NULL, -- unix seconds
    ends_at              INTEGER NOT NULL,
    hours                INTEGER NOT NULL,
    price                INTEGER NOT NULL,
    status               TEXT NOT NULL,
    live                 INTEGER NOT NULL,
    status_reason        TEXT,
    hold_expires_at      INTEGER NOT NULL,
    payment_token        TEXT NOT NULL,
    payment_attempts     INTEGER NOT NULL DEFAULT 0,
    next_payment_at      INTEGER,
    payment_id           TEXT,
    registration_id      TEXT,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    version              INTEGER NOT NULL,
    CHECK (ends_at > starts_at)
);

CREATE INDEX reservations_live_by_seat ON reservations (seat_id, starts_at) WHERE live = 1;
CREATE INDEX reservations_by_customer ON reservations (customer_id, created_at);
CREATE INDEX reservations_hold ON reservations (hold_expires_at) WHERE status IN ('REQUESTED', 'CONFIRMED');
CREATE INDEX reservations_ending ON reservations (ends_at) WHERE status = 'REGISTERED';
CREATE INDEX reservations_payment_due ON reservations (next_payment_at) WHERE status = 'CONFIRMED';

-- The database itself refuses overlapping live reservations of one seat, whatever the code
-- above it does. A reservation only ever leaves the live states, so guarding inserts suffices.
CREATE TRIGGER reservations_no_overlap
BEFORE INSERT ON reservations
WHEN NEW.live = 1
BEGIN
    SELECT RAISE(ABORT, 'seat_taken')
    WHERE EXISTS (
        SELECT 1 FROM reservations r
        WHERE r.seat_id = NEW.seat_id
          AND r.live = 1
          AND r.starts_at < NEW.ends_at
          AND NEW.starts_at < r.ends_at
    );
END;

CREATE TRIGGER reservations_never_relive
BEFORE UPDATE OF live ON reservations
WHEN OLD.live = 0 AND NEW.live = 1
BEGIN
    SELECT RAISE(ABORT, 'a finished reservation cannot become live again');
END;

CREATE TABLE idempotency_keys (
    customer_id     TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    reservation_id  TEXT NOT NULL REFERENCES reservations (reservation_id),
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (customer_id, idempotency_key)
);
