-- Bookings (the cafe's side of each reservation) with their registrations, and the cafe's
-- auto-confirm policy. Same rules as the SQLite schema, in PostgreSQL's types.
CREATE TABLE bookings (
    reservation_id  UUID PRIMARY KEY,
    seat_id         TEXT NOT NULL,
    customer_id     TEXT NOT NULL,
    starts_at       TIMESTAMPTZ NOT NULL,
    ends_at         TIMESTAMPTZ NOT NULL,
    price           BIGINT NOT NULL CHECK (price >= 0),
    hold_expires_at TIMESTAMPTZ NOT NULL,
    status          TEXT NOT NULL
        CHECK (status IN ('PENDING', 'CONFIRMED', 'REJECTED', 'REGISTERED', 'CANCELLED')),
    decided_by      TEXT,
    reason          TEXT,
    -- Unique: an entry pass code opens one booking's seat, never two.
    registration_id TEXT UNIQUE,
    entry_pass_code TEXT UNIQUE,
    registered_at   TIMESTAMPTZ,
    created_at      TIMESTAMPTZ NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL,
    version         BIGINT NOT NULL,
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
CREATE FUNCTION bookings_closed_stay_closed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status IN ('REJECTED', 'CANCELLED') AND NEW.status <> OLD.status THEN
        RAISE EXCEPTION 'a closed booking cannot change';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER bookings_closed_stay_closed
BEFORE UPDATE OF status ON bookings
FOR EACH ROW EXECUTE FUNCTION bookings_closed_stay_closed();

CREATE TABLE auto_confirm_policies (
    cafe_id      TEXT PRIMARY KEY,
    auto_confirm BOOLEAN NOT NULL,
    -- NULL while the row is the deployment's initial setting; an admin's id once one set it.
    updated_by   TEXT,
    updated_at   TIMESTAMPTZ
);
