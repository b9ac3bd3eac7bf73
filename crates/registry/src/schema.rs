//! The registry database: one SQLite file (`.taxon/registry.db`, WAL, a busy timeout so that
//! concurrent writers queue) or a shared PostgreSQL database (`TAXON_REGISTRY_DB=postgres://...`),
//! its tables, and the migrations that bring an older database up to date (`PRAGMA
//! user_version` in SQLite, the `schema_version` table in PostgreSQL; see taxon-db).

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;
use taxon_db::Db;

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

/// The same schema for PostgreSQL (a `schema_version` row `registry` holds its version):
/// BIGINT for SQLite's 64-bit INTEGER, an identity column for AUTOINCREMENT.
const PG_MIGRATIONS: &[&str] = &["
CREATE TABLE versions (
    name          TEXT NOT NULL,
    version       BIGINT NOT NULL,
    run_id        TEXT NOT NULL,
    run_name      TEXT NOT NULL,
    model_type    TEXT NOT NULL,
    data_path     TEXT,
    data_version  TEXT,
    metrics       TEXT NOT NULL,
    labels        TEXT NOT NULL,
    input         TEXT NOT NULL,
    code_version  TEXT,
    description   TEXT,
    created_us    BIGINT NOT NULL,
    created_by    TEXT NOT NULL,
    PRIMARY KEY (name, version)
);
CREATE INDEX versions_run ON versions(name, run_id);
CREATE TABLE version_files (
    name     TEXT NOT NULL,
    version  BIGINT NOT NULL,
    file     TEXT NOT NULL,
    md5      TEXT NOT NULL,
    bytes    BIGINT NOT NULL,
    PRIMARY KEY (name, version, file),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE aliases (
    name        TEXT NOT NULL,
    alias       TEXT NOT NULL,
    version     BIGINT NOT NULL,
    updated_us  BIGINT NOT NULL,
    PRIMARY KEY (name, alias),
    FOREIGN KEY (name, version) REFERENCES versions(name, version)
);
CREATE TABLE alias_history (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name          TEXT NOT NULL,
    alias         TEXT NOT NULL,
    from_version  BIGINT,
    to_version    BIGINT,
    actor         TEXT NOT NULL,
    at_us         BIGINT NOT NULL,
    forced        BIGINT NOT NULL,
    reason        TEXT
);
CREATE INDEX alias_history_at ON alias_history(name, alias, at_us);
"];

/// Opens the registry database at `location` and migrates it to [`SCHEMA_VERSION`]: a
/// PostgreSQL database when `location` is a `postgres://` URL, else a SQLite file (created
/// when needed, with its folder).
pub fn open(location: &Path) -> Result<Db, RegistryError> {
    let db = if taxon_db::is_postgres_path(location) {
        let url = location.to_str().unwrap_or_default();
        Db::connect_postgres(url).map_err(RegistryError::db(location))?
    } else {
        Db::sqlite(open_sqlite(location)?)
    };
    db.migrate("registry", MIGRATIONS, PG_MIGRATIONS)
        .map_err(|e| match e {
            taxon_db::DbError::NewerSchema { found, supported } => RegistryError::NewerSchema {
                path: crate::registry::shown(location),
                found,
                supported,
            },
            e => RegistryError::db(location)(e),
        })?;
    Ok(db)
}

fn open_sqlite(path: &Path) -> Result<Connection, RegistryError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(RegistryError::io(dir))?;
    }
    let e = |x: rusqlite::Error| RegistryError::db(path)(x.into());
    let conn = Connection::open(path).map_err(e)?;
    conn.busy_timeout(Duration::from_secs(30)).map_err(e)?;
    conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
    conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
    Ok(conn)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_file_is_migrated_once_and_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/registry.db");
        let db = open(&path).unwrap();
        let v: i64 = db
            .query_one("PRAGMA user_version", &[])
            .unwrap()
            .get(0)
            .unwrap();
        assert_eq!(v, SCHEMA_VERSION);
        assert_eq!(MIGRATIONS.len() as i64, SCHEMA_VERSION);
        drop(db);
        open(&path).unwrap();
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("registry.db");
        let db = open(&path).unwrap();
        db.execute_batch(&format!("PRAGMA user_version = {}", SCHEMA_VERSION + 1))
            .unwrap();
        drop(db);
        let err = open(&path).unwrap_err().to_string();
        assert!(err.contains("upgrade taxon"), "{err}");
    }
}
