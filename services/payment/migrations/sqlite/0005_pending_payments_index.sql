-- The reconciliation round looks for PENDING payments by age (`stranded_payments`); settled
-- payments, nearly all of them, stay out of the index.
CREATE INDEX payments_pending ON payments (updated_at) WHERE status = 'PENDING';
