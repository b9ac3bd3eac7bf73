//! The registry itself: opening it (database + artifact store + cache folder), registering a
//! training run's model folder as a new version, and reading versions back.
//!
//! Registering is ordered so that a process killed at any point leaves no half version: the
//! model files are checked against the run's record, uploaded to the content-addressed store
//! (idempotent: objects already there are skipped), and only then is the version written, in
//! one write transaction that also allocates its number (`BEGIN IMMEDIATE` in SQLite,
//! `SERIALIZABLE` and retried in PostgreSQL). A register killed before the commit leaves at most
//! unreferenced objects, which the next register of the same files reuses.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use taxon_core::model::ModelFile;
use taxon_db::{Db, DbError, params};
use taxon_track::{RunRecord, RunStatus};

use crate::artifacts::ArtifactStore;
use crate::check::check_model_files;
use crate::error::RegistryError;
use crate::names::{LATEST, parse_version, validate_alias, validate_model_name};
use crate::schema;
use crate::types::{ModelVersion, RegisterOptions};

/// Env variable naming the registry database file (default `.taxon/registry.db`), or a
/// `postgres://` URL of a database that several processes and machines share.
pub const DB_ENV: &str = "TAXON_REGISTRY_DB";
/// Env variable naming the artifact store URL (default the folder `.taxon/registry/artifacts`).
pub const ARTIFACTS_ENV: &str = "TAXON_REGISTRY_ARTIFACTS";
/// Test hook: when set to `1`, `register` aborts the process right after uploading the files
/// and before writing the version (to prove that a killed register leaves no version).
pub const TEST_ABORT_AFTER_UPLOAD_ENV: &str = "TAXON_REGISTRY_TEST_ABORT_AFTER_UPLOAD";

/// The registry database file name inside `.taxon/`.
pub const REGISTRY_DB: &str = "registry.db";

/// The time source of change records (replaceable in tests).
pub(crate) type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A model registry: versions and aliases in SQLite or PostgreSQL, model files in an artifact
/// store, and a local cache of verified model folders. `Send` but not `Sync` (one database
/// connection): share
/// it behind a mutex, and call it from plain threads (`spawn_blocking` in async code), since
/// the artifact transfers block on their own runtime.
pub struct Registry {
    pub(crate) db: Db,
    /// The database file, or the PostgreSQL URL without its password.
    pub(crate) db_path: PathBuf,
    pub(crate) store: ArtifactStore,
    pub(crate) cache_dir: PathBuf,
    pub(crate) clock: Clock,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("db", &self.db_path)
            .field("artifacts", &self.store.url())
            .field("cache", &self.cache_dir)
            .finish()
    }
}

fn env_path(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The database a registry opened from `project_dir` uses: env `TAXON_REGISTRY_DB`, or
/// `registry.db` in the `.taxon/` folder of the repository around `project_dir` (where
/// `runs.db` lives).
pub fn default_db_path(project_dir: &Path) -> PathBuf {
    match env_path(DB_ENV) {
        Some(p) => PathBuf::from(p),
        None => taxon_track::env::default_taxon_dir(project_dir).join(REGISTRY_DB),
    }
}

/// The artifact store a registry opened from `project_dir` uses: env
/// `TAXON_REGISTRY_ARTIFACTS`, or the folder `.taxon/registry/artifacts`.
pub fn default_artifacts_url(project_dir: &Path) -> String {
    match env_path(ARTIFACTS_ENV) {
        Some(u) => u,
        None => taxon_track::env::default_taxon_dir(project_dir)
            .join("registry/artifacts")
            .display()
            .to_string(),
    }
}

/// A database location as messages show it: the path, or the URL without its password.
pub(crate) fn shown(location: &Path) -> PathBuf {
    match location.to_str() {
        Some(url) if taxon_db::is_postgres_url(url) => PathBuf::from(taxon_db::redact_url(url)),
        _ => location.to_path_buf(),
    }
}

pub(crate) fn us(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_us(v: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(v).unwrap_or_default()
}

impl Registry {
    /// Opens the registry of the project around `project_dir`, with the defaults of
    /// [`default_db_path`] and [`default_artifacts_url`].
    pub fn open(project_dir: &Path) -> Result<Self, RegistryError> {
        let db = default_db_path(project_dir);
        let mut reg = Self::open_with(&db, &default_artifacts_url(project_dir))?;
        if taxon_db::is_postgres_path(&db) {
            // No database folder to cache next to: the project's `.taxon/`.
            let dir = taxon_track::env::default_taxon_dir(project_dir);
            reg.cache_dir = std::path::absolute(&dir)
                .map_err(RegistryError::io(&dir))?
                .join("registry/cache");
        }
        Ok(reg)
    }

    /// Opens (creating when needed) the database `db_path` (a SQLite file, or a `postgres://`
    /// URL) with artifacts at `artifacts_url` (a folder, `file://` or `s3://bucket/prefix`).
    /// Verified model folders are cached under `registry/cache/` next to the database file, or
    /// in `.taxon/` of the working directory for PostgreSQL (an absolute path). The artifact
    /// store is contacted on first use.
    pub fn open_with(db_path: &Path, artifacts_url: &str) -> Result<Self, RegistryError> {
        let store = ArtifactStore::new(artifacts_url)?;
        let db = schema::open(db_path)?;
        let db_dir = if taxon_db::is_postgres_path(db_path) {
            Path::new(".taxon")
        } else {
            db_path.parent().unwrap_or(Path::new("."))
        };
        let cache_dir = std::path::absolute(db_dir)
            .map_err(RegistryError::io(db_dir))?
            .join("registry/cache");
        Ok(Self {
            db,
            db_path: shown(db_path),
            store,
            cache_dir,
            clock: Arc::new(Utc::now),
        })
    }

    /// The database file (or the PostgreSQL URL without its password).
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// The artifact store's URL.
    pub fn artifacts_url(&self) -> &str {
        self.store.url()
    }

    /// The folder verified model folders are cached in (`<cache>/<name>/<version>/`).
    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    /// Caches model folders in `dir` instead.
    pub fn set_cache_dir(&mut self, dir: PathBuf) {
        self.cache_dir = dir;
    }

    #[cfg(test)]
    pub(crate) fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// The time of a change, at the microsecond precision the database keeps (so a returned
    /// record equals the one read back).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        from_us(us((self.clock)()))
    }

    pub(crate) fn db_err(&self) -> impl FnOnce(DbError) -> RegistryError + '_ {
        RegistryError::db(&self.db_path)
    }

    /// Registers the model folder that `run` (a finished train run) recorded as the next
    /// version of `opts.name`: checks every model file still has the md5 the run recorded and
    /// that `model.json` agrees with them, uploads the files, then writes the version.
    pub fn register(
        &mut self,
        run: &RunRecord,
        opts: &RegisterOptions,
    ) -> Result<ModelVersion, RegistryError> {
        validate_model_name(&opts.name)?;
        let s = &run.summary;
        let refuse = |reason: String| RegistryError::NotRegistrable {
            run_id: s.id.clone(),
            reason,
        };
        if s.kind != "train" {
            return Err(refuse(format!(
                "it is a {} run; register the train run that made the model",
                s.kind
            )));
        }
        if s.status != RunStatus::Finished {
            return Err(refuse(format!(
                "its status is {}; only finished train runs can be registered",
                s.status
            )));
        }
        if !opts.allow_duplicate
            && let Some(v) = find_run(&self.db, &self.db_path, &opts.name, &s.id)?
        {
            return Err(RegistryError::DuplicateRun {
                name: opts.name.clone(),
                run_id: s.id.clone(),
                version: v,
            });
        }
        let (files, uploads, desc) = check_model_files(run)?;
        self.store.upload_missing(&uploads)?;
        if std::env::var(TEST_ABORT_AFTER_UPLOAD_ENV).as_deref() == Ok("1") {
            std::process::abort();
        }

        let now = self.now();
        let metrics: BTreeMap<&String, &f64> =
            s.metrics.iter().filter(|(_, v)| v.is_finite()).collect();
        let code_version = run.code.git_commit.as_ref().map(|c| {
            if run.code.git_dirty == Some(true) {
                format!("{c}-dirty")
            } else {
                c.clone()
            }
        });
        let path = &self.db_path;
        let e = || RegistryError::db(path);
        let version = self.db.transaction(e(), |tx| {
            if !opts.allow_duplicate
                && let Some(v) = find_run(tx, path, &opts.name, &s.id)?
            {
                return Err(RegistryError::DuplicateRun {
                    name: opts.name.clone(),
                    run_id: s.id.clone(),
                    version: v,
                });
            }
            let version: i64 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM versions WHERE name = ?1",
                    params![opts.name],
                )
                .and_then(|r| r.get(0))
                .map_err(e())?;
            tx.execute(
                "INSERT INTO versions (name, version, run_id, run_name, model_type, data_path,
                    data_version, metrics, labels, input, code_version, description, created_us,
                    created_by)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
                params![
                    opts.name,
                    version,
                    s.id,
                    s.name,
                    desc.model_type,
                    s.data_path,
                    s.data_version,
                    to_json(&metrics),
                    to_json(&desc.labels),
                    to_json(&desc.input),
                    code_version,
                    opts.description,
                    us(now),
                    opts.actor,
                ],
            )
            .map_err(e())?;
            for f in &files {
                tx.execute(
                    "INSERT INTO version_files (name, version, file, md5, bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                    params![opts.name, version, f.name, f.md5.as_str(), f.bytes as i64],
                )
                .map_err(e())?;
            }
            Ok(version)
        })?;
        self.get(&opts.name, version as u64)
    }

    /// Every version, by name then number; only `name`'s when given (an unknown name is an
    /// error).
    pub fn list(&self, name: Option<&str>) -> Result<Vec<ModelVersion>, RegistryError> {
        if let Some(n) = name {
            self.require_model(n)?;
        }
        let keys = self
            .db
            .query(
                "SELECT name, version FROM versions WHERE CAST(?1 AS TEXT) IS NULL OR name = ?1
                 ORDER BY name, version",
                params![name],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.get::<String>(0)?, r.get::<i64>(1)?)))
                    .collect::<Result<Vec<_>, DbError>>()
            })
            .map_err(self.db_err())?;
        keys.into_iter()
            .map(|(n, v)| read_version(&self.db, &self.db_path, &n, v as u64))
            .collect()
    }

    /// The names of the registered models, sorted.
    pub fn models(&self) -> Result<Vec<String>, RegistryError> {
        self.db
            .query("SELECT DISTINCT name FROM versions ORDER BY name", &[])
            .and_then(|rows| rows.iter().map(|r| r.get(0)).collect())
            .map_err(self.db_err())
    }

    /// Version `version` of `name`.
    pub fn get(&self, name: &str, version: u64) -> Result<ModelVersion, RegistryError> {
        let latest = self.require_model(name)?;
        if version == 0 || version > latest {
            return Err(RegistryError::UnknownVersion {
                name: name.to_string(),
                version,
                latest,
            });
        }
        read_version(&self.db, &self.db_path, name, version)
    }

    /// The version `alias_or_version` names: `3` or `v3`, `latest`, or an alias
    /// (`production`).
    pub fn resolve(
        &self,
        name: &str,
        alias_or_version: &str,
    ) -> Result<ModelVersion, RegistryError> {
        let latest = self.require_model(name)?;
        if alias_or_version == LATEST {
            return self.get(name, latest);
        }
        if let Some(v) = parse_version(alias_or_version) {
            return self.get(name, v);
        }
        validate_alias(alias_or_version)?;
        let aliases = self.aliases(name)?;
        match aliases.get(alias_or_version) {
            Some(v) => self.get(name, *v),
            None => Err(RegistryError::UnknownAlias {
                name: name.to_string(),
                alias: alias_or_version.to_string(),
                aliases: aliases
                    .iter()
                    .map(|(a, v)| format!("{a} -> v{v}"))
                    .collect(),
            }),
        }
    }

    /// The newest version number of `name`, or an error naming the models there are.
    pub(crate) fn require_model(&self, name: &str) -> Result<u64, RegistryError> {
        validate_model_name(name)?;
        let latest: Option<i64> = self
            .db
            .query_one(
                "SELECT MAX(version) FROM versions WHERE name = ?1",
                params![name],
            )
            .and_then(|r| r.get(0))
            .map_err(self.db_err())?;
        match latest {
            Some(v) => Ok(v as u64),
            None => Err(RegistryError::UnknownModel {
                name: name.to_string(),
                known: self.models()?,
            }),
        }
    }
}

/// A record as its JSON column (maps of finite numbers, string lists and plain structs, which
/// cannot fail to serialise).
fn to_json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// The version of `name` already registered from `run_id`, if any.
fn find_run(db: &Db, path: &Path, name: &str, run_id: &str) -> Result<Option<u64>, RegistryError> {
    db.query_one(
        "SELECT MIN(version) FROM versions WHERE name = ?1 AND run_id = ?2",
        params![name, run_id],
    )
    .and_then(|r| r.get::<Option<i64>>(0))
    .map(|v| v.map(|v| v as u64))
    .map_err(RegistryError::db(path))
}

/// Reads one version row and its files.
pub(crate) fn read_version(
    db: &Db,
    path: &Path,
    name: &str,
    version: u64,
) -> Result<ModelVersion, RegistryError> {
    let e = RegistryError::db;
    let row = db
        .query_opt(
            "SELECT run_id, run_name, model_type, data_path, data_version, metrics, labels,
                input, code_version, description, created_us, created_by
             FROM versions WHERE name = ?1 AND version = ?2",
            params![name, version as i64],
        )
        .map_err(e(path))?;
    let Some(r) = row else {
        return Err(RegistryError::Corrupt {
            path: path.to_path_buf(),
            what: format!("{name} v{version}"),
            message: "the version row is missing".into(),
        });
    };
    let corrupt = |field: &str, err: String| RegistryError::Corrupt {
        path: path.to_path_buf(),
        what: format!("{name} v{version} field {field}"),
        message: err,
    };
    let text = |i: usize| r.get::<String>(i).map_err(e(path));
    let opt_text = |i: usize| r.get::<Option<String>>(i).map_err(e(path));
    let metrics = serde_json::from_str(&text(5)?).map_err(|x| corrupt("metrics", x.to_string()))?;
    let labels = serde_json::from_str(&text(6)?).map_err(|x| corrupt("labels", x.to_string()))?;
    let input = serde_json::from_str(&text(7)?).map_err(|x| corrupt("input", x.to_string()))?;
    let files = db
        .query(
            "SELECT file, md5, bytes FROM version_files WHERE name = ?1 AND version = ?2
             ORDER BY file",
            params![name, version as i64],
        )
        .map_err(e(path))?
        .iter()
        .map(|f| {
            let md5: String = f.get(1).map_err(e(path))?;
            Ok(ModelFile {
                md5: md5
                    .parse()
                    .map_err(|x: taxon_core::hash::InvalidHash| corrupt("files", x.to_string()))?,
                name: f.get(0).map_err(e(path))?,
                bytes: f.get::<i64>(2).map_err(e(path))? as u64,
            })
        })
        .collect::<Result<Vec<_>, RegistryError>>()?;
    Ok(ModelVersion {
        name: name.to_string(),
        version,
        run_id: text(0)?,
        run_name: text(1)?,
        model_type: text(2)?,
        data_path: opt_text(3)?,
        data_version: opt_text(4)?,
        metrics,
        labels,
        input,
        files,
        code_version: opt_text(8)?,
        description: opt_text(9)?,
        created_at: from_us(r.get(10).map_err(e(path))?),
        created_by: text(11)?,
    })
}
