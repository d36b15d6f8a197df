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
    }
}
