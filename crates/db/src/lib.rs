//! The metadata database behind taxon's stores (the run store, the registry, the users): one
//! SQLite file by default, or a shared PostgreSQL database when the store's location is a
//! `postgres://` or `postgresql://` URL, so that several `taxon serve` replicas share one
//! registry and one user list.
//!
//! The stores write SQL once, with SQLite's `?1` placeholders (rewritten to `$1` for
//! PostgreSQL) and the types both engines share (64-bit integers, doubles, text). What differs
//! stays here (one rule for the SQL: PostgreSQL must be able to infer each parameter's type, so
//! `?1 IS NULL` is written `CAST(?1 AS TEXT) IS NULL`):
//! - transactions: SQLite's `BEGIN IMMEDIATE` (writers queue on the busy timeout); PostgreSQL's
//!   `SERIALIZABLE`, run again from the start when the server reports a serialization failure
//!   or a deadlock ([`Db::transaction`]), so read-then-write transactions keep SQLite's
//!   one-writer-at-a-time guarantees;
//! - migrations ([`Db::migrate`]): each store lists its schema steps per engine; SQLite keeps
//!   the version in `PRAGMA user_version` (one file per store, as before), PostgreSQL in a
//!   `schema_version` table (one row per store, so the stores can share a database), applied
//!   at open under an advisory lock so replicas starting together migrate once.
//!
//! A [`Db`] is one connection: `Send`, not `Sync`, as the stores were with SQLite.

mod error;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod value;

use std::cell::{Cell, RefCell, RefMut};
use std::collections::HashMap;
use std::time::Duration;

pub use error::DbError;
pub use value::{FromValue, Row, ToValue, Value};

/// Which engine a [`Db`] talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// True when a store location names a PostgreSQL database rather than a SQLite file.
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// The same as [`is_postgres_url`] for a location held as a path (the stores' `--*-db` flags
/// and `TAXON_*_DB` variables are paths that may hold a URL).
pub fn is_postgres_path(location: &std::path::Path) -> bool {
    location.to_str().is_some_and(is_postgres_url)
}

/// `url` without its password, for messages and `Debug` (`postgres://taxon:***@db/taxon`; a
/// `password=` query parameter too).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some(("password", _)) => "password=***".to_string(),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// How many times [`Db::transaction`] runs a transaction that PostgreSQL aborted for a
/// serialization failure before giving up with that error.
pub const MAX_RETRIES: u32 = 30;

/// Whether a failed transaction may succeed when run again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Retry {
    No,
    /// A serialization failure or a deadlock.
    Conflict,
    /// A unique key taken by a concurrent transaction (a version number both computed as
    /// `MAX + 1`): PostgreSQL reports these as unique violations, not serialization failures,
    /// when the conflicting read was an aggregate. Run again a few times only, since a key
    /// that really exists fails the same way every time.
    Unique,
}

/// How many times a transaction that failed on a unique key is run again.
const UNIQUE_RETRIES: u32 = 10;

// One per store, made once: the size difference of the variants does not matter.
#[allow(clippy::large_enum_variant)]
enum Conn {
    Sqlite(rusqlite::Connection),
    Postgres {
        client: postgres::Client,
        url: String,
        statements: HashMap<String, postgres::Statement>,
    },
}

/// One connection to a store's database.
pub struct Db {
    conn: RefCell<Conn>,
    /// Inside [`Db::transaction`]: never reconnect then (the transaction is gone with the
    /// connection, and what follows must not run outside it).
    in_tx: Cell<bool>,
    /// What the last failed call inside a transaction says about running it again.
    retryable: Cell<Retry>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .finish()
    }
}

/// Rewrites `?1`-style placeholders to PostgreSQL's `$1`, leaving quoted text alone.
fn to_postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    for c in sql.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => out.push('$'),
            c => out.push(c),
        }
    }
    out
}

impl Db {
    /// A SQLite connection the store has opened and configured (busy timeout, WAL, pragmas).
    pub fn sqlite(conn: rusqlite::Connection) -> Self {
        Self::new(Conn::Sqlite(conn))
    }

    /// Connects to the PostgreSQL database at `url` (`postgres://user:password@host:port/db`,
    /// or any parameter of the libpq connection string the client understands). Without TLS:
    /// reach the server over a private network or a local socket.
    pub fn connect_postgres(url: &str) -> Result<Self, DbError> {
        let client = connect(url)?;
        Ok(Self::new(Conn::Postgres {
            client,
            url: url.to_string(),
            statements: HashMap::new(),
        }))
    }

    fn new(conn: Conn) -> Self {
        Self {
            conn: RefCell::new(conn),
            in_tx: Cell::new(false),
            retryable: Cell::new(Retry::No),
        }
    }

    pub fn backend(&self) -> Backend {
        match &*self.conn.borrow() {
            Conn::Sqlite(_) => Backend::Sqlite,
            Conn::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The SQLite connection, for tests that shape rows or pragmas directly.
    pub fn sqlite_conn(&self) -> Option<RefMut<'_, rusqlite::Connection>> {
        RefMut::filter_map(self.conn.borrow_mut(), |c| match c {
            Conn::Sqlite(c) => Some(c),
            Conn::Postgres { .. } => None,
        })
        .ok()
    }

    fn noted<T>(&self, r: Result<T, DbError>) -> Result<T, DbError> {
        if let Err(e) = &r
            && self.in_tx.get()
            && self.backend() == Backend::Postgres
        {
            if e.is_retryable() {
                self.retryable.set(Retry::Conflict);
            } else if e.is_unique_violation() {
                self.retryable.set(Retry::Unique);
            }
        }
        r
    }

    /// Runs `f` with the PostgreSQL client and the prepared statement of `sql`, reconnecting
    /// first when the connection was lost outside a transaction. A read (`retry`) that finds
    /// the connection gone (the server restarted, a proxy dropped it) runs once more on a new
    /// one, so a server's alias poll or revocation refresh does not fail on it; a write does
    /// not, since it may have been applied before the connection went.
    fn with_pg<T>(
        &self,
        client: &mut postgres::Client,
        url: &str,
        statements: &mut HashMap<String, postgres::Statement>,
        sql: &str,
        retry: bool,
        f: impl Fn(&mut postgres::Client, &postgres::Statement) -> Result<T, postgres::Error>,
    ) -> Result<T, DbError> {
        let mut run = |client: &mut postgres::Client| -> Result<T, DbError> {
            if client.is_closed() && !self.in_tx.get() {
                *client = connect(url)?;
                statements.clear();
            }
            let st = match statements.get(sql) {
                Some(st) => st.clone(),
                None => {
                    let st = client.prepare(&to_postgres_sql(sql))?;
                    statements.insert(sql.to_string(), st.clone());
                    st
                }
            };
            Ok(f(client, &st)?)
        };
        match run(client) {
            Err(DbError::Postgres(e)) if retry && client.is_closed() && !self.in_tx.get() => {
                run(client).map_err(|again| match again {
                    DbError::Postgres(_) => DbError::Postgres(e),
                    other => other,
                })
            }
            r => r,
        }
    }

    /// Runs one statement; returns the number of rows it changed.
    pub fn execute(&self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let r = match &mut *self.conn.borrow_mut() {
            Conn::Sqlite(c) => c
                .prepare_cached(sql)
                .and_then(|mut st| st.execute(rusqlite::params_from_iter(params)))
                .map(|n| n as u64)
                .map_err(DbError::from),
            Conn::Postgres {
                client,
                url,
                statements,
            } => self.with_pg(client, url, statements, sql, false, |c, st| {
                c.execute(st, &pg_params(params))
            }),
        };
        self.noted(r)
    }

    /// Runs statements separated by `;`, without parameters (schemas, transaction control).
    pub fn execute_batch(&self, sql: &str) -> Result<(), DbError> {
        let r = match &mut *self.conn.borrow_mut() {
            Conn::Sqlite(c) => c.execute_batch(sql).map_err(DbError::from),
            Conn::Postgres { client, url, .. } => {
                if client.is_closed() && !self.in_tx.get() {
                    match connect(url) {
                        Ok(c) => *client = c,
                        Err(e) => return Err(e),
                    }
                }
                client.batch_execute(sql).map_err(DbError::from)
            }
        };
        self.noted(r)
    }

    /// Every row `sql` returns.
    pub fn query(&self, sql: &str, params: &[Value]) -> Result<Vec<Row>, DbError> {
        let r = match &mut *self.conn.borrow_mut() {
            Conn::Sqlite(c) => sqlite_query(c, sql, params),
            Conn::Postgres {
                client,
                url,
                statements,
            } => self.with_pg(client, url, statements, sql, true, |c, st| {
                c.query(st, &pg_params(params))?
                    .iter()
                    .map(|row| {
                        (0..row.len())
                            .map(|i| value::from_postgres(row, i))
                            .collect::<Result<Vec<_>, _>>()
                            .map(Row)
                    })
                    .collect()
            }),
        };
        self.noted(r)
    }

    /// The first row `sql` returns, if any.
    pub fn query_opt(&self, sql: &str, params: &[Value]) -> Result<Option<Row>, DbError> {
        Ok(self.query(sql, params)?.into_iter().next())
    }

    /// The first row `sql` returns; [`DbError::NoRow`] when there is none.
    pub fn query_one(&self, sql: &str, params: &[Value]) -> Result<Row, DbError> {
        self.query_opt(sql, params)?.ok_or(DbError::NoRow)
    }

    /// Runs `f` in one write transaction and commits it when `f` succeeds (rolls back when it
    /// fails). SQLite: `BEGIN IMMEDIATE`, so writers queue on the busy timeout. PostgreSQL:
    /// `SERIALIZABLE`; when the server aborts it for a serialization failure or a deadlock
    /// (a concurrent writer touched the same rows), `f` runs again from the start, up to
    /// [`MAX_RETRIES`] times, so `f` must do nothing but database work that can be repeated.
    /// `err` wraps the errors of `BEGIN` and `COMMIT` into `E`.
    pub fn transaction<T, E>(
        &self,
        err: impl Fn(DbError) -> E,
        mut f: impl FnMut(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        let begin = match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN ISOLATION LEVEL SERIALIZABLE",
        };
        let mut attempt = 0u32;
        let mut unique_attempts = 0u32;
        loop {
            self.execute_batch(begin).map_err(&err)?;
            self.in_tx.set(true);
            self.retryable.set(Retry::No);
            let out = f(self).and_then(|v| {
                self.execute_batch("COMMIT").map_err(&err)?;
                Ok(v)
            });
            self.in_tx.set(false);
            let retry = self.retryable.replace(Retry::No);
            let Err(e) = out else { return out };
            // After a failed COMMIT SQLite may still hold the transaction; PostgreSQL has
            // ended it and only warns.
            let _ = self.execute_batch("ROLLBACK");
            let again = match retry {
                Retry::No => false,
                Retry::Conflict => attempt < MAX_RETRIES,
                Retry::Unique => unique_attempts < UNIQUE_RETRIES,
            };
            if again {
                if retry == Retry::Unique {
                    unique_attempts += 1;
                }
                attempt += 1;
                // Back off a little, differently in each process, so retries spread out.
                let jitter = u64::from(std::process::id() % 7 + attempt) * 3;
                std::thread::sleep(Duration::from_millis(jitter.min(100)));
                continue;
            }
            return Err(e);
        }
    }

    /// Brings the store `component` to the newest schema: step `i` of `sqlite` or `postgres`
    /// (one per engine, the same count) takes the schema from version `i` to `i + 1`. A
    /// database written by a newer taxon is refused ([`DbError::NewerSchema`]).
    pub fn migrate(
        &self,
        component: &str,
        sqlite: &[&str],
        postgres: &[&str],
    ) -> Result<(), DbError> {
        debug_assert_eq!(sqlite.len(), postgres.len());
        match self.backend() {
            Backend::Sqlite => self.migrate_sqlite(sqlite),
            Backend::Postgres => self.migrate_postgres(component, postgres),
        }
    }

    fn migrate_sqlite(&self, steps: &[&str]) -> Result<(), DbError> {
        let supported = steps.len() as i64;
        loop {
            // Read the version inside a write transaction: two processes opening a fresh file
            // at once migrate it once.
            let done = self.transaction(
                |e| e,
                |db| {
                    let current: i64 = db.query_one("PRAGMA user_version", &[])?.get(0)?;
                    if current > supported {
                        return Err(DbError::NewerSchema {
                            found: current,
                            supported,
                        });
                    }
                    let Some(step) = usize::try_from(current).ok().and_then(|i| steps.get(i))
                    else {
                        return Ok(true);
                    };
                    db.execute_batch(step)?;
                    db.execute_batch(&format!("PRAGMA user_version = {}", current + 1))?;
                    Ok(false)
                },
            )?;
            if done {
                return Ok(());
            }
        }
    }

    fn migrate_postgres(&self, component: &str, steps: &[&str]) -> Result<(), DbError> {
        let supported = steps.len() as i64;
        // One migrator at a time across every process sharing the database. A session lock
        // taken before the transaction, so the transaction's snapshot sees what the previous
        // holder committed.
        self.execute_batch("SELECT pg_advisory_lock(7301583110)")?;
        let r = self.transaction(
            |e| e,
            |db| {
                db.execute_batch(
                    "CREATE TABLE IF NOT EXISTS schema_version (
                    component TEXT PRIMARY KEY,
                    version   BIGINT NOT NULL
                )",
                )?;
                let current: i64 = db
                    .query_opt(
                        "SELECT version FROM schema_version WHERE component = ?1",
                        params![component],
                    )?
                    .map(|r| r.get(0))
                    .transpose()?
                    .unwrap_or(0);
                if current > supported {
                    return Err(DbError::NewerSchema {
                        found: current,
                        supported,
                    });
                }
                for step in &steps[current as usize..] {
                    db.execute_batch(step)?;
                }
                db.execute(
                    "INSERT INTO schema_version (component, version) VALUES (?1, ?2)
                 ON CONFLICT (component) DO UPDATE SET version = EXCLUDED.version",
                    params![component, supported],
                )?;
                Ok(())
            },
        );
        let unlocked = self.execute_batch("SELECT pg_advisory_unlock(7301583110)");
        r.and(unlocked)
    }
}

/// `url` without its `sslrootcert=` query parameter (which the client's parser does not know),
/// and that parameter's value.
fn split_root_cert(url: &str) -> (String, Option<String>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_string(), None);
    };
    let mut root = None;
    let kept: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(v) => {
                root = Some(v.to_string());
                false
            }
            None => true,
        })
        .collect();
    let url = if kept.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (url, root)
}

/// Connects as libpq would: `sslmode=disable` in the clear; `prefer` (the default) and
/// `require` over TLS when the server offers it (`require`: only then), checking the server's
/// certificate and name against a CA file when one is given (`sslrootcert=FILE` in the URL or
/// `PGSSLROOTCERT`), and encrypting without that check otherwise.
fn connect(url: &str) -> Result<postgres::Client, DbError> {
    use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};
    use postgres::config::SslMode;

    let (url, root_cert) = split_root_cert(url);
    let mut config: postgres::Config = url.parse()?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(Duration::from_secs(10));
    }
    if config.get_ssl_mode() == SslMode::Disable {
        return Ok(config.connect(postgres::NoTls)?);
    }
    let root_cert = root_cert.or_else(|| {
        std::env::var("PGSSLROOTCERT")
            .ok()
            .filter(|v| !v.is_empty())
    });
    let mut builder = SslConnector::builder(SslMethod::tls())?;
    match &root_cert {
        Some(ca) => builder.set_ca_file(ca)?,
        None => builder.set_verify(SslVerifyMode::NONE),
    }
    let mut tls = postgres_openssl::MakeTlsConnector::new(builder.build());
    if root_cert.is_none() {
        tls.set_callback(|c, _| {
            c.set_verify_hostname(false);
            Ok(())
        });
    }
    Ok(config.connect(tls)?)
}

fn pg_params(params: &[Value]) -> Vec<&(dyn postgres::types::ToSql + Sync)> {
    params
        .iter()
        .map(|p| p as &(dyn postgres::types::ToSql + Sync))
        .collect()
}

fn sqlite_query(
    c: &rusqlite::Connection,
    sql: &str,
    params: &[Value],
) -> Result<Vec<Row>, DbError> {
    let mut st = c.prepare_cached(sql)?;
    let n = st.column_count();
    let mut rows = st.query(rusqlite::params_from_iter(params))?;
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(Row((0..n)
            .map(|i| r.get_ref(i).map(value::from_sqlite))
            .collect::<Result<_, _>>()?));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    #[test]
    fn placeholders_are_rewritten_outside_quotes_only() {
        assert_eq!(
            to_postgres_sql("SELECT '?1' FROM t WHERE a = ?1 AND b = ?12"),
            "SELECT '?1' FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn the_root_certificate_parameter_is_taken_out_of_the_url() {
        assert_eq!(
            split_root_cert("postgres://h/db?sslmode=require&sslrootcert=/ca.pem&x=1"),
            (
                "postgres://h/db?sslmode=require&x=1".into(),
                Some("/ca.pem".into())
            )
        );
        assert_eq!(
            split_root_cert("postgres://h/db?sslrootcert=/ca.pem"),
            ("postgres://h/db".into(), Some("/ca.pem".into()))
        );
        assert_eq!(
            split_root_cert("postgres://h/db"),
            ("postgres://h/db".into(), None)
        );
    }

    #[test]
    fn urls_are_recognised_and_passwords_redacted() {
        assert!(is_postgres_url("postgres://h/db"));
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(!is_postgres_url(".taxon/registry.db"));
        assert_eq!(
            redact_url("postgres://taxon:s3cret@db:5432/taxon?sslmode=disable"),
            "postgres://taxon:***@db:5432/taxon?sslmode=disable"
        );
        assert_eq!(redact_url("postgres://taxon@db/x"), "postgres://taxon@db/x");
        assert_eq!(
            redact_url("postgresql://db/x?user=t&password=s3cret&connect_timeout=5"),
            "postgresql://db/x?user=t&password=***&connect_timeout=5"
        );
    }

    #[test]
    fn sqlite_migrates_once_refuses_newer_and_rolls_back_failed_transactions() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let steps = ["CREATE TABLE t (a INTEGER PRIMARY KEY, b TEXT)"];
        let db = Db::sqlite(rusqlite::Connection::open(&path).unwrap());
        db.migrate("t", &steps, &["unused"]).unwrap();
        db.migrate("t", &steps, &["unused"]).unwrap();
        let r: Result<(), DbError> = db.transaction(
            |e| e,
            |db| {
                db.execute("INSERT INTO t (a, b) VALUES (?1, ?2)", params![1i64, "x"])?;
                Err(DbError::NoRow)
            },
        );
        assert!(matches!(r, Err(DbError::NoRow)));
        assert!(db.query("SELECT a FROM t", &[]).unwrap().is_empty());
        db.execute_batch("PRAGMA user_version = 5").unwrap();
        let err = db.migrate("t", &steps, &["unused"]).unwrap_err();
        assert!(err.to_string().contains("upgrade taxon"), "{err}");
    }

    /// The migrations and transactions on both engines: SQLite always, PostgreSQL when a test
    /// server is configured.
    fn each_backend(label: &str, f: impl Fn(&(dyn Fn() -> Db + Sync))) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        f(&|| {
            let c = rusqlite::Connection::open(&path).unwrap();
            c.busy_timeout(Duration::from_secs(30)).unwrap();
            Db::sqlite(c)
        });
        if let Some(pg) = testing::postgres(label) {
            f(&|| Db::connect_postgres(&pg.url).unwrap());
        }
    }

    const COUNTER: [&str; 1] = [
        "CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL);
        INSERT INTO counter VALUES (1, 0)",
    ];
    const COUNTER_PG: [&str; 1] = [
        "CREATE TABLE counter (id BIGINT PRIMARY KEY, n BIGINT NOT NULL);
        INSERT INTO counter VALUES (1, 0)",
    ];

    #[test]
    fn concurrent_read_then_write_transactions_lose_no_update() {
        each_backend("counter", |open| {
            // Four connections migrating at once apply the schema once.
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| open().migrate("counter", &COUNTER, &COUNTER_PG).unwrap());
                }
            });
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        let db = open();
                        for _ in 0..25 {
                            db.transaction(
                                |e| e,
                                |db| {
                                    let n: i64 = db
                                        .query_one("SELECT n FROM counter WHERE id = 1", &[])?
                                        .get(0)?;
                                    db.execute(
                                        "UPDATE counter SET n = ?1 WHERE id = 1",
                                        params![n + 1],
                                    )
                                },
                            )
                            .unwrap();
                        }
                    });
                }
            });
            let n: i64 = open()
                .query_one("SELECT n FROM counter", &[])
                .unwrap()
                .get(0)
                .unwrap();
            assert_eq!(n, 100);
        });
    }

    #[test]
    fn values_round_trip_and_failed_transactions_roll_back() {
        each_backend("values", |open| {
            let db = open();
            db.migrate(
                "values",
                &["CREATE TABLE v (i INTEGER, r REAL, t TEXT, b INTEGER)"],
                &["CREATE TABLE v (i BIGINT, r DOUBLE PRECISION, t TEXT, b BIGINT)"],
            )
            .unwrap();
            let none: Option<String> = None;
            db.execute(
                "INSERT INTO v (i, r, t, b) VALUES (?1, ?2, ?3, ?4)",
                params![i64::MAX, 0.25, "it's", true],
            )
            .unwrap();
            db.execute(
                "INSERT INTO v (i, r, t, b) VALUES (?1, ?2, ?3, ?4)",
                params![-1i64, 1.0, none, false],
            )
            .unwrap();
            let rows = db
                .query(
                    "SELECT i, r, t, b FROM v WHERE CAST(?1 AS TEXT) IS NULL OR t = ?1 ORDER BY i DESC",
                    params![none],
                )
                .unwrap();
            assert_eq!(rows.len(), 2);
            assert_eq!(rows[0].get::<i64>(0).unwrap(), i64::MAX);
            assert_eq!(rows[0].get::<f64>(1).unwrap(), 0.25);
            assert_eq!(rows[0].get::<String>(2).unwrap(), "it's");
            assert!(rows[0].get::<bool>(3).unwrap());
            assert_eq!(rows[1].get::<Option<String>>(2).unwrap(), None);
            assert!(rows[1].get::<String>(2).is_err());
            let r: Result<(), DbError> = db.transaction(
                |e| e,
                |db| {
                    db.execute("DELETE FROM v", &[])?;
                    Err(DbError::NoRow)
                },
            );
            assert!(r.is_err());
            assert_eq!(db.query("SELECT i FROM v", &[]).unwrap().len(), 2);
            db.execute_batch("CREATE UNIQUE INDEX v_i ON v (i)")
                .unwrap();
            let dup = db
                .execute("INSERT INTO v (i) VALUES (?1)", params![-1i64])
                .unwrap_err();
            assert!(dup.is_unique_violation(), "{dup}");
        });
    }

    #[test]
    fn a_postgres_database_migrates_once_and_refuses_a_newer_schema() {
        let Some(pg) = testing::postgres("newer_schema") else {
            return;
        };
        let db = Db::connect_postgres(&pg.url).unwrap();
        let steps = [
            "CREATE TABLE t (a BIGINT)",
            "ALTER TABLE t ADD COLUMN b TEXT",
        ];
        db.migrate("t", &[""], &steps[..1]).unwrap();
        db.migrate("t", &["", ""], &steps).unwrap();
        db.migrate("t", &["", ""], &steps).unwrap();
        let v: i64 = db
            .query_one(
                "SELECT version FROM schema_version WHERE component = 't'",
                &[],
            )
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(v, 2);
        db.execute("INSERT INTO t (a, b) VALUES (?1, ?2)", params![1i64, "x"])
            .unwrap();
        let err = db.migrate("t", &[""], &steps[..1]).unwrap_err();
        assert!(
            matches!(
                err,
                DbError::NewerSchema {
                    found: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn reads_survive_a_dropped_postgres_connection() {
        let Some(pg) = testing::postgres("reconnect") else {
            return;
        };
        let db = Db::connect_postgres(&pg.url).unwrap();
        let pid: i64 = db
            .query_one("SELECT CAST(pg_backend_pid() AS BIGINT)", &[])
            .unwrap()
            .get(0)
            .unwrap();
        let admin = Db::connect_postgres(&pg.url).unwrap();
        admin
            .query(
                "SELECT pg_terminate_backend(CAST(?1 AS INTEGER))",
                params![pid],
            )
            .unwrap();
        // The server ended the session: the next read runs on a new connection.
        std::thread::sleep(Duration::from_millis(200));
        let again: i64 = db
            .query_one("SELECT CAST(pg_backend_pid() AS BIGINT)", &[])
            .unwrap()
            .get(0)
            .unwrap();
        assert_ne!(again, pid);
    }

    #[test]
    fn tls_is_used_when_asked_and_the_server_is_checked_against_the_ca() {
        let Some(pg) = testing::postgres("tls") else {
            return;
        };
        let db = Db::connect_postgres(&pg.url).unwrap();
        let on: String = db.query_one("SHOW ssl", &[]).unwrap().get(0).unwrap();
        if on != "on" {
            eprintln!(
                "SKIPPED (TLS): the test server has no certificate (scripts/postgres.sh makes one with openssl)"
            );
            return;
        }
        let cert: String = db
            .query_one("SHOW ssl_cert_file", &[])
            .unwrap()
            .get(0)
            .unwrap();
        let encrypted = |url: &str| -> Result<bool, DbError> {
            Db::connect_postgres(url)?
                .query_one(
                    "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                    &[],
                )?
                .get(0)
        };
        let url = |q: &str| format!("{}?{q}", pg.url);
        assert!(encrypted(&url(&format!("sslmode=require&sslrootcert={cert}"))).unwrap());
        assert!(encrypted(&url("sslmode=require")).unwrap());
        assert!(!encrypted(&url("sslmode=disable")).unwrap());
        // A CA that did not sign the server's certificate: refused.
        let other_ca = "/etc/ssl/certs/ca-certificates.crt";
        if Path::new(other_ca).is_file() {
            let err = encrypted(&url(&format!("sslmode=require&sslrootcert={other_ca}")));
            assert!(err.is_err(), "{err:?}");
        }
    }
}
