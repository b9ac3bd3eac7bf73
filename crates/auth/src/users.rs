//! The user store: one SQLite file (`.taxon/users.db` by default), or a PostgreSQL database that
//! several servers share (`TAXON_USERS_DB=postgres://...`), holding each user's argon2id PHC
//! hash and scopes, written by `taxon users` and read by the server. A second table keeps
//! when a name was removed, so tokens issued to a removed user can be refused until they
//! expire (see [`crate::Auth`]); servers sharing the database re-read it every
//! `revocation_refresh`, so a removal on one is honoured by all.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;
use serde::Serialize;
use taxon_db::{Db, params};

use crate::error::AuthError;
use crate::password::{check_password_policy, dummy_verify, hash_password, verify_password};
use crate::scope::{Scope, format_scopes, parse_scopes};

/// Default location of the store, relative to the working directory.
pub const DEFAULT_USERS_DB: &str = ".taxon/users.db";

/// Environment variable naming another store file, or a `postgres://` URL.
pub const USERS_DB_ENV: &str = "TAXON_USERS_DB";

/// Longest accepted user name, in bytes.
pub const MAX_USER_NAME: usize = 64;

/// Schema step 1 (`IF NOT EXISTS`: files from before the schema was versioned have the tables).
const SCHEMA: &[&str] = &["
CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS removed_users (
    name       TEXT PRIMARY KEY,
    removed_at INTEGER NOT NULL
);
"];

/// The same for PostgreSQL (a `schema_version` row `users` holds its version).
const PG_SCHEMA: &[&str] = &["
CREATE TABLE IF NOT EXISTS users (
    name          TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    scopes        TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    updated_at    BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS removed_users (
    name       TEXT PRIMARY KEY,
    removed_at BIGINT NOT NULL
);
"];

/// A user as listed: never the password hash.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UserInfo {
    pub name: String,
    /// Granted scopes, in canonical order.
    pub scopes: Vec<Scope>,
    pub created_at: DateTime<Utc>,
    /// Last change of the password (the creation time until one).
    pub updated_at: DateTime<Utc>,
}

/// An open user store.
pub struct UserStore {
    db: Db,
    /// The file, or the PostgreSQL URL without its password.
    path: PathBuf,
}

impl std::fmt::Debug for UserStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserStore")
            .field("path", &self.path)
            .finish()
    }
}

/// Refuses names that are empty, longer than [`MAX_USER_NAME`], start with `-`, or hold
/// anything but ASCII letters, digits and `._@-`.
pub fn check_user_name(name: &str) -> Result<(), AuthError> {
    let reason = if name.is_empty() {
        Some("it is empty")
    } else if name.len() > MAX_USER_NAME {
        Some("it is longer than 64 characters")
    } else if name.starts_with('-') {
        Some("it starts with `-`")
    } else if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._@-".contains(&b))
    {
        Some("use ASCII letters, digits and . _ @ - only")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(AuthError::InvalidUserName {
            name: name.chars().take(80).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// Creates `path` readable by its owner only, so the hashes are not world-readable (SQLite
/// gives its `-wal` and `-shm` files the same mode).
fn create_private(path: &Path) -> Result<(), AuthError> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    match opts.open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(source) => Err(AuthError::Io {
            path: path.to_path_buf(),
            source,
        }),
    }
}

impl UserStore {
    /// Opens the store at `path`: a SQLite file (created when needed, mode 0600), or the
    /// PostgreSQL database a `postgres://` URL names (its tables created when needed).
    pub fn open(path: &Path) -> Result<Self, AuthError> {
        let (db, shown) = if taxon_db::is_postgres_path(path) {
            let url = path.to_str().unwrap_or_default();
            let shown = PathBuf::from(taxon_db::redact_url(url));
            let db = Db::connect_postgres(url).map_err(AuthError::db(&shown))?;
            (db, shown)
        } else {
            (Self::open_sqlite(path)?, path.to_path_buf())
        };
        db.migrate("users", SCHEMA, PG_SCHEMA)
            .map_err(AuthError::db(&shown))?;
        Ok(Self { db, path: shown })
    }

    fn open_sqlite(path: &Path) -> Result<Db, AuthError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AuthError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        if !path.exists() {
            create_private(path)?;
        }
        let e = |x: rusqlite::Error| AuthError::db(path)(x.into());
        let conn = Connection::open(path).map_err(e)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(e)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        Ok(Db::sqlite(conn))
    }

    /// The store's file (or its PostgreSQL URL without the password).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The connection, for tests that shape rows directly.
    #[cfg(test)]
    pub(crate) fn conn_for_tests(&self) -> &Db {
        &self.db
    }

    fn err(&self) -> impl Fn(taxon_db::DbError) -> AuthError + '_ {
        AuthError::db(&self.path)
    }

    /// Adds a user with an argon2id hash of `password`. Refuses an existing name, an invalid
    /// name, a password under 8 characters and an empty scope list.
    pub fn add(&self, name: &str, password: &str, scopes: &[Scope]) -> Result<(), AuthError> {
        check_user_name(name)?;
        check_password_policy(password)?;
        if scopes.is_empty() {
            return Err(AuthError::NoScopes);
        }
        if self.get(name)?.is_some() {
            return Err(AuthError::UserExists(name.to_string()));
        }
        let hash = hash_password(password)?;
        let now = now_ms();
        let exists = || AuthError::UserExists(name.to_string());
        self.db.transaction(self.err(), |tx| {
            // Another process may have added the name since the check above (PostgreSQL runs
            // this again after a conflict, and then finds the row here).
            if tx
                .query_opt("SELECT 1 FROM users WHERE name = ?1", params![name])
                .map_err(self.err())?
                .is_some()
            {
                return Err(exists());
            }
            match tx.execute(
                "INSERT INTO users (name, password_hash, scopes, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?4)",
                params![name, hash, format_scopes(scopes), now],
            ) {
                Ok(_) => {}
                Err(e) if e.is_unique_violation() => return Err(exists()),
                Err(e) => return Err(self.err()(e)),
            }
            // The new user's creation time now refuses the old one's tokens by itself.
            tx.execute("DELETE FROM removed_users WHERE name = ?1", params![name])
                .map_err(self.err())?;
            Ok(())
        })
    }

    /// Replaces a user's password; tokens issued before the change are refused from then on.
    pub fn set_password(&self, name: &str, password: &str) -> Result<(), AuthError> {
        check_password_policy(password)?;
        if self.get(name)?.is_none() {
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        let hash = hash_password(password)?;
        let changed = self
            .db
            .execute(
                "UPDATE users SET password_hash = ?2, updated_at = ?3 WHERE name = ?1",
                params![name, hash, now_ms()],
            )
            .map_err(self.err())?;
        if changed == 0 {
            return Err(AuthError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    /// Removes a user; `false` when there was none. Tokens issued to the user are refused
    /// from then on.
    pub fn remove(&self, name: &str) -> Result<bool, AuthError> {
        let removed = self.db.transaction(self.err(), |tx| {
            let removed = tx
                .execute("DELETE FROM users WHERE name = ?1", params![name])
                .map_err(self.err())?;
            if removed > 0 {
                tx.execute(
                    "INSERT INTO removed_users (name, removed_at) VALUES (?1, ?2)
                     ON CONFLICT (name) DO UPDATE SET removed_at = excluded.removed_at",
                    params![name, now_ms()],
                )
                .map_err(self.err())?;
            }
            Ok(removed)
        })?;
        Ok(removed > 0)
    }

    /// Every user, by name.
    pub fn list(&self) -> Result<Vec<UserInfo>, AuthError> {
        let rows = self
            .db
            .query(
                "SELECT name, scopes, created_at, updated_at FROM users ORDER BY name",
                &[],
            )
            .map_err(self.err())?;
        let mut users = Vec::new();
        for r in rows {
            let (name, scopes, created, updated) = (|| {
                Ok::<_, taxon_db::DbError>((r.get(0)?, r.get::<String>(1)?, r.get(2)?, r.get(3)?))
            })()
            .map_err(self.err())?;
            users.push(self.info(name, &scopes, created, updated)?);
        }
        Ok(users)
    }

    /// One user, when present.
    pub fn get(&self, name: &str) -> Result<Option<UserInfo>, AuthError> {
        Ok(self.credentials(name)?.map(|(info, _)| info))
    }

    /// The user and the password hash, when present.
    pub(crate) fn credentials(&self, name: &str) -> Result<Option<(UserInfo, String)>, AuthError> {
        let row = self
            .db
            .query_opt(
                "SELECT name, scopes, created_at, updated_at, password_hash
                 FROM users WHERE name = ?1",
                params![name],
            )
            .and_then(|r| {
                r.map(|r| {
                    Ok::<_, taxon_db::DbError>((
                        r.get::<String>(0)?,
                        r.get::<String>(1)?,
                        r.get::<i64>(2)?,
                        r.get::<i64>(3)?,
                        r.get::<String>(4)?,
                    ))
                })
                .transpose()
            })
            .map_err(self.err())?;
        match row {
            None => Ok(None),
            Some((name, scopes, created, updated, hash)) => {
                Ok(Some((self.info(name, &scopes, created, updated)?, hash)))
            }
        }
    }

    fn info(
        &self,
        name: String,
        scopes: &str,
        created: i64,
        updated: i64,
    ) -> Result<UserInfo, AuthError> {
        let scopes = parse_scopes(scopes).map_err(|e| AuthError::CorruptUser {
            path: self.path.clone(),
            name: name.clone(),
            reason: e.to_string(),
        })?;
        Ok(UserInfo {
            name,
            scopes,
            created_at: from_ms(created),
            updated_at: from_ms(updated),
        })
    }

    /// The user when `password` is theirs, `None` for an unknown user or a wrong password.
    /// An unknown user costs one argon2 verification too, so the time taken does not tell
    /// which names exist.
    pub fn verify(&self, name: &str, password: &str) -> Result<Option<UserInfo>, AuthError> {
        let found = self.credentials(name)?;
        check_credentials(found, password, &self.path)
    }

    /// For each name that has or had an account: the time (ms since the epoch) before which
    /// its tokens are refused (its creation or last password change, or its removal).
    pub(crate) fn not_before(&self) -> Result<HashMap<String, i64>, AuthError> {
        let rows = self
            .db
            .query(
                "SELECT name, updated_at FROM users
                 UNION ALL SELECT name, removed_at FROM removed_users",
                &[],
            )
            .map_err(self.err())?;
        let mut map = HashMap::new();
        for r in rows {
            let (name, at): (String, i64) =
                (|| Ok((r.get(0)?, r.get(1)?)))().map_err(self.err())?;
            let e = map.entry(name).or_insert(at);
            *e = (*e).max(at);
        }
        Ok(map)
    }
}

/// Checks `password` against a looked-up user (`None`: unknown, checked against a dummy hash
/// for equal timing). Runs without the store, so a caller can release the store's lock first.
pub(crate) fn check_credentials(
    found: Option<(UserInfo, String)>,
    password: &str,
    path: &Path,
) -> Result<Option<UserInfo>, AuthError> {
    let Some((info, hash)) = found else {
        dummy_verify(password);
        return Ok(None);
    };
    match verify_password(password, &hash) {
        Ok(true) => Ok(Some(info)),
        Ok(false) => Ok(None),
        Err(e) => Err(AuthError::CorruptUser {
            path: path.to_path_buf(),
            name: info.name,
            reason: format!("bad password hash: {e}"),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each test below runs on a SQLite file (`NAME::sqlite`) and on a real PostgreSQL
    // database (`NAME::postgres`; skipped with a notice when no test server is set).
    taxon_db::on_both_backends!(
        "sub/users.db";
        add_verify_list_remove,
        hashes_are_argon2id_and_never_listed,
        refuses_duplicates_bad_names_short_passwords_and_no_scopes,
        set_password_replaces_the_old_one,
        not_before_covers_current_and_removed_users,
        a_corrupt_row_is_reported_with_the_user,
        concurrent_adds_of_one_name_make_one_user,
    );

    fn concurrent_adds_of_one_name_make_one_user(at: &Path) {
        UserStore::open(at).unwrap();
        let results: Vec<_> = std::thread::scope(|sc| {
            let handles: Vec<_> = (0..3)
                .map(|i| {
                    sc.spawn(move || {
                        UserStore::open(at).unwrap().add(
                            "alice",
                            &format!("password-{i}"),
                            &[Scope::Predict],
                        )
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(
            results.iter().filter(|r| r.is_ok()).count(),
            1,
            "{results:?}"
        );
        assert!(
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .all(|e| matches!(e, AuthError::UserExists(_))),
            "{results:?}"
        );
        assert_eq!(UserStore::open(at).unwrap().list().unwrap().len(), 1);
    }

    fn add_verify_list_remove(at: &Path) {
        let s = UserStore::open(at).unwrap();
        s.add("alice", "alice-password", &[Scope::Admin, Scope::Predict])
            .unwrap();
        s.add("bob", "bob-password", &[Scope::Predict]).unwrap();
        let alice = s.verify("alice", "alice-password").unwrap().unwrap();
        assert_eq!(alice.scopes, vec![Scope::Predict, Scope::Admin]);
        assert_eq!(s.verify("alice", "bob-password").unwrap(), None);
        assert_eq!(s.verify("carol", "alice-password").unwrap(), None);
        let names: Vec<_> = s.list().unwrap().into_iter().map(|u| u.name).collect();
        assert_eq!(names, ["alice", "bob"]);
        assert!(s.remove("alice").unwrap());
        assert!(!s.remove("alice").unwrap());
        assert_eq!(s.verify("alice", "alice-password").unwrap(), None);
        assert_eq!(s.list().unwrap().len(), 1);
    }

    fn hashes_are_argon2id_and_never_listed(at: &Path) {
        let s = UserStore::open(at).unwrap();
        s.add("alice", "alice-password", &[Scope::Predict]).unwrap();
        let (_, hash) = s.credentials("alice").unwrap().unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        let json = serde_json::to_string(&s.list().unwrap()).unwrap();
        assert!(
            !json.contains("argon2") && !json.contains("password"),
            "{json}"
        );
    }

    fn refuses_duplicates_bad_names_short_passwords_and_no_scopes(at: &Path) {
        let s = UserStore::open(at).unwrap();
        s.add("alice", "alice-password", &[Scope::Predict]).unwrap();
        assert!(matches!(
            s.add("alice", "another-password", &[Scope::Admin]),
            Err(AuthError::UserExists(n)) if n == "alice"
        ));
        // The first password still works: the duplicate changed nothing.
        assert!(s.verify("alice", "alice-password").unwrap().is_some());
        assert!(matches!(
            s.add("bob", "short", &[Scope::Predict]),
            Err(AuthError::WeakPassword { .. })
        ));
        assert!(matches!(
            s.add("bob", "long enough", &[]),
            Err(AuthError::NoScopes)
        ));
        for bad in ["", "-rf", "has space", "tab\t", "é", &"x".repeat(65)] {
            assert!(
                matches!(
                    s.add(bad, "long enough", &[Scope::Predict]),
                    Err(AuthError::InvalidUserName { .. })
                ),
                "{bad:?}"
            );
        }
        s.add("svc.ci-bot_1@corp", "long enough", &[Scope::Predict])
            .unwrap();
    }

    fn set_password_replaces_the_old_one(at: &Path) {
        let s = UserStore::open(at).unwrap();
        s.add("alice", "first-password", &[Scope::Predict]).unwrap();
        let before = s.get("alice").unwrap().unwrap();
        s.set_password("alice", "second-password").unwrap();
        assert!(s.verify("alice", "first-password").unwrap().is_none());
        let after = s.verify("alice", "second-password").unwrap().unwrap();
        assert_eq!(after.created_at, before.created_at);
        assert!(after.updated_at >= before.updated_at);
        assert!(matches!(
            s.set_password("nobody", "whatever-pass"),
            Err(AuthError::NoSuchUser(_))
        ));
        assert!(matches!(
            s.set_password("alice", "short"),
            Err(AuthError::WeakPassword { .. })
        ));
    }

    fn not_before_covers_current_and_removed_users(at: &Path) {
        let s = UserStore::open(at).unwrap();
        s.add("alice", "alice-password", &[Scope::Predict]).unwrap();
        s.add("bob", "bob-password", &[Scope::Predict]).unwrap();
        let bob_created = s.get("bob").unwrap().unwrap().created_at.timestamp_millis();
        s.remove("bob").unwrap();
        let nb = s.not_before().unwrap();
        assert_eq!(nb.len(), 2);
        assert!(nb["bob"] >= bob_created);
        // Re-adding a removed name clears its tombstone; its creation time takes over.
        s.add("bob", "bob-password-2", &[Scope::Admin]).unwrap();
        let nb = s.not_before().unwrap();
        assert_eq!(
            nb["bob"],
            s.get("bob").unwrap().unwrap().updated_at.timestamp_millis()
        );
    }

    #[test]
    fn reopening_keeps_users_and_the_file_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.db");
        UserStore::open(&path)
            .unwrap()
            .add("alice", "alice-password", &[Scope::Predict])
            .unwrap();
        let s = UserStore::open(&path).unwrap();
        assert!(s.verify("alice", "alice-password").unwrap().is_some());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "mode {mode:o}");
        }
    }

    fn a_corrupt_row_is_reported_with_the_user(at: &Path) {
        let s = UserStore::open(at).unwrap();
        s.add("alice", "alice-password", &[Scope::Predict]).unwrap();
        s.db.execute(
            "UPDATE users SET scopes = 'predict root' WHERE name = 'alice'",
            &[],
        )
        .unwrap();
        let err = s.list().unwrap_err().to_string();
        assert!(err.contains("alice") && err.contains("root"), "{err}");
        s.db.execute(
            "UPDATE users SET scopes = 'predict', password_hash = 'garbage' WHERE name = 'alice'",
            &[],
        )
        .unwrap();
        let err = s.verify("alice", "alice-password").unwrap_err().to_string();
        assert!(err.contains("bad password hash"), "{err}");
    }
}
