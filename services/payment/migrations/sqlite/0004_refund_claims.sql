-- The refund claim: which service instance is asking the card provider for a PENDING refund,
-- and until when (unix milliseconds). Replicas sharing the database each run a refund worker;
-- a worker takes the claim before calling the provider, so one refund is never asked for by
-- two of them at once. Released when the outcome or the unanswered attempt is recorded.
ALTER TABLE refunds ADD COLUMN claim_holder TEXT;
ALTER TABLE refunds ADD COLUMN claimed_until INTEGER;
