ALTER TABLE pay_refunds DROP COLUMN operator;
DROP INDEX pay_notifications_refused;
ALTER TABLE pay_notifications DROP COLUMN body_size;
ALTER TABLE pay_notifications DROP COLUMN body_sha256;
