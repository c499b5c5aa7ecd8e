-- Payments (one per reservation), refunds (at most one per payment) and the reservations seat
-- reported closed. Timestamps are unix milliseconds.
CREATE TABLE payments (
    payment_id     TEXT PRIMARY KEY,
    -- The idempotency key of the payment API: one payment per reservation, whatever retries.
    reservation_id TEXT NOT NULL UNIQUE,
    customer_id    TEXT NOT NULL,
    amount         INTEGER NOT NULL CHECK (amount > 0),
    currency       TEXT NOT NULL,
    payment_token  TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('PENDING', 'COMPLETED', 'DECLINED')),
    provider_ref   TEXT,
    decline_reason TEXT,
    attempts       INTEGER NOT NULL DEFAULT 0,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    version        INTEGER NOT NULL,
    CHECK (status <> 'COMPLETED' OR provider_ref IS NOT NULL)
);

-- A settled payment stays settled, whatever the code above does.
CREATE TRIGGER payments_settled_once
BEFORE UPDATE OF status ON payments
WHEN OLD.status <> 'PENDING' AND NEW.status <> OLD.status
BEGIN
    SELECT RAISE(ABORT, 'a settled payment cannot change its status');
END;

CREATE TABLE refunds (
    refund_id       TEXT PRIMARY KEY,
    -- At most one refund per payment: the database refuses a second one.
    payment_id      TEXT NOT NULL UNIQUE REFERENCES payments (payment_id),
    reservation_id  TEXT NOT NULL,
    charge_ref      TEXT NOT NULL,
    amount          INTEGER NOT NULL CHECK (amount > 0),
    currency        TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('PENDING', 'COMPLETED')),
    provider_ref    TEXT,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER NOT NULL,
    cause           TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);

CREATE INDEX refunds_due ON refunds (next_attempt_at) WHERE status = 'PENDING';

-- Only money that was taken is given back.
CREATE TRIGGER refunds_only_completed_payments
BEFORE INSERT ON refunds
WHEN NOT EXISTS (
    SELECT 1 FROM payments p WHERE p.payment_id = NEW.payment_id AND p.status = 'COMPLETED'
)
BEGIN
    SELECT RAISE(ABORT, 'only a completed payment can be refunded');
END;

CREATE TABLE reservation_closures (
    reservation_id TEXT PRIMARY KEY,
    reason         TEXT NOT NULL,
    event_id       TEXT NOT NULL,
    closed_at      INTEGER NOT NULL
);
