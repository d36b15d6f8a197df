//! Diesel's view of the tables in `migrations/`.

diesel::table! {
    pay_orders (id) {
        id -> BigInt,
        out_trade_no -> Text,
        user_id -> BigInt,
        appid -> Text,
        openid -> Text,
        trade_type -> Text,
        amount_fen -> BigInt,
        description -> Text,
        status -> Text,
        prepay_id -> Nullable<Text>,
        pay_url -> Nullable<Text>,
        redirect_url -> Nullable<Text>,
        transaction_id -> Nullable<Text>,
        client_ip -> Text,
        idempotency_key -> Nullable<Text>,
        request_hash -> Nullable<Text>,
        expires_at -> BigInt,
        paid_at -> Nullable<BigInt>,
        next_check_at -> BigInt,
        created_at -> BigInt,
        updated_at -> BigInt,
        refund_reserved_fen -> BigInt,
        refunded_fen -> BigInt,
        api -> Text,
    }
}

diesel::table! {
    pay_notifications (id) {
        id -> BigInt,
        out_trade_no -> Nullable<Text>,
        raw_body -> Text,
        sign_verified -> Bool,
        outcome -> Text,
        detail -> Text,
        received_at -> BigInt,
        kind -> Text,
        body_sha256 -> Nullable<Text>,
        body_size -> Nullable<BigInt>,
    }
}

diesel::table! {
    pay_order_transitions (id) {
        id -> BigInt,
        out_trade_no -> Text,
        from_status -> Text,
        to_status -> Text,
        source -> Text,
        at -> BigInt,
        request_id -> Nullable<Text>,
    }
}

diesel::table! {
    pay_refunds (id) {
        id -> BigInt,
        out_refund_no -> Text,
        out_trade_no -> Text,
        amount_fen -> BigInt,
        reason -> Text,
        status -> Text,
        refund_id -> Nullable<Text>,
        error -> Nullable<Text>,
        request_id -> Text,
        created_at -> BigInt,
        updated_at -> BigInt,
        succeeded_at -> Nullable<BigInt>,
        operator -> Nullable<Text>,
    }
}

diesel::table! {
    pay_events (id) {
        id -> BigInt,
        out_trade_no -> Text,
        event_type -> Text,
        payload -> Text,
        delivered -> Bool,
        attempts -> BigInt,
        next_attempt_ms -> BigInt,
        last_error -> Nullable<Text>,
        last_attempt_at -> Nullable<BigInt>,
        delivered_at -> Nullable<BigInt>,
        created_at -> BigInt,
    }
}
