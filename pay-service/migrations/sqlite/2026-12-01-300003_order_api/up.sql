-- The WeChat Pay API an order was created with ('v2' XML, 'v3' JSON): its
-- query, close, refunds and reconciliation keep using it after
-- PAY_API_VERSION changes. Orders made before this column existed are v2.
ALTER TABLE pay_orders ADD COLUMN api TEXT NOT NULL DEFAULT 'v2'
    CHECK (api IN ('v2', 'v3'));
