//! Aliases (`staging`, `production`, any name) and their audit history. Every set, move and
//! removal is written in one transaction together with a history row (who, when, from which
//! version to which, forced or not and why), so `alias_at` can answer which version an alias
//! pointed at at any past time. Moves of gated aliases go through the promotion gate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use taxon_db::{Db, DbError, params};

use crate::error::RegistryError;
use crate::gate;
use crate::names::{validate_alias, validate_model_name};
use crate::registry::{Registry, from_us, read_version, us};
use crate::types::{AliasChange, AliasOptions};

impl Registry {
    /// The aliases of model `name` and the versions they point at.
    pub fn aliases(&self, name: &str) -> Result<BTreeMap<String, u64>, RegistryError> {
        self.require_model(name)?;
        self.db
            .query(
                "SELECT alias, version FROM aliases WHERE name = ?1 ORDER BY alias",
                params![name],
            )
            .and_then(|rows| {
                rows.iter()
                    .map(|r| Ok((r.get::<String>(0)?, r.get::<i64>(1)? as u64)))
                    .collect()
            })
            .map_err(self.db_err())
    }

    /// Points `alias` of model `name` at `version`. Moving a gated alias (`production`) to a
    /// version whose metric is worse than the current holder's is refused with
    /// [`RegistryError::Gate`] unless `opts.force`, which the history records. Setting an alias
    /// to the version it already points at records nothing and returns a change whose
    /// `from_version` equals its `to_version` ([`AliasChange::is_noop`]).
    pub fn set_alias(
        &mut self,
        name: &str,
        alias: &str,
        version: u64,
        opts: &AliasOptions,
    ) -> Result<AliasChange, RegistryError> {
        validate_alias(alias)?;
        // Errors for an unknown model or version, before taking the write lock.
        self.get(name, version)?;
        let now = self.now();
        let path = &self.db_path;
        let e = || RegistryError::db(path);
        // Read the current holder and write the move and its history row in one transaction:
        // of two concurrent moves one waits (SQLite) or runs again (PostgreSQL), so each
        // history row's from_version is the version the alias really left.
        self.db.transaction(e(), |tx| {
            let current: Option<u64> = tx
                .query_opt(
                    "SELECT version FROM aliases WHERE name = ?1 AND alias = ?2",
                    params![name, alias],
                )
                .and_then(|r| r.map(|r| r.get::<i64>(0)).transpose())
                .map_err(e())?
                .map(|v| v as u64);
            let mut change = AliasChange {
                name: name.to_string(),
                alias: alias.to_string(),
                from_version: current,
                to_version: Some(version),
                actor: opts.actor.clone(),
                at: now,
                forced: false,
                reason: None,
            };
            if current == Some(version) {
                return Ok(change);
            }
            if let (true, Some(cur)) = (gate::is_gated(alias), current) {
                let candidate = read_version(tx, path, name, version)?;
                let holder = read_version(tx, path, name, cur)?;
                match gate::check(alias, &candidate, &holder, opts.metric.as_deref()) {
                    Ok(pass) => {
                        change.reason = Some(format!(
                            "gate passed: {} {:.4} (v{version}) vs {:.4} (v{cur})",
                            pass.metric, pass.candidate_value, pass.current_value
                        ));
                    }
                    Err(refusal) if opts.force => {
                        change.forced = true;
                        change.reason =
                            Some(format!("forced past the gate: {}", refusal.summary()));
                    }
                    Err(refusal) => return Err(RegistryError::Gate(refusal)),
                }
            }
            tx.execute(
                "INSERT INTO aliases (name, alias, version, updated_us) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (name, alias) DO UPDATE SET version = ?3, updated_us = ?4",
                params![name, alias, version as i64, us(now)],
            )
            .map_err(e())?;
            insert_history(tx, &change).map_err(e())?;
            Ok(change)
        })
    }

    /// Removes `alias` of model `name` (an error when it is not set); the history records it.
    pub fn remove_alias(
        &mut self,
        name: &str,
        alias: &str,
        actor: &str,
    ) -> Result<AliasChange, RegistryError> {
        validate_alias(alias)?;
        self.require_model(name)?;
        let now = self.now();
        let path = &self.db_path;
        let e = || RegistryError::db(path);
        let removed = self.db.transaction(e(), |tx| {
            let current: Option<i64> = tx
                .query_opt(
                    "SELECT version FROM aliases WHERE name = ?1 AND alias = ?2",
                    params![name, alias],
                )
                .and_then(|r| r.map(|r| r.get(0)).transpose())
                .map_err(e())?;
            let Some(current) = current else {
                return Ok(None);
            };
            tx.execute(
                "DELETE FROM aliases WHERE name = ?1 AND alias = ?2",
                params![name, alias],
            )
            .map_err(e())?;
            let change = AliasChange {
                name: name.to_string(),
                alias: alias.to_string(),
                from_version: Some(current as u64),
                to_version: None,
                actor: actor.to_string(),
                at: now,
                forced: false,
                reason: None,
            };
            insert_history(tx, &change).map_err(e())?;
            Ok(Some(change))
        })?;
        removed.ok_or_else(|| RegistryError::UnknownAlias {
            name: name.to_string(),
            alias: alias.to_string(),
            aliases: match self.aliases(name) {
                Ok(a) => a.iter().map(|(a, v)| format!("{a} -> v{v}")).collect(),
                Err(_) => Vec::new(),
            },
        })
    }

    /// Every recorded change of model `name`'s aliases (only `alias`'s when given), oldest
    /// first.
    pub fn history(
        &self,
        name: &str,
        alias: Option<&str>,
    ) -> Result<Vec<AliasChange>, RegistryError> {
        self.require_model(name)?;
        if let Some(a) = alias {
            validate_alias(a)?;
        }
        self.db
            .query(
                "SELECT alias, from_version, to_version, actor, at_us, forced, reason
                 FROM alias_history WHERE name = ?1 AND (CAST(?2 AS TEXT) IS NULL OR alias = ?2)
                 ORDER BY seq",
                params![name, alias],
            )
            .and_then(|rows| rows.iter().map(|r| change_of(name, r)).collect())
            .map_err(self.db_err())
    }

    /// One page of model `name`'s alias changes, newest first: `limit` changes after skipping
    /// the `offset` newest, and how many there are in all (for a UI that pages through a
    /// long history without reading it whole).
    pub fn history_page(
        &self,
        name: &str,
        offset: u64,
        limit: u64,
    ) -> Result<(Vec<AliasChange>, u64), RegistryError> {
        self.require_model(name)?;
        let total: i64 = self
            .db
            .query_one(
                "SELECT COUNT(*) FROM alias_history WHERE name = ?1",
                params![name],
            )
            .and_then(|r| r.get(0))
            .map_err(self.db_err())?;
        let page = self
            .db
            .query(
                "SELECT alias, from_version, to_version, actor, at_us, forced, reason
                 FROM alias_history WHERE name = ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3",
                params![
                    name,
                    i64::try_from(limit).unwrap_or(i64::MAX),
                    i64::try_from(offset).unwrap_or(i64::MAX)
                ],
            )
            .and_then(|rows| rows.iter().map(|r| change_of(name, r)).collect())
            .map_err(self.db_err())?;
        Ok((page, total.max(0) as u64))
    }

    /// The version `alias` of model `name` pointed at at time `at` (`None`: it was not set
    /// then). A change made exactly at `at` counts.
    pub fn alias_at(
        &self,
        name: &str,
        alias: &str,
        at: DateTime<Utc>,
    ) -> Result<Option<u64>, RegistryError> {
        validate_model_name(name)?;
        validate_alias(alias)?;
        self.require_model(name)?;
        let v: Option<Option<i64>> = self
            .db
            .query_opt(
                "SELECT to_version FROM alias_history WHERE name = ?1 AND alias = ?2 AND at_us <= ?3
                 ORDER BY at_us DESC, seq DESC LIMIT 1",
                params![name, alias, us(at)],
            )
            .and_then(|r| r.map(|r| r.get(0)).transpose())
            .map_err(self.db_err())?;
        Ok(v.flatten().map(|v| v as u64))
    }
}

/// An `alias_history` row (alias, from, to, actor, at_us, forced, reason) of model `name`.
fn change_of(name: &str, r: &taxon_db::Row) -> Result<AliasChange, DbError> {
    Ok(AliasChange {
        name: name.to_string(),
        alias: r.get(0)?,
        from_version: r.get::<Option<i64>>(1)?.map(|v| v as u64),
        to_version: r.get::<Option<i64>>(2)?.map(|v| v as u64),
        actor: r.get(3)?,
        at: from_us(r.get(4)?),
        forced: r.get(5)?,
        reason: r.get(6)?,
    })
}

fn insert_history(tx: &Db, c: &AliasChange) -> Result<u64, DbError> {
    tx.execute(
        "INSERT INTO alias_history (name, alias, from_version, to_version, actor, at_us, forced,
            reason)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            c.name,
            c.alias,
            c.from_version.map(|v| v as i64),
            c.to_version.map(|v| v as i64),
            c.actor,
            us(c.at),
            c.forced,
            c.reason
        ],
    )
}
