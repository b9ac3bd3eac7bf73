//! Test support: a fresh PostgreSQL database per test on the server that
//! `TAXON_TEST_POSTGRES_URL` names (scripts/test.sh starts one with scripts/postgres.sh). Without
//! it a test prints a skip notice, or panics under `TAXON_REQUIRE_TOOLS=1` (CI), as the tests
//! that need moto or aiosmtpd do.

use std::sync::atomic::{AtomicU32, Ordering};

/// The variable naming the test server (a URL whose user may create databases).
pub const URL_ENV: &str = "TAXON_TEST_POSTGRES_URL";

/// A database created for one test, dropped (with its connections) when this is dropped.
#[derive(Debug)]
pub struct TestPostgres {
    /// The URL of the test's own database.
    pub url: String,
    server: String,
    name: String,
}

/// `server` with its database replaced by `db`.
fn with_database(server: &str, db: &str) -> String {
    let (scheme, rest) = server.split_once("://").unwrap_or(("postgres", server));
    let (before_query, query) = match rest.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (rest, String::new()),
    };
    let authority = before_query.split('/').next().unwrap_or(before_query);
    format!("{scheme}://{authority}/{db}{query}")
}

/// A fresh, empty database for the test `label`, or `None` (after a skip notice) when no test
/// server is configured.
pub fn postgres(label: &str) -> Option<TestPostgres> {
    let Some(server) = std::env::var(URL_ENV).ok().filter(|v| !v.is_empty()) else {
        let required = ["TAXON_REQUIRE_TOOLS", "TAXON_REQUIRE_SERVICES"]
            .iter()
            .any(|v| std::env::var(v).as_deref() == Ok("1"));
        if required {
            panic!(
                "{URL_ENV} is not set (required): run the tests through scripts/test.sh, or \
                 start a server with `scripts/postgres.sh start DIR PORT` and export the URL it prints"
            );
        }
        eprintln!("SKIPPED ({label} on PostgreSQL): {URL_ENV} is not set; see scripts/postgres.sh");
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let clean: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(30)
        .collect();
    let name = format!(
        "t_{clean}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let mut admin = postgres::Client::connect(&server, postgres::NoTls)
        .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL at {server}: {e}"));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {name}"))
        .and_then(|()| admin.batch_execute(&format!("CREATE DATABASE {name}")))
        .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e:?}"));
    Some(TestPostgres {
        url: with_database(&server, &name),
        server,
        name,
    })
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Ok(mut admin) = postgres::Client::connect(&self.server, postgres::NoTls) {
            let _ = admin.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// Runs each named test function `fn NAME(at: &Path)` twice: as `NAME::sqlite` on a SQLite
/// file `FILE` in a fresh temporary folder, and as `NAME::postgres` on a fresh database of
/// the test server ([`postgres`]; skipped with a notice when none is set). The calling crate
/// needs `tempfile` among its dev-dependencies.
///
/// ```ignore
/// taxon_db::on_both_backends!("sub/users.db"; add_verify_list_remove, set_password_replaces_the_old_one);
/// ```
#[macro_export]
macro_rules! on_both_backends {
    ($file:literal; $($name:ident),* $(,)?) => {$(
        mod $name {
            use super::*;

            #[test]
            fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                $name(&dir.path().join($file));
            }

            #[test]
            fn postgres() {
                if let Some(pg) = $crate::testing::postgres(stringify!($name)) {
                    $name(::std::path::Path::new(&pg.url));
                }
            }
        }
    )*};
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_database_name_is_replaced_and_options_kept() {
        assert_eq!(
            super::with_database("postgres://u@127.0.0.1:5/postgres?connect_timeout=5", "t_1"),
            "postgres://u@127.0.0.1:5/t_1?connect_timeout=5"
        );
        assert_eq!(
            super::with_database("postgresql://u@h:5", "t_2"),
            "postgresql://u@h:5/t_2"
        );
    }
}
