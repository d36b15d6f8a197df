-- The console's charts (GET /api/pay/admin/charts/…): payments counted per
-- Beijing hour or day of paid_at over a range. The index holds what the
-- count and the sum read, so a range is an index-only scan on PostgreSQL and
-- a covering-index scan on SQLite; without it every chart reads the table's
-- rows of the range. (Orders created per day are read from the console's
-- pay_orders_status_newest, which holds status and created_at.)
CREATE INDEX pay_orders_paid ON pay_orders (paid_at, status, amount_fen);
