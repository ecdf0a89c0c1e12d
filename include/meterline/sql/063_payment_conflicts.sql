-- A payment state the processor's exports state more than one way (the same payment_id and
-- status with another invoice, amount or currency) is a mismatch of its own: stated both ways
-- in one load it is applied to no invoice; contradicting an earlier load, the earlier decision
-- stands and finance settles it (meterline.payments.load).
alter table billing.payment_mismatches drop constraint if exists payment_mismatches_reason_check;
alter table billing.payment_mismatches add constraint payment_mismatches_reason_check check (reason in (
    'unknown_invoice', 'currency', 'void_invoice', 'already_paid', 'overpaid', 'underpaid', 'refund',
    'conflicting_statements'));
