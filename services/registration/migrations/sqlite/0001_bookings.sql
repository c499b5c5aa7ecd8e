-- Bookings (the cafe's side of each reservation) with their registrations, and the cafe's
-- auto-confirm policy. Timestamps are unix milliseconds (UTC).
CREATE TABLE bookings (
    reservation_id  TEXT PRIMARY KEY,
    seat_id         TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    starts_at       INTEGER NOT NULL,
    ends_at         INTEGER NOT NULL,
    price           INTEGER NOT NULL CHECK (price >= 0),
    hold_expires_at INTEGER NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'REGISTERED', 'CANCELLED')),
    decided_by      TEXT,
    reason          TEXT,
    registration_id TEXT UNIQUE,
    entry_pass_code TEXT UNIQUE,
    registered_at   INTEGER,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    version         INTEGER NOT NULL,
    CHECK (ends_at > starts_at),
    -- A registration is all there or not at all, and a REGISTERED booking has one.
    CHECK ((registration_id IS NULL) = (entry_pass_code IS NULL)
       AND (registration_id IS NULL) = (registered_at IS NULL)),
    CHECK (status <> 'REGISTERED' OR registration_id IS NOT NULL)
);

-- The admin's list: newest first, all or by status.
CREATE INDEX bookings_newest ON bookings (created_at DESC, reservation_id DESC);
CREATE INDEX bookings_by_status ON bookings (status, created_at DESC, reservation_id DESC);

-- A closed booking never changes again, whatever the code above does: a late confirmation
-- must not resurrect a rejected or cancelled booking.
CREATE TRIGGER bookings_closed_stay_closed
BEFORE UPDATE OF status ON bookings
WHEN OLD.status IN ('REJECTED', 'CANCELLED') AND NEW.status <> OLD.status
BEGIN
    SELECT RAISE(ABORT, 'a closed booking cannot change');
END;

CREATE TABLE auto_confirm_policies (
    cafe_id      TEXT PRIMARY KEY,
    auto_confirm INTEGER NOT NULL,
    -- NULL while the row is the deployment's initial setting; an admin's id once one set it.
    updated_by   TEXT,
    updated_at   INTEGER
);
