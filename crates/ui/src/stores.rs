//! Opening the project's stores for reading. A store whose SQLite file does not exist yet is
//! shown as empty rather than created, so browsing never writes to a project; a store named by
//! URL (`TAXON_RUNS_DB`, `TAXON_REGISTRY_DB`) is opened as the other commands open it.

use std::path::Path;

use taxon_core::VersionRecord;
use taxon_registry::Registry;
use taxon_track::RunStore;

use crate::error::UiError;

/// The run store, or `None` when the project has none yet.
pub fn runs(project: &Path) -> Result<Option<RunStore>, UiError> {
    let named = std::env::var_os("TAXON_RUNS_DB").is_some_and(|p| !p.is_empty());
    let file = taxon_track::env::default_taxon_dir(project).join(taxon_track::RUNS_DB);
    if !named && !file.exists() {
        return Ok(None);
    }
    RunStore::open_default(project)
        .map(Some)
        .map_err(|e| UiError::store("the run store")(&e))
}

/// The model registry, or `None` when the project has none yet.
pub fn registry(project: &Path) -> Result<Option<Registry>, UiError> {
    let db = taxon_registry::default_db_path(project);
    if !taxon_db::is_postgres_path(&db) && !db.exists() {
        return Ok(None);
    }
    Registry::open(project)
        .map(Some)
        .map_err(|e| UiError::store("the model registry")(&e))
}

/// The data version records (`.taxon/versions.jsonl`), oldest first; none outside a repository.
pub fn data_versions(project: &Path) -> Result<Vec<VersionRecord>, UiError> {
    match taxon_version::Repo::discover(project) {
        Ok(repo) => taxon_version::versions::read_all(&repo)
            .map_err(|e| UiError::store("the data versions")(&e)),
        Err(_) => Ok(Vec::new()),
    }
}
