-- Payments (one per reservation), refunds (at most one per payment), the reservations seat
-- reported closed, and the charge claim that keeps replicas from asking the provider twice.
-- Timestamps are unix milliseconds (as in the SQLite schema: one row decoding for both).
-- InnoDB throughout: row locks, foreign keys, crash-safe commits.

CREATE TABLE payments (
    payment_id     CHAR(36)     NOT NULL PRIMARY KEY,
    -- The idempotency key of the payment API: one payment per reservation, whatever retries.
    reservation_id CHAR(36)     NOT NULL,
    customer_id    VARCHAR(128) NOT NULL,
    amount         BIGINT       NOT NULL,
    currency       VARCHAR(8)   NOT NULL,
    payment_token  VARCHAR(200) NOT NULL,
    status         VARCHAR(16)  NOT NULL,
    provider_ref   VARCHAR(255) NULL,
    decline_reason TEXT         NULL,
    attempts       BIGINT       NOT NULL DEFAULT 0,
    created_at     BIGINT       NOT NULL,
    updated_at     BIGINT       NOT NULL,
    version        BIGINT       NOT NULL,
    -- Which service instance may ask the card provider about this PENDING payment, until when.
    claim_holder   CHAR(36)     NULL,
    claimed_until  BIGINT       NULL,
    CONSTRAINT payments_one_per_reservation UNIQUE (reservation_id),
    CONSTRAINT payments_amount_positive CHECK (amount > 0),
    CONSTRAINT payments_status_known CHECK (status IN ('PENDING', 'COMPLETED', 'DECLINED')),
    CONSTRAINT payments_completed_has_ref CHECK (status <> 'COMPLETED' OR provider_ref IS NOT NULL)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- A settled payment never changes what it says: not its status, amount, owner or outcome.
-- (The claim columns and counters are bookkeeping; the code only touches PENDING rows anyway.)
CREATE TRIGGER payments_settled_once BEFORE UPDATE ON payments FOR EACH ROW
BEGIN
    IF OLD.status <> 'PENDING' AND (
        NEW.status <> OLD.status
        OR NEW.amount <> OLD.amount
        OR NEW.currency <> OLD.currency
        OR NEW.reservation_id <> OLD.reservation_id
        OR NEW.customer_id <> OLD.customer_id
        OR NOT (NEW.provider_ref <=> OLD.provider_ref)
        OR NOT (NEW.decline_reason <=> OLD.decline_reason)
    ) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a settled payment cannot change';
    END IF;
END;

CREATE TABLE refunds (
    refund_id       CHAR(36)     NOT NULL PRIMARY KEY,
    payment_id      CHAR(36)     NOT NULL,
    reservation_id  CHAR(36)     NOT NULL,
    charge_ref      VARCHAR(255) NOT NULL,
    amount          BIGINT       NOT NULL,
    currency        VARCHAR(8)   NOT NULL,
    status          VARCHAR(16)  NOT NULL,
    provider_ref    VARCHAR(255) NULL,
    attempts        BIGINT       NOT NULL DEFAULT 0,
    next_attempt_at BIGINT       NOT NULL,
    cause           TEXT         NOT NULL,
    created_at      BIGINT       NOT NULL,
    updated_at      BIGINT       NOT NULL,
    -- At most one refund per payment: the database refuses a second one.
    CONSTRAINT refunds_one_per_payment UNIQUE (payment_id),
    CONSTRAINT refunds_of_a_payment FOREIGN KEY (payment_id) REFERENCES payments (payment_id),
    CONSTRAINT refunds_amount_positive CHECK (amount > 0),
    CONSTRAINT refunds_status_known CHECK (status IN ('PENDING', 'COMPLETED')),
    INDEX refunds_due (status, next_attempt_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Only money that was taken is given back (a CHECK cannot look at another table).
CREATE TRIGGER refunds_only_completed_payments BEFORE INSERT ON refunds FOR EACH ROW
BEGIN
    IF NOT EXISTS (
        SELECT 1 FROM payments p WHERE p.payment_id = NEW.payment_id AND p.status = 'COMPLETED'
    ) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'only a completed payment can be refunded';
    END IF;
END;

-- A completed refund stays completed, with the provider's reference it got.
CREATE TRIGGER refunds_completed_once BEFORE UPDATE ON refunds FOR EACH ROW
BEGIN
    IF OLD.status = 'COMPLETED' AND (
        NEW.status <> OLD.status OR NOT (NEW.provider_ref <=> OLD.provider_ref)
    ) THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'a completed refund cannot change';
    END IF;
END;

CREATE TABLE reservation_closures (
    reservation_id CHAR(36)    NOT NULL PRIMARY KEY,
    reason         VARCHAR(32) NOT NULL,
    event_id       CHAR(36)    NOT NULL,
    closed_at      BIGINT      NOT NULL
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
