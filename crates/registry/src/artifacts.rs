//! The artifact store: model files kept by md5 in DVC's layout (`files/md5/xx/yyyy`) on a local
//! folder or an S3 bucket (MinIO, AWS; endpoint and credentials from `AWS_*` env), through
//! [`taxon_version::remote::Remote`]. The backend and its small current-thread runtime start on
//! first use, so reading the registry's metadata never needs the store or its credentials.
//!
//! The blocking calls here run the async remote on that runtime: call them from a plain
//! thread (in an async server, from `spawn_blocking`), never from inside a runtime.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use taxon_core::Md5Hex;
use taxon_version::RemoteError;
use taxon_version::config::{
    DEFAULT_MULTIPART_THRESHOLD, DEFAULT_PART_SIZE, RemoteConfig, RemoteUrl, Secret,
};
use taxon_version::hashing::Md5Hasher;
use taxon_version::remote::Remote;

use crate::error::RegistryError;

/// An artifact store addressed by URL, connected on first use.
pub struct ArtifactStore {
    url: String,
    config: RemoteConfig,
    remote: OnceLock<Remote>,
    runtime: OnceLock<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for ArtifactStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArtifactStore")
            .field("url", &self.url)
            .finish()
    }
}

impl Drop for ArtifactStore {
    fn drop(&mut self) {
        // Dropping a runtime blocks on its tasks, which panics inside an async context (a
        // server dropping its registry): let it wind down in the background instead.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// Reads `name` from the environment, treating an empty value as unset.
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The remote configuration for an artifact URL: `s3://bucket/prefix`, `file:///path` or a
/// folder path (relative paths are relative to the current folder).
pub fn remote_config(url: &str) -> Result<RemoteConfig, RegistryError> {
    let bad = |message: String| RegistryError::ArtifactUrl {
        url: url.to_string(),
        message,
    };
    let remote_url = if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(bad("no bucket (expected s3://bucket/prefix)".into()));
        }
        RemoteUrl::S3 {
            bucket: bucket.to_string(),
            prefix: prefix.trim_matches('/').to_string(),
        }
    } else {
        if let Some((scheme, _)) = url.split_once("://")
            && scheme != "file"
        {
            return Err(bad(format!(
                "scheme {scheme}:// is not supported (use a folder, file:// or s3://)"
            )));
        }
        let path = url.strip_prefix("file://").unwrap_or(url);
        if path.is_empty() {
            return Err(bad("empty path".into()));
        }
        RemoteUrl::Local(std::path::absolute(path).map_err(|e| bad(e.to_string()))?)
    };
    Ok(RemoteConfig {
        name: "registry".into(),
        url: remote_url,
        endpoint_url: env("AWS_ENDPOINT_URL"),
        region: env("AWS_DEFAULT_REGION").or_else(|| env("AWS_REGION")),
        access_key_id: env("AWS_ACCESS_KEY_ID").map(Secret::new),
        secret_access_key: env("AWS_SECRET_ACCESS_KEY").map(Secret::new),
        encrypt: false,
        key_file: None,
        jobs: None,
        multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
        part_size: DEFAULT_PART_SIZE,
    })
}

impl ArtifactStore {
    /// Checks `url` and remembers it; nothing is contacted yet.
    pub fn new(url: &str) -> Result<Self, RegistryError> {
        Ok(Self {
            url: url.to_string(),
            config: remote_config(url)?,
            remote: OnceLock::new(),
            runtime: OnceLock::new(),
        })
    }

    /// The URL the store was opened with.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn err(&self) -> impl FnOnce(RemoteError) -> RegistryError + '_ {
        |source| RegistryError::Remote {
            url: self.url.clone(),
            source: Box::new(source),
        }
    }

    fn connect(&self) -> Result<(&Remote, &tokio::runtime::Runtime), RegistryError> {
        let remote = match self.remote.get() {
            Some(r) => r,
            None => {
                let r = Remote::open(&self.config).map_err(self.err())?;
                self.remote.get_or_init(|| r)
            }
        };
        let runtime = match self.runtime.get() {
            Some(rt) => rt,
            None => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(RegistryError::Runtime)?;
                self.runtime.get_or_init(|| rt)
            }
        };
        Ok((remote, runtime))
    }

    /// Uploads each `(file, md5)` the store does not hold yet (one LIST, then one upload per
    /// missing object); returns how many were uploaded. Objects appear whole or not at all.
    pub fn upload_missing(&self, files: &[(PathBuf, Md5Hex)]) -> Result<usize, RegistryError> {
        let (remote, rt) = self.connect()?;
        rt.block_on(async {
            let existing = remote.list_existing().await.map_err(self.err())?;
            let mut uploaded = 0;
            for (path, hash) in files {
                if existing.contains(hash) {
                    continue;
                }
                remote.upload(path, hash).await.map_err(self.err())?;
                uploaded += 1;
            }
            Ok(uploaded)
        })
    }

    /// Downloads object `hash` into the new file `dest`; returns the md5 and size of what was
    /// written (the caller compares them with its record).
    pub fn download(&self, hash: &Md5Hex, dest: &Path) -> Result<(Md5Hex, u64), RegistryError> {
        let (remote, rt) = self.connect()?;
        rt.block_on(remote.download(hash, dest)).map_err(self.err())
    }
}

/// The md5 and size of a file, streamed.
pub fn md5_file(path: &Path) -> Result<(Md5Hex, u64), RegistryError> {
    let io = RegistryError::io;
    let mut f = std::fs::File::open(path).map_err(io(path))?;
    let mut h = Md5Hasher::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = f.read(&mut buf).map_err(io(path))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        h.update(&buf[..n]);
    }
    Ok((h.finish().map_err(io(path))?, size))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_ran_transfers_can_be_dropped_inside_an_async_runtime() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().to_str().unwrap()).unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"x").unwrap();
        store
            .upload_missing(&[(a, Md5Hex::of_bytes(b"x"))])
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async move { drop(store) });
    }

    #[test]
    fn urls_map_to_local_folders_and_buckets() {
        let c = remote_config("s3://models/team/registry/").unwrap();
        assert_eq!(
            c.url,
            RemoteUrl::S3 {
                bucket: "models".into(),
                prefix: "team/registry".into()
            }
        );
        let c = remote_config("file:///srv/artifacts").unwrap();
        assert_eq!(c.url, RemoteUrl::Local(PathBuf::from("/srv/artifacts")));
        let c = remote_config("rel/dir").unwrap();
        assert!(matches!(c.url, RemoteUrl::Local(p) if p.is_absolute() && p.ends_with("rel/dir")));
        for bad in ["s3://", "gs://bucket/x", ""] {
            let err = remote_config(bad).unwrap_err().to_string();
            assert!(err.contains("artifact store"), "{bad}: {err}");
        }
    }

    #[test]
    fn uploads_skip_objects_already_stored_and_downloads_report_the_content_hash() {
        let dir = tempfile::tempdir().unwrap();
        let store = ArtifactStore::new(dir.path().join("store").to_str().unwrap()).unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"weights").unwrap();
        let (h, size) = md5_file(&a).unwrap();
        assert_eq!((h.clone(), size), (Md5Hex::of_bytes(b"weights"), 7));
        let files = vec![(a.clone(), h.clone())];
        assert_eq!(store.upload_missing(&files).unwrap(), 1);
        assert_eq!(store.upload_missing(&files).unwrap(), 0);
        let out = dir.path().join("out");
        assert_eq!(store.download(&h, &out).unwrap(), (h, 7));
        assert_eq!(std::fs::read(out).unwrap(), b"weights");
    }
}
