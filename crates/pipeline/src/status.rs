//! Why a stage must run: what `dvc status` compares. The stage's command against the one in
//! `dvc.lock`, each dependency's and output's md5 (through the state file, so unchanged files
//! are not read again), each parameter's value, and whether cached outputs are in the cache.
//! Also builds the record a stage leaves in `dvc.lock` once it ran.

use serde_yaml_ng::{Mapping, Value};
use taxon_version::cache::Cache;
use taxon_version::hashing::HashState;
use taxon_version::workspace::{Hashed, hash_path};

use crate::error::Result;
use crate::lock::{Entry, LockStage};
use crate::params::ParamsFiles;
use crate::spec::Stage;

/// One reason a stage is out of date.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Reason {
    /// No record in `dvc.lock`.
    NeverRun,
    /// `always_changed: true`.
    AlwaysChanged,
    /// `--force`.
    Forced,
    CmdChanged {
        was: String,
        now: String,
    },
    DepAdded {
        path: String,
    },
    DepRemoved {
        path: String,
    },
    DepModified {
        path: String,
    },
    DepDeleted {
        path: String,
    },
    ParamAdded {
        file: String,
        key: String,
    },
    ParamRemoved {
        file: String,
        key: String,
    },
    ParamModified {
        file: String,
        key: String,
        was: String,
        now: String,
    },
    OutAdded {
        path: String,
    },
    OutRemoved {
        path: String,
    },
    OutModified {
        path: String,
    },
    OutDeleted {
        path: String,
    },
    OutNotInCache {
        path: String,
    },
    /// A stage it depends on runs first (so its dependencies will change).
    Upstream {
        stage: String,
    },
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::NeverRun => write!(f, "never ran (no record in dvc.lock)"),
            Reason::AlwaysChanged => write!(f, "always_changed: true"),
            Reason::Forced => write!(f, "--force"),
            Reason::CmdChanged { was, now } => write!(f, "command changed: `{was}` -> `{now}`"),
            Reason::DepAdded { path } => write!(f, "new dependency {path}"),
            Reason::DepRemoved { path } => write!(f, "dependency {path} no longer listed"),
            Reason::DepModified { path } => write!(f, "dependency {path} modified"),
            Reason::DepDeleted { path } => write!(f, "dependency {path} deleted"),
            Reason::ParamAdded { file, key } => write!(f, "new parameter {file}:{key}"),
            Reason::ParamRemoved { file, key } => {
                write!(f, "parameter {file}:{key} no longer listed")
            }
            Reason::ParamModified {
                file,
                key,
                was,
                now,
            } => write!(f, "parameter {file}:{key} changed: {was} -> {now}"),
            Reason::OutAdded { path } => write!(f, "new output {path}"),
            Reason::OutRemoved { path } => write!(f, "output {path} no longer listed"),
            Reason::OutModified { path } => write!(f, "output {path} modified"),
            Reason::OutDeleted { path } => write!(f, "output {path} deleted"),
            Reason::OutNotInCache { path } => write!(f, "output {path} not in the cache"),
            Reason::Upstream { stage } => write!(f, "stage {stage} runs before it"),
        }
    }
}

/// What a stage needs to compare itself with its record.
pub struct Checker<'a> {
    pub cache: &'a Cache,
    pub state: &'a HashState,
    pub params: &'a mut ParamsFiles,
}

/// A value as one line, for messages.
fn short(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => serde_json::to_string(other).unwrap_or_else(|_| format!("{other:?}")),
    }
}

impl Checker<'_> {
    /// The current md5 of a path (without storing it), `None` when it does not exist.
    fn hash(&self, stage: &Stage, rel: &str) -> Result<Option<Hashed>> {
        let p = stage.abs(rel);
        if std::fs::symlink_metadata(&p).is_err() {
            return Ok(None);
        }
        Ok(Some(hash_path(None, self.state, &p, &|_| {})?))
    }

    /// The parameter values the stage depends on now, per file, keys sorted.
    pub fn param_values(&mut self, stage: &Stage) -> Result<Vec<(String, Mapping)>> {
        let mut out = Vec::new();
        for dep in &stage.params {
            let path = stage.abs(&dep.file);
            let mut values = Mapping::new();
            if dep.keys.is_empty() {
                if let Value::Mapping(all) = self.params.load(&path)? {
                    for (k, v) in all {
                        values.insert(k.clone(), v.clone());
                    }
                }
            } else {
                let mut keys = dep.keys.clone();
                keys.sort();
                for k in keys {
                    let v = self
                        .params
                        .value(&path, &k, &format!("stage `{}`", stage.name))?;
                    values.insert(Value::String(k), v);
                }
            }
            out.push((dep.file.clone(), values));
        }
        Ok(out)
    }

    /// Why `stage` must run, given its `dvc.lock` record; empty when it is up to date.
    pub fn reasons(&mut self, stage: &Stage, lock: Option<&LockStage>) -> Result<Vec<Reason>> {
        let mut why = Vec::new();
        if stage.always_changed {
            why.push(Reason::AlwaysChanged);
        }
        let Some(lock) = lock else {
            why.push(Reason::NeverRun);
            return Ok(why);
        };
        if lock.cmd != stage.cmd {
            why.push(Reason::CmdChanged {
                was: lock.cmd.join(" && "),
                now: stage.cmd_line(),
            });
        }
        for d in &stage.deps {
            match lock.deps.iter().find(|e| same_path(&e.path, d)) {
                None => why.push(Reason::DepAdded { path: d.clone() }),
                Some(e) => match self.hash(stage, d)? {
                    None => why.push(Reason::DepDeleted { path: d.clone() }),
                    Some(h) if !matches(e, &h) => why.push(Reason::DepModified { path: d.clone() }),
                    Some(_) => {}
                },
            }
        }
        for e in &lock.deps {
            if !stage.deps.iter().any(|d| same_path(&e.path, d)) {
                why.push(Reason::DepRemoved {
                    path: e.path.clone(),
                });
            }
        }
        let now = self.param_values(stage)?;
        for (file, values) in &now {
            let was = lock.params.iter().find(|(f, _)| f == file).map(|(_, m)| m);
            for (k, v) in values {
                let key = short(k);
                match was.and_then(|m| m.get(k)) {
                    None => why.push(Reason::ParamAdded {
                        file: file.clone(),
                        key,
                    }),
                    Some(old) if !same_value(old, v) => {
                        param_changes(file, &key, old, v, &mut why);
                    }
                    Some(_) => {}
                }
            }
        }
        for (file, values) in &lock.params {
            let current = now.iter().find(|(f, _)| f == file).map(|(_, m)| m);
            for k in values.keys() {
                if current.is_none_or(|m| !m.contains_key(k)) {
                    why.push(Reason::ParamRemoved {
                        file: file.clone(),
                        key: short(k),
                    });
                }
            }
        }
        for o in &stage.outs {
            match lock.outs.iter().find(|e| same_path(&e.path, &o.path)) {
                None => why.push(Reason::OutAdded {
                    path: o.path.clone(),
                }),
                Some(e) => match self.hash(stage, &o.path)? {
                    None => why.push(Reason::OutDeleted {
                        path: o.path.clone(),
                    }),
                    Some(h) if !matches(e, &h) => why.push(Reason::OutModified {
                        path: o.path.clone(),
                    }),
                    Some(h) => {
                        if o.cache && !self.in_cache(&h)? {
                            why.push(Reason::OutNotInCache {
                                path: o.path.clone(),
                            });
                        }
                    }
                },
            }
        }
        for e in &lock.outs {
            if !stage.outs.iter().any(|o| same_path(&e.path, &o.path)) {
                why.push(Reason::OutRemoved {
                    path: e.path.clone(),
                });
            }
        }
        Ok(why)
    }

    /// The object (and, for a folder, its manifest and every file in it) is in the cache.
    fn in_cache(&self, h: &Hashed) -> Result<bool> {
        if !self.cache.contains(&h.md5) {
            return Ok(false);
        }
        if h.md5.is_dir() {
            let entries = self.cache.read_dir_manifest(&h.md5)?;
            return Ok(entries.iter().all(|e| self.cache.contains(&e.md5)));
        }
        Ok(true)
    }

    /// The `dvc.lock` record of a stage that just ran: dependencies hashed, outputs hashed
    /// into the cache (those with `cache: true`), parameter values.
    pub fn record(&mut self, stage: &Stage) -> Result<LockStage> {
        let mut deps = Vec::new();
        for d in &stage.deps {
            let p = stage.abs(d);
            let h = hash_path(None, self.state, &p, &|_| {})?;
            deps.push(entry(d, &h));
        }
        let mut outs = Vec::new();
        for o in &stage.outs {
            let p = stage.abs(&o.path);
            let cache = o.cache.then_some(self.cache);
            let h = hash_path(cache, self.state, &p, &|_| {})?;
            outs.push(entry(&o.path, &h));
        }
        deps.sort_by(|a, b| a.path.cmp(&b.path));
        outs.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(LockStage {
            cmd: stage.cmd.clone(),
            cmd_is_list: stage.cmd_is_list,
            deps,
            params: self.param_values(stage)?,
            outs,
        })
    }
}

fn entry(path: &str, h: &Hashed) -> Entry {
    Entry {
        path: path.to_string(),
        hash: Some("md5".into()),
        md5: Some(h.md5.to_string()),
        size: Some(h.size),
        nfiles: h.nfiles,
    }
}

/// What changed in a parameter: for a section (a mapping), each changed key inside it
/// (`train.seed: 42 -> 7`), else the value itself.
fn param_changes(file: &str, key: &str, was: &Value, now: &Value, why: &mut Vec<Reason>) {
    if let (Value::Mapping(a), Value::Mapping(b)) = (was, now) {
        for (k, v) in b {
            let sub = format!("{key}.{}", short(k));
            match a.get(k) {
                None => why.push(Reason::ParamAdded {
                    file: file.to_string(),
                    key: sub,
                }),
                Some(old) if !same_value(old, v) => param_changes(file, &sub, old, v, why),
                Some(_) => {}
            }
        }
        for k in a.keys() {
            if !b.contains_key(k) {
                why.push(Reason::ParamRemoved {
                    file: file.to_string(),
                    key: format!("{key}.{}", short(k)),
                });
            }
        }
        return;
    }
    why.push(Reason::ParamModified {
        file: file.to_string(),
        key: key.to_string(),
        was: short(was),
        now: short(now),
    });
}

/// A recorded entry matches a fresh hash (DVC 2 entries, without `hash: md5`, never do: their
/// md5 was computed another way).
fn matches(e: &Entry, h: &Hashed) -> bool {
    e.hash.as_deref() == Some("md5") && e.md5.as_deref() == Some(h.md5.as_str())
}

/// `./a/b/` and `a/b` name the same path.
fn same_path(a: &str, b: &str) -> bool {
    let clean = |s: &str| {
        let s = s.trim_end_matches('/');
        s.strip_prefix("./").unwrap_or(s).to_string()
    };
    clean(a) == clean(b)
}

/// Parameter equality as Python's `==` sees it after loading YAML (`1 == 1.0`).
fn same_value(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => x == y,
        },
        (Value::Sequence(x), Value::Sequence(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same_value(a, b))
        }
        (Value::Mapping(x), Value::Mapping(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_value(v, w)))
        }
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_changed_section_names_the_keys_that_changed() {
        let was: Value = serde_yaml_ng::from_str("{seed: 42, threads: 2, lr: 0.1}").unwrap();
        let now: Value =
            serde_yaml_ng::from_str("{seed: 7, threads: 2, lr: 0.1, extra: 1}").unwrap();
        let mut why = Vec::new();
        param_changes("params.yaml", "train", &was, &now, &mut why);
        let text: Vec<String> = why.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "parameter params.yaml:train.seed changed: 42 -> 7",
                "new parameter params.yaml:train.extra"
            ]
        );
        assert!(same_value(
            &Value::from(1),
            &serde_yaml_ng::from_str("1.0").unwrap()
        ));
    }
}
