-- The operator console's order list (GET /api/pay/admin/orders): newest
-- first, paged by keyset on (created_at, id), so that any page is an index
-- range scan however many orders there are, plain or filtered by status;
-- and the search by WeChat's transaction id (out_trade_no is UNIQUE already).
CREATE INDEX pay_orders_newest ON pay_orders (created_at DESC, id DESC);
CREATE INDEX pay_orders_status_newest ON pay_orders (status, created_at DESC, id DESC);
CREATE INDEX pay_orders_transaction ON pay_orders (transaction_id);
