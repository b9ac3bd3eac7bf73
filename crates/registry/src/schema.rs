//! The registry database: one SQLite file (`.taxon/registry.db`, WAL, a busy timeout so that
//! concurrent writers queue), its tables, and the migrations that bring an older file up to
//! date. `PRAGMA user_version` holds the schema version.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use crate::error::RegistryError;

/// The schema version this build writes ([`MIGRATIONS`]`.len()`).
pub const SCHEMA_VERSION: i64 = 1;

/// Migration `i` takes the schema from version `i` to `i + 1`; each runs in one transaction.
const MIGRATIONS: &[&str] = &["
CREATE TABLE versions (
    name          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    run_id        TEXT NOT NULL,
    run_name      TEXT NOT NULL,
    model_type    TEXT NOT NULL,
    data_path     TEXT,
    data_version  TEXT,
    metrics       TEXT NOT NULL,  -- JSON object: metric -> value
    labels        TEXT NOT NULL,  -- JSON array
    input         TEXT NOT NULL,  -- JSON InputLimits
    code_version  TEXT,
    description   TEXT,
    created_us    INTEGER NOT NULL,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX versions_run ON versions(name, run_id);
CREATE TABLE version_files (
    name     TEXT NOT NULL,
    version  INTEGER NOT NULL,
    file     TEXT NOT NULL,
    md5      TEXT NOT NULL,
    bytes    INTEGER NOT NULL,
    PRIMARY KEY (name, version, file),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     INTEGER NOT NULL,
    updated_us  INTEGER NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE alias_history (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT NOT NULL,
    alias         TEXT NOT NULL,
    from_version  INTEGER,
    to_version    INTEGER,
    actor         TEXT NOT NULL,
    at_us         INTEGER NOT NULL,
    forced        INTEGER NOT NULL,
    reason        TEXT
);
CREATE INDEX alias_history_at ON alias_history(name, alias, at_us);
"];

/// Opens (creating when needed) the database at `path` and migrates it to [`SCHEMA_VERSION`].
pub fn open(path: &Path) -> Result<Connection, RegistryError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    }
    let e = RegistryError::db;
    let mut conn = Connection::open(path).map_err(e(path))?;
    conn.busy_timeout(Duration::from_secs(30))
        .map_err(e(path))?;
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(e(path))?;
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(e(path))?;
    migrate(&mut conn, path)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), RegistryError> {
    let e = RegistryError::db;
    loop {
        // Read the version inside a write transaction: two processes opening a fresh file at
        // once migrate it once.
        let tx = conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(e(path))?;
        let current: i64 = tx
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .map_err(e(path))?;
        if current > SCHEMA_VERSION {
            return Err(RegistryError::NewerSchema {
                path: path.to_path_buf(),
                found: current,
                supported: SCHEMA_VERSION,
            });
        }
        let Some(step) = usize::try_from(current)
            .ok()
            .and_then(|i| MIGRATIONS.get(i))
        else {
            return Ok(());
        };
        tx.execute_batch(step).map_err(e(path))?;
        tx.pragma_update(None, "user_version", current + 1)
            .map_err(e(path))?;
        tx.commit().map_err(e(path))?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_is_migrated_once_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/registry.db");
        let conn = open(&path).unwrap();
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
        drop(conn);
        open(&path).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let conn = open(&path).unwrap();
        conn.pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        drop(conn);
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("upgrade taxon"), "{err}");
    }
}
