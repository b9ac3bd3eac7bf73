//! `dvc.yaml`: the stages as DVC defines them, with templating resolved and `foreach`
//! expanded into `name@item` stages.
//!
//! Supported stage keys: `cmd` (a string or a list), `wdir`, `deps`, `params`, `outs`,
//! `metrics`, `plots` (`cache`, `persist`; other plot properties are accepted and ignored),
//! `frozen`, `always_changed`, `desc`, `meta`, `vars`, `foreach`/`do`. Top level: `stages`,
//! `vars`; `params`, `metrics`, `plots` and `artifacts` at the top level are accepted and
//! ignored (they configure `dvc metrics/plots`, not what runs). Not supported, refused with a
//! clear error: `matrix` stages.

use std::path::{Component, Path, PathBuf};

use serde_yaml_ng::{Mapping, Value};

use crate::error::{PipelineError, Result, read_yaml};
use crate::interp;
use crate::params::{DEFAULT_PARAMS, ParamsFiles};

/// The file name DVC gives a pipeline.
pub const DVC_YAML: &str = "dvc.yaml";

/// A pipeline: the stages of one `dvc.yaml`, in file order.
#[derive(Clone, Debug)]
pub struct Pipeline {
    /// The `dvc.yaml` file.
    pub path: PathBuf,
    /// Its folder; stage paths are relative to it (and to their `wdir`).
    pub dir: PathBuf,
    pub stages: Vec<Stage>,
}

/// One stage after templating.
#[derive(Clone, Debug, PartialEq)]
pub struct Stage {
    /// `train`, or `train@bbc` for one item of a `foreach`.
    pub name: String,
    /// The commands, run in order by `sh -c` in [`Stage::wdir`].
    pub cmd: Vec<String>,
    /// `cmd` was written as a list (and is recorded as one in `dvc.lock`).
    pub cmd_is_list: bool,
    /// `wdir` as written (`.` when absent).
    pub wdir_rel: String,
    /// The absolute working folder.
    pub wdir: PathBuf,
    pub deps: Vec<String>,
    pub params: Vec<ParamDep>,
    pub outs: Vec<OutSpec>,
    pub frozen: bool,
    pub always_changed: bool,
    pub desc: Option<String>,
}

/// Parameters a stage depends on, from one file.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDep {
    /// The file as written (relative to the stage's `wdir`).
    pub file: String,
    /// Dotted keys; empty means every top-level key of the file.
    pub keys: Vec<String>,
}

/// What kind of output a path was declared as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutKind {
    Out,
    Metric,
    Plot,
}

/// An output of a stage.
#[derive(Clone, Debug, PartialEq)]
pub struct OutSpec {
    /// As written, relative to the stage's `wdir`.
    pub path: String,
    /// Stored in the DVC cache (`cache: true`, the default).
    pub cache: bool,
    /// Kept, not deleted, before the stage runs (`persist: true`).
    pub persist: bool,
    pub kind: OutKind,
}

impl Stage {
    /// An absolute path for `rel`, written relative to this stage's `wdir`, with `.` and `..`
    /// folded.
    pub fn abs(&self, rel: &str) -> PathBuf {
        normalize(&self.wdir.join(rel))
    }

    /// The commands as one line, for messages.
    pub fn cmd_line(&self) -> String {
        self.cmd.join(" && ")
    }
}

impl Pipeline {
    /// Reads and resolves `path` (a `dvc.yaml`).
    pub fn load(path: &Path) -> Result<Self> {
        let path = std::path::absolute(path).map_err(|source| PipelineError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("/")).to_path_buf();
        let root = read_yaml(&path)?;
        let mut params = ParamsFiles::default();
        parse(&path, &dir, &root, &mut params)
    }

    /// The stage called `name`.
    pub fn stage(&self, name: &str) -> Result<&Stage> {
        self.stages
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| PipelineError::UnknownStage(name.to_string(), self.path.clone()))
    }
}

fn invalid(path: &Path, location: impl Into<String>, message: impl Into<String>) -> PipelineError {
    PipelineError::Invalid {
        path: path.to_path_buf(),
        location: location.into(),
        message: message.into(),
    }
}

/// Merges `add` into the variables `into` (later definitions win, key by key at the top).
fn merge_vars(into: &mut Mapping, add: &Value) {
    if let Value::Mapping(m) = add {
        for (k, v) in m {
            into.insert(k.clone(), v.clone());
        }
    }
}

/// The variables `vars:` brings in: params files (`file.yaml`, or `file.yaml:key1,key2`) and
/// inline mappings.
fn load_vars(
    file: &Path,
    dir: &Path,
    list: &Value,
    location: &str,
    params: &mut ParamsFiles,
    into: &mut Mapping,
) -> Result<()> {
    let Value::Sequence(items) = list else {
        return Err(invalid(
            file,
            location,
            "must be a list of files or mappings",
        ));
    };
    for (i, item) in items.iter().enumerate() {
        match item {
            Value::String(s) => {
                let (name, keys) = match s.split_once(':') {
                    Some((n, k)) => (n, Some(k)),
                    None => (s.as_str(), None),
                };
                let content = params.load(&dir.join(name))?.clone();
                match keys {
                    None => merge_vars(into, &content),
                    Some(keys) => {
                        for key in keys.split(',').map(str::trim).filter(|k| !k.is_empty()) {
                            let v =
                                params.value(&dir.join(name), key, &format!("{location}[{i}]"))?;
                            into.insert(Value::String(key.to_string()), v);
                        }
                    }
                }
            }
            Value::Mapping(_) => merge_vars(into, item),
            _ => {
                return Err(invalid(
                    file,
                    format!("{location}[{i}]"),
                    "must be a file name or a mapping",
                ));
            }
        }
    }
    Ok(())
}

fn parse(file: &Path, dir: &Path, root: &Value, params: &mut ParamsFiles) -> Result<Pipeline> {
    let Value::Mapping(top) = root else {
        return Err(invalid(
            file,
            "top level",
            "must be a mapping with a `stages` key",
        ));
    };
    let mut vars = Mapping::new();
    let default_params = dir.join(DEFAULT_PARAMS);
    if default_params.is_file() {
        merge_vars(&mut vars, &params.load(&default_params)?.clone());
    }
    for (k, v) in top {
        match k.as_str() {
            Some("stages") => {}
            Some("vars") => load_vars(file, dir, v, "vars", params, &mut vars)?,
            Some("params" | "metrics" | "plots" | "artifacts" | "datasets") => {}
            Some(other) => {
                return Err(invalid(file, other, "unknown top-level key of dvc.yaml"));
            }
            None => return Err(invalid(file, "top level", "keys must be strings")),
        }
    }
    let stages = match top.get("stages") {
        Some(Value::Mapping(m)) => m,
        Some(Value::Null) | None => {
            return Err(invalid(file, "stages", "no stages defined"));
        }
        Some(_) => return Err(invalid(file, "stages", "must be a mapping of stage names")),
    };
    let mut out = Vec::new();
    for (name, body) in stages {
        let Some(name) = name.as_str() else {
            return Err(invalid(file, "stages", "stage names must be strings"));
        };
        if !valid_name(name) {
            return Err(invalid(
                file,
                format!("stages.{name}"),
                "a stage name may hold letters, digits, `-` and `_` only",
            ));
        }
        let Value::Mapping(body) = body else {
            return Err(invalid(file, format!("stages.{name}"), "must be a mapping"));
        };
        let mut scope = vars.clone();
        if let Some(v) = body.get("vars") {
            load_vars(
                file,
                dir,
                v,
                &format!("stages.{name}.vars"),
                params,
                &mut scope,
            )?;
        }
        if body.contains_key("matrix") {
            return Err(invalid(
                file,
                format!("stages.{name}.matrix"),
                "`matrix` stages are not supported by taxon yet; write them with `foreach`",
            ));
        }
        match body.get("foreach") {
            None => out.push(stage(file, dir, name, body, &Value::Mapping(scope))?),
            Some(each) => {
                let Some(Value::Mapping(template)) = body.get("do") else {
                    return Err(invalid(
                        file,
                        format!("stages.{name}"),
                        "`foreach` needs a `do` mapping",
                    ));
                };
                let scope_v = Value::Mapping(scope.clone());
                let each = match each {
                    Value::String(s) => interp::resolve(s, &scope_v)
                        .map_err(|m| invalid(file, format!("stages.{name}.foreach"), m))?,
                    other => other.clone(),
                };
                let items: Vec<(String, Mapping)> = match &each {
                    Value::Sequence(list) => list
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let suffix = scalar_text(item).unwrap_or_else(|| i.to_string());
                            let mut s = scope.clone();
                            s.insert("item".into(), item.clone());
                            (suffix, s)
                        })
                        .collect(),
                    Value::Mapping(m) => m
                        .iter()
                        .map(|(k, item)| {
                            let key = scalar_text(k).unwrap_or_default();
                            let mut s = scope.clone();
                            s.insert("item".into(), item.clone());
                            s.insert("key".into(), Value::String(key.clone()));
                            (key, s)
                        })
                        .collect(),
                    _ => {
                        return Err(invalid(
                            file,
                            format!("stages.{name}.foreach"),
                            "must be a list, a mapping, or a `${...}` naming one",
                        ));
                    }
                };
                for (suffix, s) in items {
                    let full = format!("{name}@{suffix}");
                    out.push(stage(file, dir, &full, template, &Value::Mapping(s))?);
                }
            }
        }
    }
    let mut seen = std::collections::HashSet::new();
    for s in &out {
        if !seen.insert(s.name.clone()) {
            return Err(invalid(file, format!("stages.{}", s.name), "defined twice"));
        }
    }
    Ok(Pipeline {
        path: file.to_path_buf(),
        dir: dir.to_path_buf(),
        stages: out,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// One stage from its (already `foreach`-expanded) body, templated with `vars`.
fn stage(file: &Path, dir: &Path, name: &str, body: &Mapping, vars: &Value) -> Result<Stage> {
    let at = |key: &str| format!("stages.{name}.{key}");
    let resolved = interp::resolve_tree(&Value::Mapping(body.clone()), vars)
        .map_err(|m| invalid(file, format!("stages.{name}"), m))?;
    let Value::Mapping(body) = resolved else {
        unreachable!("a mapping resolves to a mapping")
    };
    for key in body.keys() {
        match key.as_str() {
            Some(
                "cmd" | "wdir" | "deps" | "params" | "outs" | "metrics" | "plots" | "frozen"
                | "always_changed" | "desc" | "meta" | "vars" | "foreach" | "do",
            ) => {}
            Some(other) => return Err(invalid(file, at(other), "unknown stage key")),
            None => return Err(invalid(file, at("?"), "keys must be strings")),
        }
    }
    let (cmd, cmd_is_list) = match body.get("cmd") {
        Some(Value::String(s)) => (vec![s.clone()], false),
        Some(Value::Sequence(list)) => {
            let cmds = list
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    scalar_text(c).ok_or_else(|| {
                        invalid(file, format!("{}[{i}]", at("cmd")), "must be a string")
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            if cmds.is_empty() {
                return Err(invalid(file, at("cmd"), "is an empty list"));
            }
            (cmds, true)
        }
        Some(_) => {
            return Err(invalid(
                file,
                at("cmd"),
                "must be a string or a list of strings",
            ));
        }
        None => return Err(invalid(file, at("cmd"), "is required")),
    };
    let wdir_rel = match body.get("wdir") {
        None => ".".to_string(),
        Some(v) => scalar_text(v).ok_or_else(|| invalid(file, at("wdir"), "must be a path"))?,
    };
    let flag = |key: &str| -> Result<bool> {
        match body.get(key) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(invalid(file, at(key), "must be true or false")),
        }
    };
    let mut deps = Vec::new();
    if let Some(v) = body.get("deps") {
        let Value::Sequence(list) = v else {
            return Err(invalid(file, at("deps"), "must be a list of paths"));
        };
        for (i, d) in list.iter().enumerate() {
            deps.push(
                scalar_text(d).ok_or_else(|| {
                    invalid(file, format!("{}[{i}]", at("deps")), "must be a path")
                })?,
            );
        }
    }
    let params = match body.get("params") {
        None => Vec::new(),
        Some(v) => param_deps(file, &at("params"), v)?,
    };
    let mut outs = Vec::new();
    for (key, kind) in [
        ("outs", OutKind::Out),
        ("metrics", OutKind::Metric),
        ("plots", OutKind::Plot),
    ] {
        if let Some(v) = body.get(key) {
            outs.extend(out_specs(file, &at(key), v, kind)?);
        }
    }
    Ok(Stage {
        name: name.to_string(),
        cmd,
        cmd_is_list,
        wdir: normalize(&dir.join(&wdir_rel)),
        wdir_rel,
        deps,
        params,
        outs,
        frozen: flag("frozen")?,
        always_changed: flag("always_changed")?,
        desc: body.get("desc").and_then(scalar_text),
    })
}

/// `params:`: bare keys (of `params.yaml`) and `{file: [keys]}` mappings.
fn param_deps(file: &Path, at: &str, v: &Value) -> Result<Vec<ParamDep>> {
    let Value::Sequence(list) = v else {
        return Err(invalid(
            file,
            at,
            "must be a list of keys or {file: [keys]}",
        ));
    };
    let mut out: Vec<ParamDep> = Vec::new();
    let mut push = |file_name: &str, key: Option<String>| {
        let entry = match out.iter_mut().find(|p| p.file == file_name) {
            Some(e) => e,
            None => {
                out.push(ParamDep {
                    file: file_name.to_string(),
                    keys: Vec::new(),
                });
                out.last_mut().expect("just pushed")
            }
        };
        if let Some(k) = key {
            if !entry.keys.contains(&k) {
                entry.keys.push(k);
            }
        }
    };
    for (i, item) in list.iter().enumerate() {
        match item {
            Value::Mapping(m) => {
                for (f, keys) in m {
                    let f = scalar_text(f).ok_or_else(|| {
                        invalid(file, format!("{at}[{i}]"), "file must be a path")
                    })?;
                    match keys {
                        Value::Null => push(&f, None),
                        Value::Sequence(ks) if ks.is_empty() => push(&f, None),
                        Value::Sequence(ks) => {
                            for k in ks {
                                let k = scalar_text(k).ok_or_else(|| {
                                    invalid(file, format!("{at}[{i}].{f}"), "keys must be strings")
                                })?;
                                push(&f, Some(k));
                            }
                        }
                        _ => {
                            return Err(invalid(
                                file,
                                format!("{at}[{i}].{f}"),
                                "must be a list of keys",
                            ));
                        }
                    }
                }
            }
            other => {
                let k = scalar_text(other)
                    .ok_or_else(|| invalid(file, format!("{at}[{i}]"), "must be a key"))?;
                push(DEFAULT_PARAMS, Some(k));
            }
        }
    }
    Ok(out)
}

/// `outs:`/`metrics:`/`plots:`: paths, or `{path: {cache: .., persist: ..}}`.
fn out_specs(file: &Path, at: &str, v: &Value, kind: OutKind) -> Result<Vec<OutSpec>> {
    let Value::Sequence(list) = v else {
        return Err(invalid(file, at, "must be a list of paths"));
    };
    let default_cache = kind == OutKind::Out;
    let mut out = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let loc = format!("{at}[{i}]");
        match item {
            Value::Mapping(m) => {
                for (p, opts) in m {
                    let path = scalar_text(p)
                        .ok_or_else(|| invalid(file, &loc, "output path must be a string"))?;
                    let (mut cache, mut persist) = (default_cache, false);
                    if let Value::Mapping(o) = opts {
                        for (k, val) in o {
                            match (k.as_str(), val) {
                                (Some("cache"), Value::Bool(b)) => cache = *b,
                                (Some("persist"), Value::Bool(b)) => persist = *b,
                                (Some("cache" | "persist"), _) => {
                                    return Err(invalid(
                                        file,
                                        format!("{loc}.{path}"),
                                        "`cache` and `persist` must be true or false",
                                    ));
                                }
                                // desc, remote, push, type, labels, x, y, template, ...: about
                                // how DVC shows or pushes the output, not what runs.
                                _ => {}
                            }
                        }
                    } else if !opts.is_null() {
                        return Err(invalid(
                            file,
                            format!("{loc}.{path}"),
                            "output options must be a mapping",
                        ));
                    }
                    out.push(OutSpec {
                        path,
                        cache,
                        persist,
                        kind,
                    });
                }
            }
            other => out.push(OutSpec {
                path: scalar_text(other).ok_or_else(|| invalid(file, &loc, "must be a path"))?,
                cache: default_cache,
                persist: false,
                kind,
            }),
        }
    }
    Ok(out)
}

/// `a/./b/../c` → `a/c`, without touching the file system (paths may not exist yet).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(yaml: &str, params: &str) -> Result<Pipeline> {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("dvc.yaml"), yaml).unwrap();
        if !params.is_empty() {
            std::fs::write(dir.path().join("params.yaml"), params).unwrap();
        }
        let p = Pipeline::load(&dir.path().join("dvc.yaml"));
        drop(dir);
        p
    }

    #[test]
    fn stages_are_read_with_templating_and_defaults() {
        let p = load(
            "stages:\n  train:\n    cmd: taxon train --epochs ${train.epochs}\n    deps: [data/train.jsonl]\n    params: [train.epochs, {other.yaml: [a]}]\n    outs: [models/m, {log.txt: {cache: false, persist: true}}]\n    metrics: [{m.json: {cache: false}}]\n",
            "train:\n  epochs: 4\n",
        )
        .unwrap();
        let s = &p.stages[0];
        assert_eq!(s.cmd, vec!["taxon train --epochs 4"]);
        assert_eq!(s.deps, vec!["data/train.jsonl"]);
        assert_eq!(s.params.len(), 2);
        assert_eq!(s.params[0].file, "params.yaml");
        assert_eq!(s.params[1].keys, vec!["a"]);
        assert!(s.outs[0].cache && !s.outs[0].persist);
        assert!(!s.outs[1].cache && s.outs[1].persist);
        assert_eq!(s.outs[2].kind, OutKind::Metric);
    }

    #[test]
    fn foreach_expands_lists_and_mappings() {
        let p = load(
            "stages:\n  split:\n    foreach: ${sets}\n    do:\n      cmd: echo ${item}\n      outs:\n      - out_${item}.txt\n  fit:\n    foreach: {a: 1, b: 2}\n    do:\n      cmd: echo ${key} ${item}\n",
            "sets: [x, y]\n",
        )
        .unwrap();
        let names: Vec<_> = p.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["split@x", "split@y", "fit@a", "fit@b"]);
        assert_eq!(p.stages[1].outs[0].path, "out_y.txt");
        assert_eq!(p.stages[3].cmd, vec!["echo b 2"]);
    }

    #[test]
    fn errors_name_the_file_stage_and_key() {
        let e = load("stages:\n  t:\n    cmd: x\n    bogus: 1\n", "").unwrap_err();
        assert!(e.to_string().contains("stages.t.bogus"), "{e}");
        let e = load("stages:\n  t:\n    deps: [a]\n", "").unwrap_err();
        assert!(e.to_string().contains("stages.t.cmd: is required"), "{e}");
        let e = load("stages:\n  t:\n    cmd: echo ${nope}\n", "").unwrap_err();
        assert!(e.to_string().contains("nope"), "{e}");
        let e = load("stages:\n  t:\n    cmd: [x\n", "").unwrap_err();
        assert!(e.to_string().contains("dvc.yaml:"), "{e}");
        let e = load("stages:\n  t:\n    matrix: {a: [1]}\n    cmd: x\n", "").unwrap_err();
        assert!(e.to_string().contains("matrix"), "{e}");
    }

    #[test]
    fn normalize_folds_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
