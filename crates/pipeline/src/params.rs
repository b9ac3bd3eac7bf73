//! Parameter files (`params.yaml` by default; any YAML or JSON file) and DVC's dotted keys
//! into them (`train.epochs`), read once per run and shared by every stage.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::error::{PipelineError, Result, read_yaml};

/// The params file a bare key refers to.
pub const DEFAULT_PARAMS: &str = "params.yaml";

/// Parameter files read so far, by absolute path.
#[derive(Debug, Default)]
pub struct ParamsFiles {
    files: HashMap<PathBuf, Value>,
}

impl ParamsFiles {
    /// The whole content of `path` (a missing file is an error naming it).
    pub fn load(&mut self, path: &Path) -> Result<&Value> {
        if !self.files.contains_key(path) {
            match path.extension().and_then(|e| e.to_str()) {
                Some("yaml" | "yml" | "json") | None => {}
                Some(other) => {
                    return Err(PipelineError::Invalid {
                        path: path.to_path_buf(),
                        location: "params".into(),
                        message: format!(
                            "params files of type .{other} are not supported; use YAML or JSON"
                        ),
                    });
                }
            }
            let value = read_yaml(path)?;
            self.files.insert(path.to_path_buf(), value);
        }
        Ok(&self.files[path])
    }

    /// The value of `key` in `path`, or an error that names the file, the key and who asked.
    pub fn value(&mut self, path: &Path, key: &str, used_by: &str) -> Result<Value> {
        let root = self.load(path)?;
        lookup(root, key)
            .cloned()
            .ok_or_else(|| PipelineError::MissingParam {
                path: path.to_path_buf(),
                key: key.to_string(),
                used_by: used_by.to_string(),
            })
    }
}

/// `a.b.c` in nested mappings; a numeric part indexes a list (`layers.0`).
pub fn lookup<'a>(root: &'a Value, dotted: &str) -> Option<&'a Value> {
    let mut v = root;
    for part in dotted.split('.') {
        v = match v {
            Value::Mapping(m) => m.get(part)?,
            Value::Sequence(s) => s.get(part.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_reach_nested_values_and_list_items() {
        let v: Value = serde_yaml_ng::from_str("train:\n  epochs: 3\n  layers: [8, 16]\n").unwrap();
        assert_eq!(lookup(&v, "train.epochs"), Some(&Value::from(3)));
        assert_eq!(lookup(&v, "train.layers.1"), Some(&Value::from(16)));
        assert_eq!(lookup(&v, "train.missing"), None);
        assert_eq!(lookup(&v, "train.epochs.x"), None);
    }
}
