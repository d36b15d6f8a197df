//! Users: one row per (appid, openid), created on first login and filled in
//! when the user shares a profile.

use diesel::prelude::*;
use serde::Serialize;
use shared::db::{DbConnection, DbError};
use shared::db_run;

use super::schema::users;

#[derive(Debug, Clone, PartialEq, Eq, Queryable, Selectable, Serialize)]
#[diesel(table_name = users)]
#[serde(rename_all = "camelCase")]
pub struct User {
    #[serde(rename = "userId")]
    pub id: i64,
    pub appid: String,
    pub openid: String,
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub headimgurl: Option<String>,
    pub sex: Option<i32>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// What a login learned about a user. `None` leaves a stored value as it is,
/// so a silent (`snsapi_base`) login never blanks a profile shared earlier.
#[derive(Debug, Clone, Default, PartialEq, Eq, AsChangeset, Insertable)]
#[diesel(table_name = users)]
pub struct Profile {
    pub unionid: Option<String>,
    pub nickname: Option<String>,
    pub headimgurl: Option<String>,
    pub sex: Option<i32>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub language: Option<String>,
}

#[derive(AsChangeset)]
#[diesel(table_name = users)]
struct Update {
    #[diesel(embed)]
    profile: Profile,
    updated_at: i64,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    appid: &'a str,
    openid: &'a str,
    #[diesel(embed)]
    profile: Profile,
    created_at: i64,
    updated_at: i64,
}

/// Creates the user or updates the fields `profile` knows, in one statement:
/// concurrent first logins of one user meet on the unique (appid, openid) key
/// and leave a single row.
pub fn upsert(
    conn: &mut DbConnection,
    appid: &str,
    openid: &str,
    profile: Profile,
    now: i64,
) -> Result<User, DbError> {
    let new = NewUser {
        appid,
        openid,
        profile: profile.clone(),
        created_at: now,
        updated_at: now,
    };
    let update = Update {
        profile,
        updated_at: now,
    };
    db_run!(conn => {
        diesel::insert_into(users::table)
            .values(&new)
            .on_conflict((users::appid, users::openid))
            .do_update()
            .set(&update)
            .returning(User::as_returning())
            .get_result(conn)
            .map_err(DbError::from)
    })
}

/// Saves the known fields of `profile` on an existing user (`NotFound` when
/// there is none).
pub fn update_profile(
    conn: &mut DbConnection,
    id: i64,
    profile: Profile,
    now: i64,
) -> Result<User, DbError> {
    let update = Update {
        profile,
        updated_at: now,
    };
    db_run!(conn => {
        diesel::update(users::table.find(id))
            .set(&update)
            .returning(User::as_returning())
            .get_result(conn)
            .map_err(DbError::from)
    })
}

pub fn find(conn: &mut DbConnection, id: i64) -> Result<Option<User>, DbError> {
    db_run!(conn => {
        users::table
            .find(id)
            .select(User::as_select())
            .first(conn)
            .optional()
            .map_err(DbError::from)
    })
}

/// How many users an app has with this openid: 0 or 1 (tests check the
/// unique key holds under concurrent logins).
pub fn count_by_openid(conn: &mut DbConnection, appid: &str, openid: &str) -> Result<i64, DbError> {
    db_run!(conn => {
        users::table
            .filter(users::appid.eq(appid).and(users::openid.eq(openid)))
            .count()
            .get_result(conn)
            .map_err(DbError::from)
    })
}
