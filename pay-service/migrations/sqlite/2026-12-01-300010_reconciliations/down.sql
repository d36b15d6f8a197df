DROP TABLE pay_reconciliations;
