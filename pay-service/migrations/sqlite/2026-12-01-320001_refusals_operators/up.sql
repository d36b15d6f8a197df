-- Notifications refused before they verified (bad sign, not XML, not
-- decryptable) are no longer kept whole: raw_body holds at most a short
-- prefix, with the whole body's SHA-256 (hex) and size here. Only those rows
-- (sign_verified = false) are trimmed to REFUSED_NOTIFY_KEEP_ROWS and
-- REFUSED_NOTIFY_KEEP_DAYS; the index serves that trim.
ALTER TABLE pay_notifications ADD COLUMN body_sha256 TEXT;
ALTER TABLE pay_notifications ADD COLUMN body_size BIGINT;
CREATE INDEX pay_notifications_refused ON pay_notifications (sign_verified, id);

-- The admin operator (ADMIN_TOKENS name) who asked for a refund.
ALTER TABLE pay_refunds ADD COLUMN operator TEXT;
