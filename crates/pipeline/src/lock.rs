//! `dvc.lock` (schema 2.0) as DVC 3 reads and writes it: per stage the command, each
//! dependency's and output's md5 (`hash: md5`, size, `nfiles` for folders) and the parameter
//! values. Entries of stages that are not run are kept as they were; the file is replaced
//! atomically, so a killed run leaves the previous lock or the new one, never half of one.

use std::path::Path;

use serde_yaml_ng::{Mapping, Value};

use crate::error::{IoContext, PipelineError, Result, parse_yaml};

/// The file name DVC gives the lock of `dvc.yaml`.
pub const DVC_LOCK: &str = "dvc.lock";

/// One dependency or output as recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Entry {
    pub path: String,
    /// `md5` for DVC 3; absent in locks written by DVC 2 (whose md5 ignored CRLF).
    pub hash: Option<String>,
    pub md5: Option<String>,
    pub size: Option<u64>,
    pub nfiles: Option<u64>,
}

/// One stage's record.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct LockStage {
    pub cmd: Vec<String>,
    pub cmd_is_list: bool,
    pub deps: Vec<Entry>,
    /// Per params file, key → value.
    #[serde(skip)]
    pub params: Vec<(String, Mapping)>,
    pub outs: Vec<Entry>,
}

/// The whole lock file, stages in file order.
#[derive(Clone, Debug, Default)]
pub struct LockFile {
    pub stages: Vec<(String, LockStage)>,
}

impl LockFile {
    /// Reads `path`; a missing file is an empty lock.
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Self::default()),
            Err(e) => return Err(e).at(path),
        };
        parse(&parse_yaml(&text, path)?, path)
    }

    pub fn get(&self, stage: &str) -> Option<&LockStage> {
        self.stages.iter().find(|(n, _)| n == stage).map(|(_, s)| s)
    }

    /// Sets `stage`'s record, in place when it has one, else after the existing ones.
    pub fn set(&mut self, stage: &str, record: LockStage) {
        match self.stages.iter_mut().find(|(n, _)| n == stage) {
            Some((_, s)) => *s = record,
            None => self.stages.push((stage.to_string(), record)),
        }
    }

    /// Orders the records as `order` lists the stages (others keep their place at the end).
    pub fn sort_by_stages(&mut self, order: &[String]) {
        let pos = |n: &str| order.iter().position(|o| o == n).unwrap_or(usize::MAX);
        self.stages.sort_by_key(|(n, _)| pos(n));
    }

    /// The YAML text DVC writes.
    pub fn to_yaml(&self) -> String {
        let mut stages = Mapping::new();
        for (name, s) in &self.stages {
            stages.insert(Value::from(name.as_str()), stage_value(s));
        }
        let mut top = Mapping::new();
        top.insert("schema".into(), "2.0".into());
        top.insert("stages".into(), Value::Mapping(stages));
        serde_yaml_ng::to_string(&Value::Mapping(top)).expect("YAML values serialize")
    }

    /// Writes the lock atomically (a temporary file in the same folder, then a rename).
    pub fn save(&self, path: &Path) -> Result<()> {
        Ok(taxon_version::dvcfile::write_atomic(
            path,
            self.to_yaml().as_bytes(),
        )?)
    }
}

fn entry_value(e: &Entry) -> Value {
    let mut m = Mapping::new();
    m.insert("path".into(), e.path.as_str().into());
    if let Some(h) = &e.hash {
        m.insert("hash".into(), h.as_str().into());
    }
    if let Some(md5) = &e.md5 {
        m.insert("md5".into(), md5.as_str().into());
    }
    if let Some(s) = e.size {
        m.insert("size".into(), s.into());
    }
    if let Some(n) = e.nfiles {
        m.insert("nfiles".into(), n.into());
    }
    Value::Mapping(m)
}

fn stage_value(s: &LockStage) -> Value {
    let mut m = Mapping::new();
    let cmd = if s.cmd_is_list {
        Value::Sequence(s.cmd.iter().map(|c| c.as_str().into()).collect())
    } else {
        s.cmd.join(" && ").into()
    };
    m.insert("cmd".into(), cmd);
    if !s.deps.is_empty() {
        m.insert(
            "deps".into(),
            Value::Sequence(s.deps.iter().map(entry_value).collect()),
        );
    }
    if !s.params.is_empty() {
        let mut p = Mapping::new();
        for (file, values) in &s.params {
            p.insert(file.as_str().into(), Value::Mapping(values.clone()));
        }
        m.insert("params".into(), Value::Mapping(p));
    }
    if !s.outs.is_empty() {
        m.insert(
            "outs".into(),
            Value::Sequence(s.outs.iter().map(entry_value).collect()),
        );
    }
    Value::Mapping(m)
}

fn bad(path: &Path, location: String, message: &str) -> PipelineError {
    PipelineError::Invalid {
        path: path.to_path_buf(),
        location,
        message: message.to_string(),
    }
}

fn parse(root: &Value, path: &Path) -> Result<LockFile> {
    let top = match root {
        Value::Null => return Ok(LockFile::default()),
        Value::Mapping(m) => m,
        _ => return Err(bad(path, "top level".into(), "must be a mapping")),
    };
    match top.get("schema").and_then(Value::as_str) {
        Some("2.0") => {}
        Some(other) => {
            return Err(bad(
                path,
                "schema".into(),
                &format!("lock schema {other:?} is not supported (DVC 2 and 3 write '2.0')"),
            ));
        }
        None => {
            return Err(bad(
                path,
                "schema".into(),
                "missing: a DVC 1 lock; run `dvc repro` once with DVC 3 or delete it",
            ));
        }
    }
    let mut out = LockFile::default();
    let Some(stages) = top.get("stages") else {
        return Ok(out);
    };
    let Value::Mapping(stages) = stages else {
        return Err(bad(path, "stages".into(), "must be a mapping"));
    };
    for (name, body) in stages {
        let name = name
            .as_str()
            .ok_or_else(|| bad(path, "stages".into(), "stage names must be strings"))?
            .to_string();
        let at = |k: &str| format!("stages.{name}.{k}");
        let Value::Mapping(body) = body else {
            return Err(bad(path, format!("stages.{name}"), "must be a mapping"));
        };
        let (cmd, cmd_is_list) = match body.get("cmd") {
            Some(Value::String(s)) => (vec![s.clone()], false),
            Some(Value::Sequence(l)) => (
                l.iter()
                    .map(|c| c.as_str().map(str::to_string))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad(path, at("cmd"), "must be strings"))?,
                true,
            ),
            _ => return Err(bad(path, at("cmd"), "missing or not a string")),
        };
        let entries = |key: &str| -> Result<Vec<Entry>> {
            match body.get(key) {
                None | Some(Value::Null) => Ok(Vec::new()),
                Some(Value::Sequence(l)) => l
                    .iter()
                    .enumerate()
                    .map(|(i, e)| {
                        entry(e)
                            .ok_or_else(|| bad(path, format!("{}[{i}]", at(key)), "needs a `path`"))
                    })
                    .collect(),
                Some(_) => Err(bad(path, at(key), "must be a list")),
            }
        };
        let mut params = Vec::new();
        match body.get("params") {
            None | Some(Value::Null) => {}
            Some(Value::Mapping(files)) => {
                for (f, values) in files {
                    let (Some(f), Value::Mapping(values)) = (f.as_str(), values) else {
                        return Err(bad(path, at("params"), "must map files to key/values"));
                    };
                    params.push((f.to_string(), values.clone()));
                }
            }
            Some(_) => return Err(bad(path, at("params"), "must be a mapping")),
        }
        let record = LockStage {
            cmd,
            cmd_is_list,
            deps: entries("deps")?,
            params,
            outs: entries("outs")?,
        };
        out.stages.push((name, record));
    }
    Ok(out)
}

fn entry(v: &Value) -> Option<Entry> {
    let m = v.as_mapping()?;
    let s = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    Some(Entry {
        path: s("path")?,
        hash: s("hash"),
        md5: s("md5"),
        size: m.get("size").and_then(Value::as_u64),
        nfiles: m.get("nfiles").and_then(Value::as_u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DVC_WRITTEN: &str = r#"schema: '2.0'
stages:
  prep:
    cmd: mkdir -p out && cp data/raw.csv out/x.csv
    deps:
    - path: data/raw.csv
      hash: md5
      md5: f69f5b72bc79a92dc70c63c9aa142e36
      size: 4
    params:
      params.yaml:
        prep.split: 0.2
    outs:
    - path: out
      hash: md5
      md5: c0642938d76fbdee86e097fb96667dd9.dir
      size: 6
      nfiles: 2
  train:
    cmd: "cat out/x.csv > model.txt && printf '{\"acc\": 0.9}' > metrics.json"
    params:
      params.yaml:
        train:
          epochs: 5
          lr: 0.1
"#;

    #[test]
    fn a_lock_dvc_wrote_reads_and_writes_back_the_same() {
        let p = Path::new("dvc.lock");
        let lock = parse(&parse_yaml(DVC_WRITTEN, p).unwrap(), p).unwrap();
        assert_eq!(lock.stages.len(), 2);
        let prep = lock.get("prep").unwrap();
        assert_eq!(prep.outs[0].nfiles, Some(2));
        assert_eq!(prep.params[0].0, "params.yaml");
        let again = parse(&parse_yaml(&lock.to_yaml(), p).unwrap(), p).unwrap();
        assert_eq!(again.stages, lock.stages);
        let a: Value = serde_yaml_ng::from_str(DVC_WRITTEN).unwrap();
        let b: Value = serde_yaml_ng::from_str(&lock.to_yaml()).unwrap();
        assert_eq!(a, b, "the same document, key for key");
    }

    #[test]
    fn unsupported_schemas_are_refused_with_the_reason() {
        let p = Path::new("dvc.lock");
        let e = parse(&parse_yaml("prep:\n  cmd: x\n", p).unwrap(), p).unwrap_err();
        assert!(e.to_string().contains("DVC 1"), "{e}");
    }
}
