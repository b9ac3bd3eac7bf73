//! Artifacts of a run: every file of a model folder (or a single file) with its md5 and size.

use std::io::Read;
use std::path::Path;

use md5::{Digest, Md5};

use crate::error::{Result, TrackError};
use crate::record::Artifact;

/// md5 and size of one file, streamed.
pub fn file_md5(path: &Path) -> Result<(String, u64)> {
    let io = |source| TrackError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((hex::encode(h.finalize()), size))
}

/// The files under `dir` (recursively, sorted), named `prefix/relative/path`; sub-folders
/// named in `skip` (such as `checkpoints`) are left out.
pub fn folder_artifacts(dir: &Path, prefix: &str, skip: &[&str]) -> Result<Vec<Artifact>> {
    fn walk(
        root: &Path,
        d: &Path,
        prefix: &str,
        skip: &[&str],
        out: &mut Vec<Artifact>,
    ) -> Result<()> {
        let rd = std::fs::read_dir(d).map_err(|source| TrackError::Io {
            path: d.to_path_buf(),
            source,
        })?;
        let mut entries: Vec<_> = rd.flatten().map(|e| e.path()).collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned());
                if !name.is_some_and(|n| skip.contains(&n.as_str())) {
                    walk(root, &p, prefix, skip, out)?;
                }
            } else if p.is_file() {
                let rel = p
                    .strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .replace('\\', "/");
                out.push(file_artifact(&p, &format!("{prefix}/{rel}"))?);
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, prefix, skip, &mut out)?;
    Ok(out)
}

/// One file as an artifact named `name`.
pub fn file_artifact(path: &Path, name: &str) -> Result<Artifact> {
    let (md5, size) = file_md5(path)?;
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    Ok(Artifact {
        name: name.to_string(),
        path: abs.display().to_string(),
        md5,
        size,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folder_artifacts_hash_every_file_with_relative_names() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("model.json"), "abc").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/w.bin"), "").unwrap();
        std::fs::create_dir(dir.path().join("checkpoints")).unwrap();
        std::fs::write(dir.path().join("checkpoints/e1.bin"), "x").unwrap();
        let a = folder_artifacts(dir.path(), "model", &["checkpoints"]).unwrap();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].name, "model/model.json");
        assert_eq!(a[0].md5, "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(a[0].size, 3);
        assert_eq!(a[1].name, "model/sub/w.bin");
        assert_eq!(a[1].md5, "d41d8cd98f00b204e9800998ecf8427e");
    }
}
