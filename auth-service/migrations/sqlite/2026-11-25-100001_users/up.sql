-- One row per WeChat identity: an openid is only unique within its app, so the
-- official account's and the mini program's users are distinct rows.
CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    appid TEXT NOT NULL,
    openid TEXT NOT NULL,
    unionid TEXT,
    nickname TEXT,
    headimgurl TEXT,
    sex INTEGER,
    province TEXT,
    city TEXT,
    country TEXT,
    language TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (appid, openid)
);
CREATE INDEX users_unionid ON users (unionid);
