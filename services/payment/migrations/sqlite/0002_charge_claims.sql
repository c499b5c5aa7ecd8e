-- The charge claim: which service instance is asking the card provider about a PENDING payment,
-- and until when (unix milliseconds). Replicas sharing the database take it before calling the
-- provider, so one payment is never asked for by two of them at once.
ALTER TABLE payments ADD COLUMN claim_holder TEXT;
ALTER TABLE payments ADD COLUMN claimed_until INTEGER;
