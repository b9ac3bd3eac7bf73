//! The alert history (SQLite, `.taxon/alerts.db` by default): every alert fired and resolved
//! (rule, condition, severity, model version, value, threshold, times) and, per notice, each
//! channel's outcome (queued, retrying with the last error, sent, dropped). WAL journal, one
//! transaction per write, so a crash loses at most the write in progress. Alerts still open
//! when a server starts were left by one that stopped: they are closed as `server_stopped`.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, SecondsFormat, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::error::AlertsError;

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY,
    rule TEXT NOT NULL,
    condition TEXT NOT NULL,
    severity TEXT NOT NULL,
    model_version TEXT NOT NULL,
    value REAL NOT NULL,
    threshold REAL NOT NULL,
    summary TEXT NOT NULL,
    started_at TEXT NOT NULL,
    resolved_at TEXT,
    ended TEXT
);
CREATE INDEX IF NOT EXISTS alerts_open ON alerts (resolved_at);
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    alert_id INTEGER NOT NULL REFERENCES alerts (id),
    kind TEXT NOT NULL,
    channel TEXT NOT NULL,
    outcome TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    queued_at TEXT NOT NULL,
    done_at TEXT
);
CREATE INDEX IF NOT EXISTS deliveries_alert ON deliveries (alert_id);
";

/// One channel's notice of an alert.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// `firing`, `repeat` or `resolved`.
    pub kind: String,
    pub channel: String,
    /// `queued`, `retrying`, `sent` or `dropped`.
    pub outcome: String,
    pub attempts: i64,
    pub error: Option<String>,
    pub queued_at: String,
    pub done_at: Option<String>,
}

/// One alert.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AlertRow {
    pub id: i64,
    pub rule: String,
    pub condition: String,
    pub severity: String,
    pub model_version: String,
    pub value: f64,
    pub threshold: f64,
    pub summary: String,
    pub started_at: String,
    pub resolved_at: Option<String>,
    /// `resolved`, `server_stopped`, or `None` while firing.
    pub ended: Option<String>,
    pub deliveries: Vec<Delivery>,
}

/// What an alert is when it fires.
#[derive(Clone, Debug)]
pub struct Fired<'a> {
    pub rule: &'a str,
    pub condition: &'a str,
    pub severity: &'a str,
    pub model_version: &'a str,
    pub value: f64,
    pub threshold: f64,
    pub summary: &'a str,
    pub started_at: DateTime<Utc>,
}

/// The history database. Cheap to clone; writes are serialized.
#[derive(Clone, Debug)]
pub struct History {
    conn: Arc<Mutex<Connection>>,
    path: PathBuf,
}

fn time(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

impl History {
    /// Opens (creating it and its folder when missing) the history at `path`.
    pub fn open(path: &Path) -> Result<Self, AlertsError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| AlertsError::HistoryFolder {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|source| AlertsError::History {
            path: path.to_path_buf(),
            source,
        })?;
        let h = Self {
            conn: Arc::new(Mutex::new(conn)),
            path: path.to_path_buf(),
        };
        h.run(|c| {
            c.pragma_update(None, "journal_mode", "WAL")?;
            c.pragma_update(None, "synchronous", "FULL")?;
            c.busy_timeout(std::time::Duration::from_secs(5))?;
            let version: i64 = c.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if version > SCHEMA_VERSION {
                return Err(rusqlite::Error::InvalidParameterName(format!(
                    "schema version {version} is newer than this taxon's ({SCHEMA_VERSION}): upgrade taxon"
                )));
            }
            c.execute_batch(SCHEMA)?;
            c.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            Ok(())
        })?;
        Ok(h)
    }

    /// Opens an existing history for reading (`taxon alerts list`).
    pub fn open_existing(path: &Path) -> Result<Self, AlertsError> {
        if !path.exists() {
            return Err(AlertsError::History {
                path: path.to_path_buf(),
                source: rusqlite::Error::InvalidPath(path.to_path_buf()),
            });
        }
        Self::open(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic mid-write cannot leave a half transaction: keep using the connection.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn run<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T>,
    ) -> Result<T, AlertsError> {
        f(&mut self.lock()).map_err(|source| AlertsError::History {
            path: self.path.clone(),
            source,
        })
    }

    /// Closes the alerts a previous server left firing; returns how many.
    pub fn close_orphans(&self, now: DateTime<Utc>) -> Result<usize, AlertsError> {
        self.run(|c| {
            c.execute(
                "UPDATE alerts SET resolved_at = ?1, ended = 'server_stopped' WHERE resolved_at IS NULL",
                params![time(now)],
            )
        })
    }

    /// Records a new firing alert; returns its id.
    pub fn fired(&self, a: &Fired<'_>) -> Result<i64, AlertsError> {
        self.run(|c| {
            c.execute(
                "INSERT INTO alerts (rule, condition, severity, model_version, value, threshold, summary, started_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    a.rule,
                    a.condition,
                    a.severity,
                    a.model_version,
                    a.value,
                    a.threshold,
                    a.summary,
                    time(a.started_at)
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records that alert `id` resolved at `at`.
    pub fn resolved(&self, id: i64, at: DateTime<Utc>) -> Result<(), AlertsError> {
        self.run(|c| {
            c.execute(
                "UPDATE alerts SET resolved_at = ?2, ended = 'resolved' WHERE id = ?1",
                params![id, time(at)],
            )
            .map(|_| ())
        })
    }

    /// Records a notice of alert `alert_id` queued for `channel`; returns the delivery's id.
    pub fn queued(
        &self,
        alert_id: i64,
        kind: &str,
        channel: &str,
        at: DateTime<Utc>,
    ) -> Result<i64, AlertsError> {
        self.run(|c| {
            c.execute(
                "INSERT INTO deliveries (alert_id, kind, channel, outcome, queued_at) VALUES (?1, ?2, ?3, 'queued', ?4)",
                params![alert_id, kind, channel, time(at)],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Records the outcome of a try at `deliveries`: `sent`, `retrying` (with `error`) or
    /// `dropped`.
    pub fn outcome(
        &self,
        deliveries: &[i64],
        outcome: &str,
        attempts: i64,
        error: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<(), AlertsError> {
        if deliveries.is_empty() {
            return Ok(());
        }
        let done = (outcome != "retrying").then(|| time(at));
        self.run(|c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE deliveries SET outcome = ?2, attempts = ?3, error = ?4, done_at = ?5 WHERE id = ?1",
                )?;
                for id in deliveries {
                    stmt.execute(params![id, outcome, attempts, error, done])?;
                }
            }
            tx.commit()
        })
    }

    /// The alerts, newest first (only those still firing with `firing_only`), at most
    /// `limit`.
    pub fn list(&self, firing_only: bool, limit: usize) -> Result<Vec<AlertRow>, AlertsError> {
        self.run(|c| {
            let sql = format!(
                "SELECT id, rule, condition, severity, model_version, value, threshold, summary, started_at, resolved_at, ended
                 FROM alerts {} ORDER BY id DESC LIMIT ?1",
                if firing_only { "WHERE resolved_at IS NULL" } else { "" }
            );
            let mut stmt = c.prepare(&sql)?;
            let limit = i64::try_from(limit).unwrap_or(i64::MAX);
            let mut rows: Vec<AlertRow> = stmt
                .query_map(params![limit], |r| {
                    Ok(AlertRow {
                        id: r.get(0)?,
                        rule: r.get(1)?,
                        condition: r.get(2)?,
                        severity: r.get(3)?,
                        model_version: r.get(4)?,
                        value: r.get(5)?,
                        threshold: r.get(6)?,
                        summary: r.get(7)?,
                        started_at: r.get(8)?,
                        resolved_at: r.get(9)?,
                        ended: r.get(10)?,
                        deliveries: Vec::new(),
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
            let mut stmt = c.prepare(
                "SELECT kind, channel, outcome, attempts, error, queued_at, done_at FROM deliveries WHERE alert_id = ?1 ORDER BY id",
            )?;
            for row in &mut rows {
                row.deliveries = stmt
                    .query_map(params![row.id], |r| {
                        Ok(Delivery {
                            kind: r.get(0)?,
                            channel: r.get(1)?,
                            outcome: r.get(2)?,
                            attempts: r.get(3)?,
                            error: r.get(4)?,
                            queued_at: r.get(5)?,
                            done_at: r.get(6)?,
                        })
                    })?
                    .collect::<rusqlite::Result<_>>()?;
            }
            Ok(rows)
        })
    }

    /// The id of the alert still firing for (`rule`, `model_version`), if any.
    pub fn open_alert(&self, rule: &str, model_version: &str) -> Result<Option<i64>, AlertsError> {
        self.run(|c| {
            c.query_row(
                "SELECT id FROM alerts WHERE rule = ?1 AND model_version = ?2 AND resolved_at IS NULL",
                params![rule, model_version],
                |r| r.get(0),
            )
            .optional()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_and_deliveries_round_trip_and_orphans_close() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/alerts.db");
        let h = History::open(&path).unwrap();
        let t0 = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let id = h
            .fired(&Fired {
                rule: "auth",
                condition: "auth_failures_above",
                severity: "critical",
                model_version: "v1",
                value: 12.0,
                threshold: 10.0,
                summary: "s",
                started_at: t0,
            })
            .unwrap();
        let d = h.queued(id, "firing", "hook", t0).unwrap();
        h.outcome(&[d], "retrying", 1, Some("could not connect"), t0)
            .unwrap();
        h.outcome(&[d], "sent", 2, None, t0).unwrap();
        assert_eq!(h.open_alert("auth", "v1").unwrap(), Some(id));
        let rows = h.list(true, 10).unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].deliveries[0].outcome, "sent");
        assert_eq!(rows[0].deliveries[0].attempts, 2);
        drop(h);
        // A new server closes what the last one left open.
        let h = History::open(&path).unwrap();
        assert_eq!(h.close_orphans(t0).unwrap(), 1);
        let rows = h.list(false, 10).unwrap();
        assert_eq!(rows[0].ended.as_deref(), Some("server_stopped"));
        assert!(h.list(true, 10).unwrap().is_empty());
        let missing = History::open_existing(&dir.path().join("none.db")).unwrap_err();
        assert!(missing.to_string().contains("none.db"), "{missing}");
    }
}
