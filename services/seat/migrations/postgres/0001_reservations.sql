-- The seat catalogue (loaded from the catalogue file at start-up) and reservations.
--
-- sqlx runs this under its migration advisory lock, so replicas starting together apply it once.

-- For the `=` on seat_id inside the GiST exclusion constraint below (trusted; in template1).
CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE seats (
    seat_id      TEXT PRIMARY KEY,
    zone         TEXT NOT NULL,
    kind         TEXT NOT NULL,
    hourly_price BIGINT NOT NULL CHECK (hourly_price >= 0),
    enabled      BOOLEAN NOT NULL,
    position     INTEGER NOT NULL
);

CREATE TABLE reservations (
    reservation_id    UUID PRIMARY KEY,
    seat_id           TEXT NOT NULL REFERENCES seats (seat_id),
    customer_id       TEXT NOT NULL,
    starts_at         TIMESTAMPTZ NOT NULL,
    ends_at           TIMESTAMPTZ NOT NULL,
    hours             SMALLINT NOT NULL,
    price             BIGINT NOT NULL,
    status            TEXT NOT NULL,
    status_reason     TEXT,
    hold_expires_at   TIMESTAMPTZ NOT NULL,
    payment_token     TEXT NOT NULL,
    payment_attempts  INTEGER NOT NULL DEFAULT 0,
    next_payment_at   TIMESTAMPTZ,
    payment_id        TEXT,
    registration_id   TEXT,
    created_at        TIMESTAMPTZ NOT NULL,
    updated_at        TIMESTAMPTZ NOT NULL,
    version           BIGINT NOT NULL,
    -- A timer sweep's short claim on the row (not part of the aggregate): replicas' timers
    -- skip rows another replica is working on. Cleared by every save.
    swept_until       TIMESTAMPTZ,
    CHECK (ends_at > starts_at),
    -- The guarantee of the whole service: no two live reservations of one seat overlap, for
    -- every writer of this database (any number of replicas). Violations are SQLSTATE 23P01.
    CONSTRAINT reservations_no_overlap EXCLUDE USING gist (
        seat_id WITH =,
        tstzrange(starts_at, ends_at, '[)') WITH &&
    ) WHERE (status IN ('REQUESTED', 'CONFIRMED', 'PAID', 'REGISTERED'))
);

CREATE INDEX reservations_by_customer ON reservations (customer_id, created_at);
CREATE INDEX reservations_hold ON reservations (hold_expires_at) WHERE status IN ('REQUESTED', 'CONFIRMED');
CREATE INDEX reservations_ending ON reservations (ends_at) WHERE status = 'REGISTERED';
CREATE INDEX reservations_payment_due ON reservations (next_payment_at) WHERE status = 'CONFIRMED';

-- A finished reservation never becomes live again: its seat may have been sold since (the
-- constraint would refuse an overlap, but a resurrection is a bug in itself, as in SQLite).
CREATE FUNCTION reservations_never_relive() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF OLD.status NOT IN ('REQUESTED', 'CONFIRMED', 'PAID', 'REGISTERED')
       AND NEW.status IN ('REQUESTED', 'CONFIRMED', 'PAID', 'REGISTERED') THEN
        RAISE EXCEPTION 'a finished reservation cannot become live again';
    END IF;
    RETURN NEW;
END;
$$;

CREATE TRIGGER reservations_never_relive
BEFORE UPDATE OF status ON reservations
FOR EACH ROW EXECUTE FUNCTION reservations_never_relive();

-- The key is inserted before its reservation (so a concurrent retry of the same request waits
-- on it and replays instead of racing for the seat): the reference is checked at commit.
CREATE TABLE idempotency_keys (
    customer_id     TEXT NOT NULL,
    idempotency_key TEXT NOT NULL,
    request_hash    TEXT NOT NULL,
    reservation_id  UUID NOT NULL REFERENCES reservations (reservation_id)
                        DEFERRABLE INITIALLY DEFERRED,
    created_at      TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (customer_id, idempotency_key)
);
