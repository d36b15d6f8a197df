-- Refunds: refund_reserved_fen is what refunds in flight or done hold of the
-- paid amount (reserved before WeChat is asked, released if it refuses);
-- refunded_fen is what WeChat has confirmed.
ALTER TABLE pay_orders ADD COLUMN refund_reserved_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pay_orders ADD COLUMN refunded_fen BIGINT NOT NULL DEFAULT 0;
ALTER TABLE pay_orders ADD CONSTRAINT pay_orders_refunds_within_amount
    CHECK (refunded_fen >= 0 AND refunded_fen <= refund_reserved_fen AND refund_reserved_fen <= amount_fen);

CREATE TABLE pay_refunds (
    id BIGSERIAL PRIMARY KEY,
    out_refund_no TEXT NOT NULL UNIQUE,
    out_trade_no TEXT NOT NULL,
    amount_fen BIGINT NOT NULL CHECK (amount_fen > 0),
    reason TEXT NOT NULL,
    -- PENDING (reserved, WeChat's answer unknown), PROCESSING (WeChat accepted),
    -- SUCCESS, FAILED (refused or closed by WeChat; reservation released).
    status TEXT NOT NULL,
    refund_id TEXT,
    error TEXT,
    request_id TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    succeeded_at BIGINT
);
CREATE INDEX pay_refunds_order ON pay_refunds (out_trade_no);
CREATE INDEX pay_refunds_open ON pay_refunds (status, updated_at);

-- Who changed an order's status: the request id, or a background pass's id.
ALTER TABLE pay_order_transitions ADD COLUMN request_id TEXT;

-- Payment notifications and refund notifications share one log.
ALTER TABLE pay_notifications ADD COLUMN kind TEXT NOT NULL DEFAULT 'payment';

-- The outbox of merchant events: written in the transaction that changes the
-- order, delivered by the dispatcher in id order per order.
CREATE TABLE pay_events (
    id BIGSERIAL PRIMARY KEY,
    out_trade_no TEXT NOT NULL,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    delivered BOOLEAN NOT NULL DEFAULT FALSE,
    attempts BIGINT NOT NULL DEFAULT 0,
    -- Unix milliseconds: retries back off in steps well under a second in tests.
    next_attempt_ms BIGINT NOT NULL,
    last_error TEXT,
    last_attempt_at BIGINT,
    delivered_at BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX pay_events_due ON pay_events (delivered, next_attempt_ms);
CREATE INDEX pay_events_order ON pay_events (out_trade_no, id);
