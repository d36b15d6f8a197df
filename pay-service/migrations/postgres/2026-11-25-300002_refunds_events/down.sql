DROP TABLE pay_events;
ALTER TABLE pay_notifications DROP COLUMN kind;
ALTER TABLE pay_order_transitions DROP COLUMN request_id;
DROP TABLE pay_refunds;
ALTER TABLE pay_orders DROP CONSTRAINT pay_orders_refunds_within_amount;
ALTER TABLE pay_orders DROP COLUMN refunded_fen;
ALTER TABLE pay_orders DROP COLUMN refund_reserved_fen;
