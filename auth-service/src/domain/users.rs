//! The users table as the domain sees it: each call runs one query of
//! `db::users` on the blocking pool.

use shared::db::{Database, DbError, now_unix};

use crate::db::users as queries;
pub use crate::db::users::{Profile, User};

#[derive(Clone, Debug)]
pub struct Users {
    db: Database,
}

impl Users {
    pub fn new(db: Database) -> Self {
        Users { db }
    }

    /// Creates the user on first login, else updates what `profile` knows.
    pub async fn upsert(
        &self,
        appid: &str,
        openid: &str,
        profile: Profile,
    ) -> Result<User, DbError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.db
            .run(move |conn| queries::upsert(conn, &appid, &openid, profile, now_unix()))
            .await
    }

    pub async fn update_profile(&self, id: i64, profile: Profile) -> Result<User, DbError> {
        self.db
            .run(move |conn| queries::update_profile(conn, id, profile, now_unix()))
            .await
    }

    pub async fn find(&self, id: i64) -> Result<Option<User>, DbError> {
        self.db.run(move |conn| queries::find(conn, id)).await
    }

    pub async fn count_by_openid(&self, appid: &str, openid: &str) -> Result<i64, DbError> {
        let (appid, openid) = (appid.to_owned(), openid.to_owned());
        self.db
            .run(move |conn| queries::count_by_openid(conn, &appid, &openid))
            .await
    }
}
