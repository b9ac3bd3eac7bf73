//! The run store: one SQLite file (`.taxon/runs.db`), or a shared PostgreSQL database when
//! `TAXON_RUNS_DB` is a `postgres://` URL (see taxon-db). SQLite rather than files because
//! a run is written piece by piece from a live process (heartbeat, one epoch at a time) while
//! other commands read it: SQLite gives atomic multi-row writes, concurrent readers (WAL) and
//! indexed look-ups by id prefix, and the file is readable by any SQLite client.
//!
//! A run whose process died is left `running`; readers show it as `killed` when its heartbeat is
//! older than [`STALE_AFTER`] or, on the same host, its process (pid + start time) is gone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use rusqlite::Connection;
use taxon_db::{Db, DbError, Row, params};

use crate::env;
use crate::error::{Result, TrackError};
use crate::record::{
    Artifact, CodeVersion, MachineInfo, MetricPoint, RunRecord, RunStatus, RunSummary, StageRecord,
};

/// File name of the store inside `.taxon/`.
pub const RUNS_DB: &str = "runs.db";

/// How often a live run refreshes its heartbeat.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(10);

/// A `running` run whose heartbeat is older than this is shown as killed.
pub const STALE_AFTER: Duration = Duration::from_secs(60);

/// Schema step 1 (`IF NOT EXISTS`: files from before the schema was versioned have the tables).
const SCHEMA: &[&str] = &["
CREATE TABLE IF NOT EXISTS runs (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    start_ms      INTEGER NOT NULL,
    end_ms        INTEGER,
    heartbeat_ms  INTEGER NOT NULL,
    host          TEXT NOT NULL,
    pid           INTEGER,
    pid_start     INTEGER,
    model_type    TEXT,
    data_path     TEXT,
    data_version  TEXT,
    code          TEXT NOT NULL,
    machine       TEXT NOT NULL,
    error         TEXT,
    mlflow_run_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_start ON runs(start_ms);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS metric_steps (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    step   INTEGER NOT NULL,
    value  REAL NOT NULL,
    ts_ms  INTEGER NOT NULL,
    PRIMARY KEY (run_id, key, step)
);
CREATE TABLE IF NOT EXISTS final_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  REAL NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    path   TEXT NOT NULL,
    md5    TEXT NOT NULL,
    size   INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS artifacts_md5 ON artifacts(md5);
CREATE TABLE IF NOT EXISTS stages (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     INTEGER NOT NULL,
    name    TEXT NOT NULL,
    seconds REAL NOT NULL,
    peak_rss_bytes INTEGER NOT NULL,
    PRIMARY KEY (run_id, name)
);
"];

/// The same for PostgreSQL (a `schema_version` row `runs` holds its version).
const PG_SCHEMA: &[&str] = &["
CREATE TABLE IF NOT EXISTS runs (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    start_ms      BIGINT NOT NULL,
    end_ms        BIGINT,
    heartbeat_ms  BIGINT NOT NULL,
    host          TEXT NOT NULL,
    pid           BIGINT,
    pid_start     BIGINT,
    model_type    TEXT,
    data_path     TEXT,
    data_version  TEXT,
    code          TEXT NOT NULL,
    machine       TEXT NOT NULL,
    error         TEXT,
    mlflow_run_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_start ON runs(start_ms);
CREATE TABLE IF NOT EXISTS params (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS metric_steps (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    step   BIGINT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    ts_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, key, step)
);
CREATE TABLE IF NOT EXISTS final_metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    key    TEXT NOT NULL,
    value  DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    path   TEXT NOT NULL,
    md5    TEXT NOT NULL,
    size   BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);
CREATE INDEX IF NOT EXISTS artifacts_md5 ON artifacts(md5);
CREATE TABLE IF NOT EXISTS stages (
    run_id  TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    seq     BIGINT NOT NULL,
    name    TEXT NOT NULL,
    seconds DOUBLE PRECISION NOT NULL,
    peak_rss_bytes BIGINT NOT NULL,
    PRIMARY KEY (run_id, name)
);
"];

/// What a new run starts with.
#[derive(Clone, Debug, Default)]
pub struct NewRun {
    pub name: String,
    /// `train` or `eval`.
    pub kind: String,
    pub model_type: Option<String>,
    pub data_path: Option<String>,
    pub data_version: Option<String>,
    pub params: BTreeMap<String, String>,
    pub code: CodeVersion,
    pub machine: MachineInfo,
}

/// How a run ended, written in one transaction.
#[derive(Clone, Debug, Default)]
pub struct RunEnd {
    /// `None`: finished; `Some(message)`: failed.
    pub error: Option<String>,
    /// Replaces the params recorded at the start when set (the resolved config).
    pub params: Option<BTreeMap<String, String>>,
    pub model_type: Option<String>,
    pub metrics: BTreeMap<String, f64>,
    pub artifacts: Vec<Artifact>,
    pub stages: Vec<StageRecord>,
}

/// An open run store.
pub struct RunStore {
    db: Db,
    /// The file, or the PostgreSQL URL without its password.
    path: PathBuf,
    /// What `open` was given (a URL with its password), to open another connection.
    location: PathBuf,
}

fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

fn from_ms(v: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(v).single().unwrap_or_default()
}

/// A fresh run id: 32 random hex digits (the shape of MLflow's run ids).
pub fn new_run_id() -> String {
    let mut b = [0u8; 16];
    if getrandom::fill(&mut b).is_err() {
        // No OS randomness: time and pid still make a unique id on this machine.
        let nanos = Utc::now().timestamp_nanos_opt().unwrap_or_default() as u128;
        b = (nanos ^ ((std::process::id() as u128) << 96)).to_le_bytes();
    }
    hex::encode(b)
}

impl RunStore {
    /// Opens (creating when needed) the store at `path`: a SQLite file, or the PostgreSQL
    /// database a `postgres://` URL names.
    pub fn open(path: &Path) -> Result<Self> {
        let (db, shown) = if taxon_db::is_postgres_path(path) {
            let url = path.to_str().unwrap_or_default();
            let shown = PathBuf::from(taxon_db::redact_url(url));
            let db = Db::connect_postgres(url).map_err(TrackError::db(&shown))?;
            (db, shown)
        } else {
            (Self::open_sqlite(path)?, path.to_path_buf())
        };
        db.migrate("runs", SCHEMA, PG_SCHEMA)
            .map_err(TrackError::db(&shown))?;
        Ok(Self {
            db,
            path: shown,
            location: path.to_path_buf(),
        })
    }

    fn open_sqlite(path: &Path) -> Result<Db> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| TrackError::Io {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let e = |x: rusqlite::Error| TrackError::db(path)(x.into());
        let conn = Connection::open(path).map_err(e)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(e)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(e)?;
        conn.pragma_update(None, "foreign_keys", "ON").map_err(e)?;
        Ok(Db::sqlite(conn))
    }

    /// Opens the default store: `.taxon/runs.db` of the repository around `dir`, or
    /// `dir/.taxon/runs.db` outside a repository; env `TAXON_RUNS_DB` names another file or a
    /// `postgres://` URL.
    pub fn open_default(dir: &Path) -> Result<Self> {
        match std::env::var_os("TAXON_RUNS_DB") {
            Some(p) if !p.is_empty() => Self::open(Path::new(&p)),
            _ => Self::open(&env::default_taxon_dir(dir).join(RUNS_DB)),
        }
    }

    /// The file, or the PostgreSQL URL without its password (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the store was opened from, to open another connection to it: the file, or the
    /// PostgreSQL URL with its password (never show it).
    pub fn location(&self) -> &Path {
        &self.location
    }

    fn err(&self) -> impl Fn(DbError) -> TrackError + '_ {
        TrackError::db(&self.path)
    }

    /// Records a new `running` run owned by this process; returns its id.
    pub fn create_run(&mut self, run: &NewRun) -> Result<String> {
        let id = new_run_id();
        let now = ms(Utc::now());
        let pid = std::process::id();
        let code = serde_json::to_string(&run.code).unwrap_or_default();
        let machine = serde_json::to_string(&run.machine).unwrap_or_default();
        let pid_start = env::process_start_ticks(pid).map(|t| t as i64);
        self.db.transaction(self.err(), |tx| {
            tx.execute(
            "INSERT INTO runs (id, name, kind, status, start_ms, heartbeat_ms, host, pid, pid_start,
                model_type, data_path, data_version, code, machine)
             VALUES (?1, ?2, ?3, 'running', ?4, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
            params![
                id,
                run.name,
                run.kind,
                now,
                run.machine.hostname,
                pid,
                pid_start,
                run.model_type,
                run.data_path,
                run.data_version,
                code,
                machine
            ],
        )
        .map_err(self.err())?;
            insert_params(tx, &id, &run.params).map_err(self.err())
        })?;
        Ok(id)
    }

    /// Refreshes a live run's heartbeat.
    pub fn heartbeat(&self, id: &str) -> Result<()> {
        self.db
            .execute(
                "UPDATE runs SET heartbeat_ms = ?2 WHERE id = ?1 AND status = 'running'",
                params![id, ms(Utc::now())],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// Appends per-step metric values (one epoch's), in one transaction; refreshes the heartbeat.
    pub fn log_metrics(&mut self, id: &str, points: &[MetricPoint]) -> Result<()> {
        let now = ms(Utc::now());
        self.db.transaction(self.err(), |tx| {
            for p in points {
                tx.execute(
                    "INSERT INTO metric_steps (run_id, key, step, value, ts_ms)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (run_id, key, step)
                     DO UPDATE SET value = excluded.value, ts_ms = excluded.ts_ms",
                    params![id, p.key, p.step as i64, p.value, ms(p.timestamp)],
                )
                .map_err(self.err())?;
            }
            tx.execute(
                "UPDATE runs SET heartbeat_ms = ?2 WHERE id = ?1",
                params![id, now],
            )
            .map_err(self.err())?;
            Ok(())
        })
    }

    /// Adds final metrics, artifacts and stages to a run that already ended (as `taxon eval`
    /// does to the run that trained the model), in one transaction.
    pub fn append(
        &mut self,
        id: &str,
        metrics: &BTreeMap<String, f64>,
        artifacts: &[Artifact],
        stages: &[StageRecord],
    ) -> Result<()> {
        self.db.transaction(self.err(), |tx| {
            insert_results(tx, id, metrics, artifacts, stages).map_err(self.err())
        })
    }

    /// Ends a run: status, end time, final metrics, artifacts, stages (and the resolved params),
    /// in one transaction.
    pub fn finish(&mut self, id: &str, end: &RunEnd) -> Result<()> {
        let e = || self.err();
        let now = ms(Utc::now());
        let status = if end.error.is_some() {
            RunStatus::Failed
        } else {
            RunStatus::Finished
        };
        self.db.transaction(e(), |tx| {
            tx.execute(
                "UPDATE runs SET status = ?2, end_ms = ?3, heartbeat_ms = ?3, error = ?4,
                    model_type = COALESCE(?5, model_type) WHERE id = ?1",
                params![id, status.as_str(), now, end.error, end.model_type],
            )
            .map_err(e())?;
            if let Some(p) = &end.params {
                tx.execute("DELETE FROM params WHERE run_id = ?1", params![id])
                    .map_err(e())?;
                insert_params(tx, id, p).map_err(e())?;
            }
            insert_results(tx, id, &end.metrics, &end.artifacts, &end.stages).map_err(e())
        })
    }

    /// Remembers the id a run has on an MLflow server.
    pub fn set_mlflow_run_id(&self, id: &str, mlflow_id: &str) -> Result<()> {
        self.db
            .execute(
                "UPDATE runs SET mlflow_run_id = ?2 WHERE id = ?1",
                params![id, mlflow_id],
            )
            .map_err(self.err())?;
        Ok(())
    }

    /// The full id of the run whose id is `prefix` or starts with it (a unique prefix).
    pub fn resolve(&self, prefix: &str) -> Result<String> {
        let prefix = prefix.trim().to_ascii_lowercase();
        if prefix.is_empty() || !prefix.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(TrackError::UnknownRun { id: prefix });
        }
        let upper = format!("{prefix}g"); // 'g' sorts after every hex digit
        let ids: Vec<String> = self
            .db
            .query(
                "SELECT id FROM runs WHERE id >= ?1 AND id < ?2 ORDER BY id LIMIT 6",
                params![prefix, upper],
            )
            .and_then(|rows| rows.iter().map(|r| r.get(0)).collect())
            .map_err(self.err())?;
        match ids.len() {
            0 => Err(TrackError::UnknownRun { id: prefix }),
            1 => Ok(ids.into_iter().next().unwrap_or_default()),
            _ => Err(TrackError::AmbiguousRun {
                id: prefix,
                candidates: ids,
            }),
        }
    }

    /// The newest runs first, at most `limit`.
    pub fn list(&self, limit: usize) -> Result<Vec<RunSummary>> {
        let rows: Vec<RawSummary> = self
            .db
            .query(
                &format!("SELECT {SUMMARY_COLS} FROM runs ORDER BY start_ms DESC, id LIMIT ?1"),
                params![limit.min(i64::MAX as usize) as i64],
            )
            .and_then(|rows| rows.iter().map(raw_summary).collect())
            .map_err(self.err())?;
        rows.into_iter().map(|r| self.summary(r)).collect()
    }

    /// Everything recorded about one run (`id` may be a unique prefix).
    pub fn get(&self, id: &str) -> Result<RunRecord> {
        let id = self.resolve(id)?;
        let raw = self
            .db
            .query_one(
                &format!("SELECT {SUMMARY_COLS} FROM runs WHERE id = ?1"),
                params![id],
            )
            .and_then(|r| raw_summary(&r))
            .map_err(self.err())?;
        let (error, code, machine, mlflow_run_id): (
            Option<String>,
            String,
            String,
            Option<String>,
        ) = self
            .db
            .query_one(
                "SELECT error, code, machine, mlflow_run_id FROM runs WHERE id = ?1",
                params![id],
            )
            .and_then(|r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .map_err(self.err())?;
        let pid = raw.pid;
        let summary = self.summary(raw)?;
        let params = self.string_map("SELECT key, value FROM params WHERE run_id = ?1", &id)?;
        let history = self.rows(
            "SELECT key, step, value, ts_ms FROM metric_steps WHERE run_id = ?1
                 ORDER BY key, step",
            &id,
            |r| {
                Ok(MetricPoint {
                    key: r.get(0)?,
                    step: r.get::<i64>(1)? as u64,
                    value: r.get(2)?,
                    timestamp: from_ms(r.get(3)?),
                })
            },
        )?;
        let artifacts = self.rows(
            "SELECT name, path, md5, size FROM artifacts WHERE run_id = ?1 ORDER BY name",
            &id,
            |r| {
                Ok(Artifact {
                    name: r.get(0)?,
                    path: r.get(1)?,
                    md5: r.get(2)?,
                    size: r.get::<i64>(3)? as u64,
                })
            },
        )?;
        let stages = self.rows(
            "SELECT name, seconds, peak_rss_bytes FROM stages WHERE run_id = ?1 ORDER BY seq",
            &id,
            |r| {
                Ok(StageRecord {
                    name: r.get(0)?,
                    seconds: r.get(1)?,
                    peak_rss_bytes: r.get::<i64>(2)? as u64,
                })
            },
        )?;
        let corrupt = |field: &'static str, e: serde_json::Error| TrackError::Corrupt {
            path: self.path.clone(),
            run_id: id.clone(),
            field,
            message: e.to_string(),
        };
        Ok(RunRecord {
            summary,
            error,
            pid,
            params,
            history,
            artifacts,
            stages,
            code: serde_json::from_str(&code).map_err(|e| corrupt("code", e))?,
            machine: serde_json::from_str(&machine).map_err(|e| corrupt("machine", e))?,
            mlflow_run_id,
        })
    }

    /// The newest run that recorded an artifact with this md5 (the run that made a model
    /// folder, found by its `model.json`).
    pub fn find_by_artifact_md5(&self, md5: &str) -> Result<Option<String>> {
        self.db
            .query_opt(
                "SELECT a.run_id FROM artifacts a JOIN runs r ON r.id = a.run_id
                 WHERE a.md5 = ?1 ORDER BY r.start_ms DESC LIMIT 1",
                params![md5],
            )
            .and_then(|r| r.map(|r| r.get(0)).transpose())
            .map_err(self.err())
    }

    /// The rows `sql` (one parameter: the run id) returns, each made by `f`.
    fn rows<T>(
        &self,
        sql: &str,
        id: &str,
        f: impl Fn(&Row) -> Result<T, DbError>,
    ) -> Result<Vec<T>> {
        self.db
            .query(sql, params![id])
            .and_then(|rows| rows.iter().map(f).collect())
            .map_err(self.err())
    }

    fn string_map(&self, sql: &str, id: &str) -> Result<BTreeMap<String, String>> {
        Ok(self
            .rows(sql, id, |r| Ok((r.get(0)?, r.get(1)?)))?
            .into_iter()
            .collect())
    }

    fn summary(&self, r: RawSummary) -> Result<RunSummary> {
        let mut status = RunStatus::parse(&r.status).ok_or_else(|| TrackError::Corrupt {
            path: self.path.clone(),
            run_id: r.id.clone(),
            field: "status",
            message: format!("unknown status {:?}", r.status),
        })?;
        let heartbeat = from_ms(r.heartbeat_ms);
        if status == RunStatus::Running && is_dead(&r, heartbeat) {
            status = RunStatus::Killed;
        }
        let metrics: BTreeMap<String, f64> = self
            .rows(
                "SELECT key, value FROM final_metrics WHERE run_id = ?1",
                &r.id,
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?
            .into_iter()
            .collect();
        let start_time = from_ms(r.start_ms);
        let end_time = r.end_ms.map(from_ms);
        let last = match status {
            RunStatus::Running => Some(Utc::now()),
            RunStatus::Killed => Some(heartbeat),
            _ => end_time,
        };
        Ok(RunSummary {
            id: r.id,
            name: r.name,
            kind: r.kind,
            status,
            start_time,
            end_time,
            heartbeat,
            duration_seconds: last.map(|l| (l - start_time).num_milliseconds() as f64 / 1000.0),
            model_type: r.model_type,
            data_path: r.data_path,
            data_version: r.data_version,
            metrics,
        })
    }
}

const SUMMARY_COLS: &str = "id, name, kind, status, start_ms, end_ms, heartbeat_ms, host, pid, \
                            pid_start, model_type, data_path, data_version";

struct RawSummary {
    id: String,
    name: String,
    kind: String,
    status: String,
    start_ms: i64,
    end_ms: Option<i64>,
    heartbeat_ms: i64,
    host: String,
    pid: Option<u32>,
    pid_start: Option<i64>,
    model_type: Option<String>,
    data_path: Option<String>,
    data_version: Option<String>,
}

fn raw_summary(r: &Row) -> Result<RawSummary, DbError> {
    Ok(RawSummary {
        id: r.get(0)?,
        name: r.get(1)?,
        kind: r.get(2)?,
        status: r.get(3)?,
        start_ms: r.get(4)?,
        end_ms: r.get(5)?,
        heartbeat_ms: r.get(6)?,
        host: r.get(7)?,
        pid: r.get(8)?,
        pid_start: r.get(9)?,
        model_type: r.get(10)?,
        data_path: r.get(11)?,
        data_version: r.get(12)?,
    })
}

/// A `running` run is dead when its heartbeat is stale, or when it ran on this host and its
/// process (pid and start time) no longer exists.
fn is_dead(r: &RawSummary, heartbeat: DateTime<Utc>) -> bool {
    let age = Utc::now() - heartbeat;
    if age.num_milliseconds() > STALE_AFTER.as_millis() as i64 {
        return true;
    }
    if r.host == env::hostname()
        && let (Some(pid), Some(start)) = (r.pid, r.pid_start)
    {
        return env::process_alive(pid, start as u64) == Some(false);
    }
    false
}

fn insert_params(tx: &Db, id: &str, params: &BTreeMap<String, String>) -> Result<(), DbError> {
    for (k, v) in params {
        tx.execute(
            "INSERT INTO params (run_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            params![id, k, v],
        )?;
    }
    Ok(())
}

fn insert_results(
    tx: &Db,
    id: &str,
    metrics: &BTreeMap<String, f64>,
    artifacts: &[Artifact],
    stages: &[StageRecord],
) -> Result<(), DbError> {
    for (k, v) in metrics {
        tx.execute(
            "INSERT INTO final_metrics (run_id, key, value) VALUES (?1, ?2, ?3)
             ON CONFLICT (run_id, key) DO UPDATE SET value = excluded.value",
            params![id, k, v],
        )?;
    }
    for a in artifacts {
        tx.execute(
            "INSERT INTO artifacts (run_id, name, path, md5, size) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (run_id, name)
             DO UPDATE SET path = excluded.path, md5 = excluded.md5, size = excluded.size",
            params![id, a.name, a.path, a.md5, a.size as i64],
        )?;
    }
    let base: i64 = tx
        .query_one(
            "SELECT COALESCE(MAX(seq) + 1, 0) FROM stages WHERE run_id = ?1",
            params![id],
        )?
        .get(0)?;
    for (i, s) in stages.iter().enumerate() {
        tx.execute(
            "INSERT INTO stages (run_id, seq, name, seconds, peak_rss_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (run_id, name) DO UPDATE SET seq = excluded.seq,
                seconds = excluded.seconds, peak_rss_bytes = excluded.peak_rss_bytes",
            params![
                id,
                base + i as i64,
                s.name,
                s.seconds,
                s.peak_rss_bytes as i64
            ],
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run(name: &str, epochs: &str) -> NewRun {
        NewRun {
            name: name.into(),
            kind: "train".into(),
            model_type: Some("linear".into()),
            data_path: Some("data/train.jsonl".into()),
            data_version: Some("0123456789abcdef0123456789abcdef".into()),
            params: [("epochs".to_string(), epochs.to_string())].into(),
            code: CodeVersion {
                git_commit: Some("abc".into()),
                git_dirty: Some(true),
                taxon_version: "0.1.0".into(),
            },
            machine: env::machine_info(),
        }
    }

    // Each test below runs on a SQLite file (`NAME::sqlite`) and on a real PostgreSQL
    // database (`NAME::postgres`; skipped with a notice when no test server is set).
    taxon_db::on_both_backends!(
        ".taxon/runs.db";
        a_run_round_trips_through_the_store,
        a_failed_run_keeps_its_error,
        a_run_with_a_stale_heartbeat_shows_as_killed,
        a_run_whose_process_is_gone_shows_as_killed_at_once,
        ids_resolve_from_unique_prefixes,
        compare_marks_the_params_that_differ,
    );

    fn a_run_round_trips_through_the_store(at: &Path) {
        let mut s = RunStore::open(at).unwrap();
        let id = s.create_run(&new_run("r1", "5")).unwrap();
        assert_eq!(id.len(), 32);
        assert_eq!(s.get(&id).unwrap().summary.status, RunStatus::Running);
        for step in 1..=3u64 {
            let pt = |k: &str, v: f64| MetricPoint {
                key: k.into(),
                step,
                value: v,
                timestamp: Utc::now(),
            };
            s.log_metrics(&id, &[pt("train_loss", 1.0 / step as f64), pt("lr", 0.5)])
                .unwrap();
        }
        let end = RunEnd {
            error: None,
            params: Some(
                [
                    ("epochs".to_string(), "3".to_string()),
                    ("model_config.dim".to_string(), "100".to_string()),
                ]
                .into(),
            ),
            model_type: None,
            metrics: [("validation_accuracy".to_string(), 0.97)].into(),
            artifacts: vec![Artifact {
                name: "model/model.json".into(),
                path: "/x/model.json".into(),
                md5: "900150983cd24fb0d6963f7d28e17f72".into(),
                size: 3,
            }],
            stages: vec![
                StageRecord {
                    name: "load data".into(),
                    seconds: 0.25,
                    peak_rss_bytes: 10 << 20,
                },
                StageRecord {
                    name: "train".into(),
                    seconds: 2.5,
                    peak_rss_bytes: 50 << 20,
                },
            ],
        };
        s.finish(&id, &end).unwrap();
        let r = s.get(&id).unwrap();
        assert_eq!(r.summary.status, RunStatus::Finished);
        assert!(r.summary.end_time.is_some());
        assert_eq!(r.summary.model_type.as_deref(), Some("linear"));
        assert_eq!(
            r.summary.data_version.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert_eq!(
            r.params.len(),
            2,
            "resolved params replace the initial ones"
        );
        assert_eq!(r.params["epochs"], "3");
        assert_eq!(r.summary.metrics["validation_accuracy"], 0.97);
        let losses: Vec<(u64, f64)> = r
            .history
            .iter()
            .filter(|p| p.key == "train_loss")
            .map(|p| (p.step, p.value))
            .collect();
        assert_eq!(losses, [(1, 1.0), (2, 0.5), (3, 1.0 / 3.0)]);
        assert_eq!(r.artifacts, end.artifacts);
        assert_eq!(r.stages, end.stages);
        assert_eq!(r.code.git_dirty, Some(true));
        assert_eq!(r.pid, Some(std::process::id()));
        assert_eq!(
            s.find_by_artifact_md5("900150983cd24fb0d6963f7d28e17f72")
                .unwrap()
                .as_deref(),
            Some(id.as_str())
        );
        // An evaluation appended later adds stages after the existing ones.
        s.append(
            &id,
            &[("test_accuracy".to_string(), 0.96)].into(),
            &[],
            &[StageRecord {
                name: "evaluate".into(),
                seconds: 0.1,
                peak_rss_bytes: 1,
            }],
        )
        .unwrap();
        let r = s.get(&id).unwrap();
        assert_eq!(r.stages.last().unwrap().name, "evaluate");
        assert_eq!(r.summary.metrics.len(), 2);
        // A second connection (another process) sees the same thing.
        let other = RunStore::open(at).unwrap();
        assert_eq!(other.list(10).unwrap()[0].id, id);
    }

    fn a_failed_run_keeps_its_error(at: &Path) {
        let mut s = RunStore::open(at).unwrap();
        let id = s.create_run(&new_run("bad", "5")).unwrap();
        s.finish(
            &id,
            &RunEnd {
                error: Some("data/train.jsonl:3: not JSON".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let r = s.get(&id).unwrap();
        assert_eq!(r.summary.status, RunStatus::Failed);
        assert_eq!(r.error.as_deref(), Some("data/train.jsonl:3: not JSON"));
    }

    fn a_run_with_a_stale_heartbeat_shows_as_killed(at: &Path) {
        let mut s = RunStore::open(at).unwrap();
        let id = s.create_run(&new_run("live", "5")).unwrap();
        assert_eq!(s.list(10).unwrap()[0].status, RunStatus::Running);
        let old = ms(Utc::now()) - STALE_AFTER.as_millis() as i64 - 1000;
        s.db.execute(
            "UPDATE runs SET heartbeat_ms = ?2 WHERE id = ?1",
            params![id, old],
        )
        .unwrap();
        let r = s.get(&id).unwrap();
        assert_eq!(r.summary.status, RunStatus::Killed);
        // Its duration ends at the last heartbeat.
        assert!(r.summary.duration_seconds.unwrap() < 0.5);
    }

    fn a_run_whose_process_is_gone_shows_as_killed_at_once(at: &Path) {
        let mut s = RunStore::open(at).unwrap();
        let id = s.create_run(&new_run("gone", "5")).unwrap();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let ticks = env::process_start_ticks(pid);
        child.wait().unwrap();
        s.db.execute(
            "UPDATE runs SET pid = ?2, pid_start = ?3 WHERE id = ?1",
            params![id, pid, ticks.unwrap_or(1) as i64],
        )
        .unwrap();
        assert_eq!(s.get(&id).unwrap().summary.status, RunStatus::Killed);
    }

    fn ids_resolve_from_unique_prefixes(at: &Path) {
        let mut s = RunStore::open(at).unwrap();
        let a = s.create_run(&new_run("a", "1")).unwrap();
        let b = s.create_run(&new_run("b", "2")).unwrap();
        // Make the two ids share a known prefix and differ after it.
        match s.db.sqlite_conn() {
            Some(c) => c.pragma_update(None, "foreign_keys", "OFF").unwrap(),
            // The test server's user is a superuser: foreign keys off for this session.
            None => {
                s.db.execute_batch("SET session_replication_role = replica")
                    .unwrap()
            }
        }
        let (a2, b2) = ("abc1".to_string() + &a[4..], "abc2".to_string() + &b[4..]);
        for (old, new) in [(&a, &a2), (&b, &b2)] {
            s.db.execute("UPDATE runs SET id = ?2 WHERE id = ?1", params![old, new])
                .unwrap();
        }
        assert_eq!(s.resolve("abc1").unwrap(), a2);
        assert_eq!(s.resolve(&b2.to_uppercase()).unwrap(), b2);
        match s.resolve("abc") {
            Err(TrackError::AmbiguousRun { candidates, .. }) => {
                assert_eq!(candidates, [a2.clone(), b2.clone()])
            }
            other => panic!("expected ambiguity, got {other:?}"),
        }
        assert!(matches!(
            s.resolve("ffff0000"),
            Err(TrackError::UnknownRun { .. })
        ));
        assert!(matches!(s.resolve(""), Err(TrackError::UnknownRun { .. })));
        assert!(matches!(
            s.resolve("x'; --"),
            Err(TrackError::UnknownRun { .. })
        ));
        assert_eq!(s.get("abc2").unwrap().summary.name, "b");
    }

    fn compare_marks_the_params_that_differ(at: &Path) {
        let mut s = RunStore::open(at).unwrap();
        let a = s.create_run(&new_run("a", "5")).unwrap();
        let mut nb = new_run("b", "10");
        nb.params.insert("seed".into(), "1".into());
        let b = s.create_run(&nb).unwrap();
        let c = crate::compare(&[s.get(&a).unwrap(), s.get(&b).unwrap()]);
        let epochs = c.params.iter().find(|r| r.key == "epochs").unwrap();
        assert!(epochs.differs);
        assert_eq!(
            epochs.values,
            [Some("5".to_string()), Some("10".to_string())]
        );
        let seed = c.params.iter().find(|r| r.key == "seed").unwrap();
        assert_eq!(seed.values, [None, Some("1".to_string())]);
        assert!(seed.differs);
        let same = crate::compare(&[s.get(&a).unwrap(), s.get(&a).unwrap()]);
        assert!(same.params.iter().all(|r| !r.differs));
    }
}
