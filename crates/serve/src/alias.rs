//! [`AliasSource`]: serve (and follow) a registry alias such as `default@production`.
//!
//! Each call to [`ModelSource::current`] resolves the alias in the registry database and hands
//! out the version's verified local folder (downloaded from the artifact store on first use,
//! md5-checked every time). The poller calls it every `poll_interval`, so moving the alias with
//! `taxon registry alias set` swaps the served model; `PUT /v1/admin/aliases/{alias}` moves it
//! through the server with the caller's name in the alias history.

use std::path::Path;
use std::sync::Mutex;

use taxon_registry::{AliasOptions, Registry, RegistryError};

use crate::source::{AliasMove, ModelSource, SourceError, SourceModel};

/// A registry alias as a model source. The registry is behind a mutex: it holds one database
/// connection (SQLite, or PostgreSQL shared with other replicas), and `current` runs on
/// blocking threads.
pub struct AliasSource {
    registry: Mutex<Registry>,
    name: String,
    alias: String,
}

impl AliasSource {
    /// Opens the registry of `project_dir` (`.taxon/registry.db` and its artifact store, or
    /// `TAXON_REGISTRY_DB` / `TAXON_REGISTRY_ARTIFACTS`) and checks that `name@alias` resolves.
    pub fn open(project_dir: &Path, name: &str, alias: &str) -> Result<Self, SourceError> {
        let registry = Registry::open(project_dir).map_err(|e| backend(name, alias, e))?;
        registry
            .resolve(name, alias)
            .map_err(|e| backend(name, alias, e))?;
        Ok(Self::with_registry(registry, name, alias))
    }

    /// A source over an already opened registry.
    pub fn with_registry(registry: Registry, name: &str, alias: &str) -> Self {
        Self {
            registry: Mutex::new(registry),
            name: name.to_string(),
            alias: alias.to_string(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding the lock cannot leave the registry half-written (its writes are
        // database transactions), so a poisoned lock is still safe to use.
        self.registry.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn backend(name: &str, alias: &str, e: RegistryError) -> SourceError {
    SourceError::Backend {
        what: format!("registry {name}@{alias}"),
        source: Box::new(e),
    }
}

impl ModelSource for AliasSource {
    fn describe(&self) -> String {
        format!("registry {}@{}", self.name, self.alias)
    }

    fn current(&self) -> Result<SourceModel, SourceError> {
        let registry = self.lock();
        let version = registry
            .resolve(&self.name, &self.alias)
            .map_err(|e| backend(&self.name, &self.alias, e))?;
        let dir = registry
            .materialize(&version)
            .map_err(|e| backend(&self.name, &self.alias, e))?;
        Ok(SourceModel {
            name: self.name.clone(),
            version: format!("v{}", version.version),
            dir,
        })
    }

    fn alias(&self) -> Option<&str> {
        Some(&self.alias)
    }

    fn move_alias(
        &self,
        alias: &str,
        version: u64,
        force: bool,
        actor: &str,
    ) -> Result<AliasMove, SourceError> {
        let mut registry = self.lock();
        let opts = AliasOptions {
            force,
            actor: actor.to_string(),
            metric: None,
        };
        match registry.set_alias(&self.name, alias, version, &opts) {
            Ok(change) => Ok(AliasMove {
                name: change.name,
                alias: change.alias,
                from_version: change.from_version,
                to_version: change.to_version,
                forced: change.forced,
                reason: change.reason,
            }),
            Err(e) if e.is_gate_refusal() => Err(SourceError::Refused {
                message: e.to_string(),
            }),
            Err(e) => Err(backend(&self.name, alias, e)),
        }
    }
}
