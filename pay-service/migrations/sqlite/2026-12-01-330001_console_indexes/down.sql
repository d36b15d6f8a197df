DROP INDEX pay_orders_transaction;
DROP INDEX pay_orders_status_newest;
DROP INDEX pay_orders_newest;
