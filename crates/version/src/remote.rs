//! One remote: an `object_store` backend (a local folder, or any S3-compatible server) plus the
//! prefix under which DVC's layout lives (`<url>/files/md5/xx/yyyy[.dir]`), and the object
//! operations push and pull are made of: one LIST for what the remote holds, streaming uploads
//! (multipart above a threshold) and streaming, hash-checked downloads. On an encrypted remote
//! each object is stored as Fernet ciphertext (one token per line, one line per chunk) at the
//! same path, and decrypted on download.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use futures::StreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload, WriteMultipart};
use taxon_core::Md5Hex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::config::{RemoteConfig, RemoteUrl};
use crate::error::RemoteError;
use crate::hashing::Md5Hasher;

/// The env variable that holds the Fernet key of encrypted remotes (unless `key_file` is set).
pub const KEY_ENV: &str = "TAXON_FERNET_KEY";
/// Plaintext bytes per Fernet token when encrypting objects.
pub const ENCRYPT_CHUNK: usize = 1024 * 1024;
/// How many parts of one multipart upload are in flight at once.
const PARTS_IN_FLIGHT: usize = 2;

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> RemoteError + '_ {
    move |source| RemoteError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// How long a partial upload in a local folder must have been left untouched before the next
/// command that opens the folder removes it (an upload in progress writes continuously).
pub const STALE_UPLOAD_AFTER: std::time::Duration = std::time::Duration::from_secs(600);

/// Removes the staging files (`<name>#<n>`, object_store's local uploads before their rename)
/// that a process killed mid-upload left under `dir`, when untouched for
/// [`STALE_UPLOAD_AFTER`]. Looks four folder levels deep (`files/md5/xx/` and the registry's
/// layout); errors are ignored. Returns how many were removed.
pub fn remove_stale_uploads(dir: &Path) -> usize {
    fn walk(dir: &Path, depth: usize, removed: &mut usize) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                if depth > 0 {
                    walk(&entry.path(), depth - 1, removed);
                }
                continue;
            }
            let name = entry.file_name();
            let staging =
                name.to_str()
                    .and_then(|n| n.rsplit_once('#'))
                    .is_some_and(|(base, n)| {
                        !base.is_empty() && !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())
                    });
            let stale = staging
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t.elapsed().unwrap_or_default() >= STALE_UPLOAD_AFTER);
            if stale && std::fs::remove_file(entry.path()).is_ok() {
                *removed += 1;
            }
        }
    }
    let mut removed = 0;
    walk(dir, 4, &mut removed);
    removed
}

/// A configured remote, ready for transfers. Cheap to clone (the backend is shared).
#[derive(Clone)]
pub struct Remote {
    name: String,
    url: String,
    store: Arc<dyn ObjectStore>,
    prefix: Option<ObjPath>,
    multipart_threshold: u64,
    part_size: usize,
    key: Option<Arc<taxon_fernet::Key>>,
    /// From config: concurrent transfers.
    pub jobs: Option<usize>,
}

impl fmt::Debug for Remote {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Remote")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("multipart_threshold", &self.multipart_threshold)
            .field("encrypted", &self.key.is_some())
            .finish()
    }
}

impl Remote {
    /// Builds the backend for `cfg`: a local folder (created if missing) or S3 (path-style
    /// requests and plain HTTP allowed for custom endpoints; region defaults to us-east-1).
    pub fn open(cfg: &RemoteConfig) -> Result<Self, RemoteError> {
        let config_err = |message: String| RemoteError::Config {
            remote: cfg.name.clone(),
            message,
        };
        let (store, prefix): (Arc<dyn ObjectStore>, String) = match &cfg.url {
            RemoteUrl::Local(dir) => {
                std::fs::create_dir_all(dir).map_err(io_at(dir))?;
                let removed = remove_stale_uploads(dir);
                if removed > 0 {
                    tracing::info!(
                        "removed {removed} partial upload(s) a killed process left in {}",
                        dir.display()
                    );
                }
                let fs = LocalFileSystem::new_with_prefix(dir).map_err(|e| {
                    config_err(format!("cannot open folder {}: {e}", dir.display()))
                })?;
                (Arc::new(fs), String::new())
            }
            RemoteUrl::S3 { bucket, prefix } => {
                let mut b = AmazonS3Builder::new()
                    .with_bucket_name(bucket)
                    .with_region(cfg.region.as_deref().unwrap_or("us-east-1"));
                match (&cfg.access_key_id, &cfg.secret_access_key) {
                    (Some(id), Some(secret)) => {
                        b = b
                            .with_access_key_id(id.expose())
                            .with_secret_access_key(secret.expose());
                    }
                    _ => {
                        return Err(config_err(
                            "no S3 credentials: set access_key_id and secret_access_key with \
                             `taxon data remote modify --local NAME KEY VALUE`, or env \
                             AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                                .into(),
                        ));
                    }
                }
                if let Some(ep) = &cfg.endpoint_url {
                    b = b
                        .with_endpoint(ep.trim_end_matches('/'))
                        .with_virtual_hosted_style_request(false)
                        .with_allow_http(ep.starts_with("http://"));
                }
                let s3 = b
                    .build()
                    .map_err(|e| config_err(format!("cannot configure S3 client: {e}")))?;
                (Arc::new(s3), prefix.clone())
            }
        };
        let key = if cfg.encrypt {
            let key = taxon_fernet::Key::from_env_or_file(KEY_ENV, cfg.key_file.as_deref())
                .map_err(|e| RemoteError::Key {
                    remote: cfg.name.clone(),
                    message: e.to_string(),
                })?;
            Some(Arc::new(key))
        } else {
            None
        };
        Ok(Self {
            name: cfg.name.clone(),
            url: cfg.url.to_string(),
            store,
            prefix: (!prefix.is_empty()).then(|| ObjPath::from(prefix.as_str())),
            multipart_threshold: cfg.multipart_threshold,
            part_size: cfg.part_size,
            key,
            jobs: cfg.jobs,
        })
    }

    /// The remote's name in the config.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The remote's URL (no credentials in it).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True when objects are stored as Fernet ciphertext.
    pub fn is_encrypted(&self) -> bool {
        self.key.is_some()
    }

    /// Files of at least this many bytes go up in parts.
    pub fn multipart_threshold(&self) -> u64 {
        self.multipart_threshold
    }

    /// The object path of `hash` on this remote.
    pub fn object_path(&self, hash: &Md5Hex) -> ObjPath {
        self.join(&hash.cache_rel_path())
    }

    fn join(&self, rel: &str) -> ObjPath {
        match &self.prefix {
            Some(p) => ObjPath::from(format!("{p}/{rel}")),
            None => ObjPath::from(rel),
        }
    }

    fn store_err(
        &self,
        op: &'static str,
        object: impl fmt::Display,
    ) -> impl FnOnce(object_store::Error) -> RemoteError {
        let remote = self.name.clone();
        let object = object.to_string();
        move |source| RemoteError::Store {
            remote,
            op,
            object,
            source,
        }
    }

    /// Every object under `files/md5/` on the remote, with one (paginated) LIST.
    pub async fn list_existing(&self) -> Result<HashSet<Md5Hex>, RemoteError> {
        let root = self.join("files/md5");
        let skip = root.parts().count();
        let mut stream = self.store.list(Some(&root));
        let mut found = HashSet::new();
        while let Some(item) = stream.next().await {
            let meta = match item {
                Ok(m) => m,
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(self.store_err("list", &root)(e)),
            };
            let parts: Vec<String> = meta
                .location
                .parts()
                .skip(skip)
                .map(|p| p.as_ref().to_string())
                .collect();
            if let [dir, file] = parts.as_slice() {
                if let Ok(h) = format!("{dir}{file}").parse::<Md5Hex>() {
                    found.insert(h);
                }
            }
        }
        Ok(found)
    }

    /// Uploads the cached file `src` as object `hash`, returning the bytes sent. A single put
    /// below the multipart threshold, a streamed multipart upload at or above it. Either way the
    /// object appears whole or not at all: a failed multipart upload is aborted.
    pub async fn upload(&self, src: &Path, hash: &Md5Hex) -> Result<u64, RemoteError> {
        match &self.key {
            None => self.upload_plain(src, hash).await,
            Some(key) => {
                let key = key.clone();
                let src_owned = src.to_path_buf();
                let remote = self.name.clone();
                let tmp = tokio::task::spawn_blocking(move || -> Result<_, RemoteError> {
                    let tmp = tempfile::NamedTempFile::new().map_err(io_at(&src_owned))?;
                    let input = std::fs::File::open(&src_owned).map_err(io_at(&src_owned))?;
                    let mut out = std::io::BufWriter::new(tmp.as_file());
                    taxon_fernet::encrypt_stream(&key, input, &mut out, ENCRYPT_CHUNK).map_err(
                        |e| RemoteError::Key {
                            remote: remote.clone(),
                            message: format!("encrypting {}: {e}", src_owned.display()),
                        },
                    )?;
                    std::io::Write::flush(&mut out).map_err(io_at(tmp.path()))?;
                    drop(out);
                    Ok(tmp)
                })
                .await
                .map_err(|e| self.task_err(e))??;
                self.upload_plain(tmp.path(), hash).await
            }
        }
    }

    fn task_err(&self, e: tokio::task::JoinError) -> RemoteError {
        RemoteError::Task {
            remote: self.name.clone(),
            message: e.to_string(),
        }
    }

    async fn upload_plain(&self, src: &Path, hash: &Md5Hex) -> Result<u64, RemoteError> {
        self.upload_plain_at(src, self.object_path(hash), hash)
            .await
    }

    /// Uploads the local file `src` as the object `key` (relative to the remote's prefix, as
    /// is, never encrypted): a single put below the multipart threshold, a streamed multipart
    /// upload at or above it. Returns the bytes sent. For files that are not DVC objects, such
    /// as the predictions of `taxon predict ... --output s3://...`.
    pub async fn upload_file(&self, src: &Path, key: &str) -> Result<u64, RemoteError> {
        self.upload_plain_at(src, self.join(key), key).await
    }

    /// Streams the object `key` (relative to the remote's prefix, stored as is) into the new
    /// file `dest`; returns the bytes written. On error `dest` is removed.
    pub async fn download_file(&self, key: &str, dest: &Path) -> Result<u64, RemoteError> {
        let result = async {
            let got = self
                .store
                .get(&self.join(key))
                .await
                .map_err(self.store_err("download", key))?;
            let mut stream = got.into_stream();
            let mut file = tokio::fs::File::create(dest).await.map_err(io_at(dest))?;
            let mut size = 0u64;
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(self.store_err("download", key))?;
                size += chunk.len() as u64;
                file.write_all(&chunk).await.map_err(io_at(dest))?;
            }
            file.flush().await.map_err(io_at(dest))?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    async fn upload_plain_at(
        &self,
        src: &Path,
        location: ObjPath,
        object: impl fmt::Display,
    ) -> Result<u64, RemoteError> {
        let object = &object;
        let size = tokio::fs::metadata(src).await.map_err(io_at(src))?.len();
        if size < self.multipart_threshold {
            let data = tokio::fs::read(src).await.map_err(io_at(src))?;
            self.store
                .put(&location, PutPayload::from(data))
                .await
                .map_err(self.store_err("upload", object))?;
            return Ok(size);
        }
        let upload = self
            .store
            .put_multipart(&location)
            .await
            .map_err(self.store_err("start multipart upload of", object))?;
        let mut writer = WriteMultipart::new_with_chunk_size(upload, self.part_size);
        let result: Result<(), RemoteError> = async {
            let mut file = tokio::fs::File::open(src).await.map_err(io_at(src))?;
            let mut buf = vec![0u8; self.part_size.min(8 * 1024 * 1024)];
            loop {
                let n = file.read(&mut buf).await.map_err(io_at(src))?;
                if n == 0 {
                    break;
                }
                writer
                    .wait_for_capacity(PARTS_IN_FLIGHT)
                    .await
                    .map_err(self.store_err("upload part of", object))?;
                writer.write(&buf[..n]);
            }
            Ok(())
        }
        .await;
        match result {
            Ok(()) => {
                writer
                    .finish()
                    .await
                    .map_err(self.store_err("complete multipart upload of", object))?;
                Ok(size)
            }
            Err(e) => {
                if let Err(abort) = writer.abort().await {
                    tracing::warn!(remote = %self.name, object = %object, "abort of multipart upload failed: {abort}");
                }
                Err(e)
            }
        }
    }

    /// Uploads bytes held in memory (a `.dir` manifest) as object `hash`.
    pub async fn upload_bytes(&self, data: Vec<u8>, hash: &Md5Hex) -> Result<u64, RemoteError> {
        let size = data.len() as u64;
        let data = match &self.key {
            None => data,
            Some(key) => {
                let mut out = Vec::new();
                taxon_fernet::encrypt_stream(key, data.as_slice(), &mut out, ENCRYPT_CHUNK)
                    .map_err(|e| RemoteError::Key {
                        remote: self.name.clone(),
                        message: format!("encrypting {hash}: {e}"),
                    })?;
                out
            }
        };
        self.store
            .put(&self.object_path(hash), PutPayload::from(data))
            .await
            .map_err(self.store_err("upload", hash))?;
        Ok(size)
    }

    /// Streams object `hash` into the new file `dest` (decrypting on an encrypted remote) and
    /// returns the md5 and size of the plaintext written. The caller checks the hash; on any
    /// error `dest` is removed.
    pub async fn download(&self, hash: &Md5Hex, dest: &Path) -> Result<(Md5Hex, u64), RemoteError> {
        let result = self.download_inner(hash, dest).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result
    }

    /// Downloads object `hash`: a plaintext object up to `in_memory_up_to` bytes is returned
    /// whole (unchecked: the caller hashes it), anything larger (or encrypted) is streamed into
    /// the new file `dest` as [`Remote::download`] does (`dest` is removed on error).
    pub async fn download_small_in_memory(
        &self,
        hash: &Md5Hex,
        dest: &Path,
        in_memory_up_to: u64,
    ) -> Result<Downloaded, RemoteError> {
        let got = self.get(hash).await?;
        if self.key.is_none() && got.meta.size <= in_memory_up_to {
            let bytes = got
                .bytes()
                .await
                .map_err(self.store_err("download", hash))?;
            return Ok(Downloaded::Bytes(bytes));
        }
        let result = self.write_download(hash, got, dest).await;
        if result.is_err() {
            let _ = tokio::fs::remove_file(dest).await;
        }
        result.map(|(md5, size)| Downloaded::File { md5, size })
    }

    /// Downloads object `hash` and checks its md5; returns the plaintext bytes (for manifests).
    pub async fn download_verified_bytes(&self, hash: &Md5Hex) -> Result<Vec<u8>, RemoteError> {
        let tmp = tempfile::NamedTempFile::new().map_err(io_at(Path::new("temporary file")))?;
        let path = tmp.path().to_path_buf();
        let (actual, size) = self.download(hash, &path).await?;
        self.check(hash, &actual, size)?;
        tokio::fs::read(&path).await.map_err(io_at(&path))
    }

    /// An error unless `actual` matches what the object is named after (`.dir` suffix aside).
    pub fn check(&self, expected: &Md5Hex, actual: &Md5Hex, size: u64) -> Result<(), RemoteError> {
        let want = expected
            .as_str()
            .strip_suffix(".dir")
            .unwrap_or(expected.as_str());
        if want == actual.as_str() {
            Ok(())
        } else {
            Err(RemoteError::HashMismatch {
                remote: self.name.clone(),
                object: expected.clone(),
                actual: actual.clone(),
                size,
            })
        }
    }

    async fn download_inner(
        &self,
        hash: &Md5Hex,
        dest: &Path,
    ) -> Result<(Md5Hex, u64), RemoteError> {
        let got = self.get(hash).await?;
        self.write_download(hash, got, dest).await
    }

    /// Starts the GET of object `hash` (a missing object is [`RemoteError::Missing`]).
    async fn get(&self, hash: &Md5Hex) -> Result<object_store::GetResult, RemoteError> {
        match self.store.get(&self.object_path(hash)).await {
            Ok(g) => Ok(g),
            Err(object_store::Error::NotFound { .. }) => Err(RemoteError::Missing {
                remote: self.name.clone(),
                object: hash.clone(),
            }),
            Err(e) => Err(self.store_err("download", hash)(e)),
        }
    }

    /// Streams a started GET into the new file `dest`, decrypting on an encrypted remote;
    /// returns the md5 and size of the plaintext written.
    async fn write_download(
        &self,
        hash: &Md5Hex,
        got: object_store::GetResult,
        dest: &Path,
    ) -> Result<(Md5Hex, u64), RemoteError> {
        let mut stream = got.into_stream();
        match &self.key {
            None => {
                let mut file = tokio::fs::File::create(dest).await.map_err(io_at(dest))?;
                let mut hasher = Md5Hasher::new();
                let mut size = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(self.store_err("download", hash))?;
                    hasher.update(&chunk);
                    size += chunk.len() as u64;
                    file.write_all(&chunk).await.map_err(io_at(dest))?;
                }
                // No fsync per object (DVC does none either): the hash is checked before the
                // rename into the cache, and 10,000 fsyncs would dominate a small-file pull.
                file.flush().await.map_err(io_at(dest))?;
                Ok((hasher.finish().map_err(io_at(dest))?, size))
            }
            Some(key) => {
                // Ciphertext to a temp file, then decrypt it into `dest` while hashing.
                let cipher = tempfile::NamedTempFile::new().map_err(io_at(dest))?;
                let mut file = tokio::fs::File::create(cipher.path())
                    .await
                    .map_err(io_at(cipher.path()))?;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(self.store_err("download", hash))?;
                    file.write_all(&chunk).await.map_err(io_at(cipher.path()))?;
                }
                file.flush().await.map_err(io_at(cipher.path()))?;
                drop(file);
                let key = key.clone();
                let dest_owned = dest.to_path_buf();
                let remote = self.name.clone();
                let object = hash.clone();
                tokio::task::spawn_blocking(move || -> Result<(Md5Hex, u64), RemoteError> {
                    let input = std::fs::File::open(cipher.path()).map_err(io_at(cipher.path()))?;
                    let out = std::fs::File::create(&dest_owned).map_err(io_at(&dest_owned))?;
                    let mut w = HashingWriter {
                        inner: std::io::BufWriter::new(out),
                        hasher: Md5Hasher::new(),
                        size: 0,
                    };
                    taxon_fernet::decrypt_stream(&key, std::io::BufReader::new(input), &mut w)
                        .map_err(|e| RemoteError::Decrypt {
                            remote,
                            object,
                            message: e.to_string(),
                        })?;
                    std::io::Write::flush(&mut w.inner).map_err(io_at(&dest_owned))?;
                    Ok((w.hasher.finish().map_err(io_at(&dest_owned))?, w.size))
                })
                .await
                .map_err(|e| self.task_err(e))?
            }
        }
    }

    /// Deletes object `hash` (tests and maintenance; push never deletes).
    pub async fn delete(&self, hash: &Md5Hex) -> Result<(), RemoteError> {
        self.store
            .delete(&self.object_path(hash))
            .await
            .map_err(self.store_err("delete", hash))
    }

    /// Overwrites object `hash` with raw bytes, bypassing encryption (tests: corruption).
    pub async fn put_raw(&self, hash: &Md5Hex, data: Vec<u8>) -> Result<(), RemoteError> {
        self.store
            .put(&self.object_path(hash), PutPayload::from(data))
            .await
            .map_err(self.store_err("upload", hash))?;
        Ok(())
    }

    /// The raw stored bytes of object `hash` (ciphertext on an encrypted remote).
    pub async fn get_raw(&self, hash: &Md5Hex) -> Result<Vec<u8>, RemoteError> {
        let got = self
            .store
            .get(&self.object_path(hash))
            .await
            .map_err(self.store_err("download", hash))?;
        Ok(got
            .bytes()
            .await
            .map_err(self.store_err("download", hash))?
            .to_vec())
    }
}

/// What [`Remote::download_small_in_memory`] got.
pub enum Downloaded {
    /// The whole plaintext of a small object, not yet hash-checked.
    Bytes(bytes::Bytes),
    /// Written to the destination file: the md5 and size of what was written.
    File { md5: Md5Hex, size: u64 },
}

/// A writer that hashes and counts what passes through it.
struct HashingWriter<W> {
    inner: W,
    hasher: Md5Hasher,
    size: u64,
}

impl<W: std::io::Write> std::io::Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::config::{DEFAULT_PART_SIZE, RemoteConfig};

    #[test]
    fn opening_a_folder_remote_removes_stale_partial_uploads_only() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = tmp.path().join("files/md5/ab");
        std::fs::create_dir_all(&folder).unwrap();
        let aged = |name: &str, age: u64| {
            let path = folder.join(name);
            std::fs::write(&path, b"partial").unwrap();
            std::fs::File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(age))
                .unwrap();
            path
        };
        let stale = aged("cdef0123#1", 3600);
        let live = aged("cdef0123#2", 0);
        let object = aged("cdef0123", 3600);
        let hashy = aged("notes#draft", 3600);
        Remote::open(&local_cfg(tmp.path(), false, None)).unwrap();
        assert!(!stale.exists(), "a killed upload's staging file is removed");
        assert!(live.exists(), "an upload in progress stays");
        assert!(object.exists() && hashy.exists(), "other files stay");
    }

    fn local_cfg(dir: &Path, encrypt: bool, key_file: Option<PathBuf>) -> RemoteConfig {
        RemoteConfig {
            name: "t".into(),
            url: RemoteUrl::Local(dir.to_path_buf()),
            endpoint_url: None,
            region: None,
            access_key_id: None,
            secret_access_key: None,
            encrypt,
            key_file,
            jobs: None,
            multipart_threshold: 1024,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    fn rt() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .unwrap()
    }

    #[test]
    fn local_round_trip_lists_and_lays_out_like_dvc() {
        let tmp = tempfile::tempdir().unwrap();
        let remote = Remote::open(&local_cfg(&tmp.path().join("r"), false, None)).unwrap();
        let small = tmp.path().join("small");
        let big = tmp.path().join("big");
        std::fs::write(&small, b"hello\n").unwrap();
        let big_data: Vec<u8> = (0..10_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(&big, &big_data).unwrap();
        let hs = Md5Hex::of_bytes(b"hello\n");
        let hb = Md5Hex::of_bytes(&big_data);
        rt().block_on(async {
            assert!(remote.list_existing().await.unwrap().is_empty());
            assert_eq!(remote.upload(&small, &hs).await.unwrap(), 6);
            // Above the 1 KiB threshold: goes up as a multipart upload.
            assert_eq!(remote.upload(&big, &hb).await.unwrap(), 40_000);
            let listed = remote.list_existing().await.unwrap();
            assert_eq!(listed, HashSet::from([hs.clone(), hb.clone()]));
            let on_disk = tmp.path().join("r").join(hb.cache_rel_path());
            assert_eq!(std::fs::read(on_disk).unwrap(), big_data);
            let dest = tmp.path().join("out");
            let (actual, size) = remote.download(&hb, &dest).await.unwrap();
            assert_eq!((actual, size), (hb.clone(), 40_000));
            let missing = Md5Hex::of_bytes(b"nope");
            let err = remote.download(&missing, &dest).await.unwrap_err();
            assert!(matches!(err, RemoteError::Missing { .. }), "{err}");
            assert!(!dest.exists(), "a failed download leaves no file");
        });
    }

    #[test]
    fn corrupt_object_is_reported_with_both_hashes() {
        let tmp = tempfile::tempdir().unwrap();
        let remote = Remote::open(&local_cfg(&tmp.path().join("r"), false, None)).unwrap();
        let h = Md5Hex::of_bytes(b"good data");
        rt().block_on(async {
            remote.put_raw(&h, b"good dat".to_vec()).await.unwrap();
            let dest = tmp.path().join("x");
            let (actual, size) = remote.download(&h, &dest).await.unwrap();
            let err = remote.check(&h, &actual, size).unwrap_err().to_string();
            assert!(
                err.contains(h.as_str()) && err.contains(actual.as_str()),
                "{err}"
            );
            assert!(err.contains("8 bytes"), "{err}");
        });
    }

    #[test]
    fn encrypted_remote_stores_ciphertext_and_refuses_a_wrong_key() {
        let tmp = tempfile::tempdir().unwrap();
        let key_file = tmp.path().join("key");
        std::fs::write(&key_file, taxon_fernet::Key::generate().to_base64()).unwrap();
        let dir = tmp.path().join("r");
        let remote = Remote::open(&local_cfg(&dir, true, Some(key_file))).unwrap();
        assert!(remote.is_encrypted());
        let plain = b"label\ttext that must not be readable on the remote\n".repeat(50);
        let src = tmp.path().join("src");
        std::fs::write(&src, &plain).unwrap();
        let h = Md5Hex::of_bytes(&plain);
        rt().block_on(async {
            remote.upload(&src, &h).await.unwrap();
            let raw = remote.get_raw(&h).await.unwrap();
            assert!(
                !raw.windows(8).any(|w| w == b"readable"),
                "plaintext on remote"
            );
            assert!(raw.starts_with(b"gAAAAA"), "not a Fernet token");
            let dest = tmp.path().join("back");
            let (actual, _) = remote.download(&h, &dest).await.unwrap();
            assert_eq!(actual, h);
            assert_eq!(std::fs::read(&dest).unwrap(), plain);

            let other_key = tmp.path().join("other");
            std::fs::write(&other_key, taxon_fernet::Key::generate().to_base64()).unwrap();
            let wrong = Remote::open(&local_cfg(&dir, true, Some(other_key))).unwrap();
            let dest2 = tmp.path().join("wrong");
            let err = wrong.download(&h, &dest2).await.unwrap_err();
            assert!(matches!(err, RemoteError::Decrypt { .. }), "{err}");
            assert!(!dest2.exists(), "nothing written with a wrong key");
        });
    }
}
