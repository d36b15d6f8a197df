//! The tables auth-service owns (migrations/sqlite and migrations/postgres).

diesel::table! {
    users (id) {
        id -> BigInt,
        appid -> Text,
        openid -> Text,
        unionid -> Nullable<Text>,
        nickname -> Nullable<Text>,
        headimgurl -> Nullable<Text>,
        sex -> Nullable<Integer>,
        province -> Nullable<Text>,
        city -> Nullable<Text>,
        country -> Nullable<Text>,
        language -> Nullable<Text>,
        created_at -> BigInt,
        updated_at -> BigInt,
    }
}
