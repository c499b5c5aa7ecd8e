-- The reconciliation round looks for PENDING payments by age (`stranded_payments`).
CREATE INDEX payments_pending ON payments (status, updated_at);
