DROP INDEX pay_orders_paid;
