-- Orders: every fen is an integer, every timestamp Unix seconds.
CREATE TABLE pay_orders (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_trade_no TEXT NOT NULL UNIQUE,
    user_id BIGINT NOT NULL,
    appid TEXT NOT NULL,
    openid TEXT NOT NULL,
    trade_type TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    description TEXT NOT NULL,
    status TEXT NOT NULL,
    prepay_id TEXT,
    -- code_url (NATIVE) or mweb_url (MWEB) as WeChat returned it.
    pay_url TEXT,
    redirect_url TEXT,
    transaction_id TEXT,
    client_ip TEXT NOT NULL,
    idempotency_key TEXT,
    request_hash TEXT,
    expires_at BIGINT NOT NULL,
    paid_at BIGINT,
    -- When reconciliation next asks WeChat about a NOTPAY order.
    next_check_at BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (user_id, idempotency_key)
);
CREATE INDEX pay_orders_due ON pay_orders (status, next_check_at);

-- Every payment notification as received; rows are only ever inserted.
CREATE TABLE pay_notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_trade_no TEXT,
    raw_body TEXT NOT NULL,
    sign_verified BOOLEAN NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE INDEX pay_notifications_order ON pay_notifications (out_trade_no);

-- Every status change of an order; rows are only ever inserted.
CREATE TABLE pay_order_transitions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    out_trade_no TEXT NOT NULL,
    from_status TEXT NOT NULL,
    to_status TEXT NOT NULL,
    source TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX pay_order_transitions_order ON pay_order_transitions (out_trade_no);
