-- One row per Beijing-time day whose WeChat trade bill was compared with the
-- orders, refunds and notifications here; running a day again replaces it.
-- `result` is the JSON the admin route answers (every discrepancy listed).
CREATE TABLE pay_reconciliations (
    bill_date TEXT PRIMARY KEY,
    -- The API the bill was downloaded with ('v2' downloadbill, 'v3' tradebill).
    api TEXT NOT NULL CHECK (api IN ('v2', 'v3')),
    bill_rows BIGINT NOT NULL CHECK (bill_rows >= 0),
    matched BIGINT NOT NULL CHECK (matched >= 0),
    discrepancies BIGINT NOT NULL CHECK (discrepancies >= 0),
    result TEXT NOT NULL,
    reconciled_at BIGINT NOT NULL
);
