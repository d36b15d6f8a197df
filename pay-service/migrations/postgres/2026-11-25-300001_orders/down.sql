DROP TABLE pay_order_transitions;
DROP TABLE pay_notifications;
DROP TABLE pay_orders;
