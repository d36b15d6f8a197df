ALTER TABLE pay_orders DROP COLUMN api;
