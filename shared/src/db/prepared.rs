//! Hand-written SQL that each connection prepares once and then reuses.
//!
//! diesel never caches the prepared statement of an `UPDATE`, nor of
//! `sql_query` text: on PostgreSQL each such statement is a `Parse` round trip,
//! parse analysis and planning, then its `Execute` round trip, every time. For
//! the few statements on a hot path (an applied payment notification runs two:
//! issue #16) [`Prepared`] is the same SQL in a form diesel's statement cache
//! keeps, keyed by its text: after the first use on a connection it is one
//! round trip, and PostgreSQL plans it once for all the parameters it gets.
//!
//! The text names its parameters `$1`, `$2`, … in the order they are bound
//! (each backend's query builder writes its own placeholder in their place, so
//! the same text runs on SQLite). Nothing else in it may hold a `$`: no string
//! literals with one, no dollar quoting.

use std::borrow::Cow;

use diesel::backend::Backend;
use diesel::expression::AsExpression;
use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
use diesel::result::{Error as DieselError, QueryResult};
use diesel::sql_types::Untyped;
use diesel::{Connection, RunQueryDsl};

/// One statement: its text and its bound values. Run it with diesel's
/// `execute`, `load` or `get_result` (rows as `QueryableByName`).
pub struct Prepared<'a, DB: Backend> {
    sql: Cow<'a, str>,
    binds: Vec<Box<dyn QueryFragment<DB> + 'a>>,
}

impl<'a, DB: Backend> Prepared<'a, DB> {
    pub fn new(sql: impl Into<Cow<'a, str>>) -> Self {
        Prepared {
            sql: sql.into(),
            binds: Vec::new(),
        }
    }

    /// Binds the next parameter (`$1` first) as SQL type `ST`.
    pub fn bind<ST, T>(mut self, value: T) -> Self
    where
        T: AsExpression<ST>,
        T::Expression: QueryFragment<DB> + 'a,
        ST: diesel::sql_types::SqlType + diesel::expression::TypedExpressionType,
    {
        self.binds.push(Box::new(value.as_expression()));
        self
    }
}

/// The text between parameters, and each parameter's number (from 1), in
/// the order they appear; None when a `$` is not followed by a number.
fn pieces(sql: &str) -> Option<(Vec<&str>, Vec<usize>)> {
    let mut texts = Vec::new();
    let mut numbers = Vec::new();
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        texts.push(&rest[..at]);
        let digits = rest[at + 1..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len() - at - 1);
        numbers.push(rest[at + 1..at + 1 + digits].parse().ok()?);
        rest = &rest[at + 1 + digits..];
    }
    texts.push(rest);
    Some((texts, numbers))
}

impl<DB: Backend> QueryFragment<DB> for Prepared<'_, DB> {
    fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, DB>) -> QueryResult<()> {
        let bad = |why: String| DieselError::QueryBuilderError(why.into());
        let (texts, numbers) = pieces(&self.sql)
            .ok_or_else(|| bad(format!("a `$` without a number: {}", self.sql)))?;
        for (text, number) in texts.iter().zip(&numbers) {
            out.push_sql(text);
            let value = number
                .checked_sub(1)
                .and_then(|i| self.binds.get(i))
                .ok_or_else(|| bad(format!("${number} is not bound: {}", self.sql)))?;
            value.walk_ast(out.reborrow())?;
        }
        out.push_sql(texts.last().copied().unwrap_or_default());
        Ok(())
    }
}

/// No static id: diesel's cache then keys the statement by its text and bind
/// types, which is what makes it cacheable at all.
impl<DB: Backend> QueryId for Prepared<'_, DB> {
    type QueryId = ();
    const HAS_STATIC_QUERY_ID: bool = false;
}

impl<DB: Backend> Query for Prepared<'_, DB> {
    type SqlType = Untyped;
}

impl<Conn: Connection> RunQueryDsl<Conn> for Prepared<'_, Conn::Backend> {}

#[cfg(test)]
mod tests {
    use super::*;
    use diesel::sql_types::{BigInt, Text};
    use diesel::sqlite::{Sqlite, SqliteConnection};

    #[test]
    fn splits_at_numbered_parameters() {
        let (texts, numbers) = pieces("UPDATE t SET a = $2 WHERE b = $1 AND c = $10").unwrap();
        assert_eq!(texts, ["UPDATE t SET a = ", " WHERE b = ", " AND c = ", ""]);
        assert_eq!(numbers, [2, 1, 10]);
        assert_eq!(pieces("SELECT 1").unwrap().1, Vec::<usize>::new());
        assert!(pieces("SELECT '$'").is_none());
    }

    #[test]
    fn each_backend_writes_its_own_placeholders() {
        let q = Prepared::<Sqlite>::new("SELECT $1 + $2")
            .bind::<BigInt, _>(1i64)
            .bind::<BigInt, _>(2i64);
        let sql = diesel::debug_query::<Sqlite, _>(&q).to_string();
        assert!(sql.starts_with("SELECT ? + ?"), "{sql}");
        let q = Prepared::<diesel::pg::Pg>::new("SELECT $2 || $1")
            .bind::<Text, _>("a")
            .bind::<Text, _>("b");
        let sql = diesel::debug_query::<diesel::pg::Pg, _>(&q).to_string();
        assert!(sql.starts_with("SELECT $1 || $2"), "{sql}");
        assert!(sql.contains(r#"["b", "a"]"#), "{sql}");
    }

    #[derive(diesel::QueryableByName, Debug, PartialEq)]
    struct Sum {
        #[diesel(sql_type = BigInt)]
        total: i64,
    }

    /// Runs, and lands in diesel's statement cache (which `sql_query` never
    /// does): what saves the Parse round trip and the planning.
    #[test]
    fn runs_and_is_kept_prepared() {
        use diesel::connection::{Instrumentation, InstrumentationEvent};
        use std::sync::{Arc, Mutex};

        #[derive(Default, Clone)]
        struct Cached(Arc<Mutex<Vec<String>>>);
        impl Instrumentation for Cached {
            fn on_connection_event(&mut self, event: InstrumentationEvent<'_>) {
                if let InstrumentationEvent::CacheQuery { sql, .. } = event {
                    self.0.lock().unwrap().push(sql.to_owned());
                }
            }
        }

        let mut conn = SqliteConnection::establish(":memory:").unwrap();
        let cached = Cached::default();
        conn.set_instrumentation(cached.clone());
        for n in 1..=3i64 {
            let got: Sum = Prepared::new("SELECT $1 + $2 AS total")
                .bind::<BigInt, _>(n)
                .bind::<BigInt, _>(40i64)
                .get_result(&mut conn)
                .unwrap();
            assert_eq!(got, Sum { total: n + 40 });
        }
        let unbound = Prepared::new("SELECT $2 AS total")
            .bind::<BigInt, _>(1i64)
            .get_result::<Sum>(&mut conn);
        assert!(unbound.is_err());
        assert_eq!(*cached.0.lock().unwrap(), ["SELECT ? + ? AS total"]);
        // sql_query is never cached: the reason for this type.
        let _: Sum = diesel::sql_query("SELECT 2 AS total")
            .get_result(&mut conn)
            .unwrap();
        assert_eq!(cached.0.lock().unwrap().len(), 1);
    }
}
