-- What 0001's status trigger does not cover yet (the MySQL schema has it from its first
-- migration): a settled payment keeps its amount, owner and outcome, and a completed refund
-- stays completed with the provider's reference it got. The code only ever updates PENDING
-- rows; these make the database refuse anything else too.
CREATE TRIGGER payments_settled_outcome_fixed
BEFORE UPDATE ON payments
WHEN OLD.status <> 'PENDING' AND (
    NEW.amount IS NOT OLD.amount
    OR NEW.currency IS NOT OLD.currency
    OR NEW.reservation_id IS NOT OLD.reservation_id
    OR NEW.customer_id IS NOT OLD.customer_id
    OR NEW.provider_ref IS NOT OLD.provider_ref
    OR NEW.decline_reason IS NOT OLD.decline_reason
)
BEGIN
    SELECT RAISE(ABORT, 'a settled payment cannot change');
END;

CREATE TRIGGER refunds_completed_once
BEFORE UPDATE ON refunds
WHEN OLD.status = 'COMPLETED' AND (
    NEW.status IS NOT OLD.status OR NEW.provider_ref IS NOT OLD.provider_ref
)
BEGIN
    SELECT RAISE(ABORT, 'a completed refund cannot change');
END;
