//! Push and pull: parallel transfers between the cache and a remote, on a tokio runtime.
//!
//! Push lists the remote once (one LIST instead of one HEAD per object), uploads only what is
//! missing, files first and `.dir` manifests last (as DVC does: a manifest on the remote means
//! its files are there), so a push killed half-way and run again uploads only the rest.
//!
//! Pull fetches missing manifests first, then the entries they list, each hashed as it arrives
//! and checked before it is renamed into the cache: a small object is held in memory and
//! written through a temp file in its cache folder, a large one is streamed into `.dvc/tmp`. Any failure
//! (missing, corrupt, truncated, undecryptable object) is reported before the workspace is
//! touched; only when every object is in the cache does the checkout run.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use futures::StreamExt;
use serde::Serialize;
use taxon_core::Md5Hex;

use crate::cache::{Cache, objects_for, parse_manifest};
use crate::dvcfile::{DvcFile, find_dvc_files};
use crate::error::{IoContext, RemoteError, Result, VersionError};
use crate::remote::{Downloaded, Remote};
use crate::repo::Repo;

/// Progress of a transfer, reported as objects finish (called from worker tasks).
pub trait Progress: Send + Sync {
    /// The work ahead: objects and bytes to transfer (bytes 0 when not known in advance).
    fn start(&self, _objects: u64, _bytes: u64) {}
    /// One object finished, with its size.
    fn object_done(&self, _bytes: u64) {}
}

/// A [`Progress`] that reports nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// How a transfer runs.
#[derive(Clone)]
pub struct TransferOptions {
    /// Concurrent transfers; [`default_jobs`] when 0.
    pub jobs: usize,
    pub progress: Arc<dyn Progress>,
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            jobs: 0,
            progress: Arc::new(NoProgress),
        }
    }
}

/// DVC's default: four transfers per core.
pub fn default_jobs() -> usize {
    4 * std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn effective_jobs(opts: &TransferOptions, remote: &Remote) -> usize {
    match (opts.jobs, remote.jobs) {
        (0, Some(j)) => j,
        (0, None) => default_jobs(),
        (j, _) => j,
    }
}

/// What a push did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PushSummary {
    pub remote: String,
    /// Objects uploaded by this push.
    pub uploaded: u64,
    /// Objects the remote already held.
    pub already_there: u64,
    /// Plaintext bytes uploaded.
    pub bytes: u64,
    pub seconds: f64,
}

/// What a pull did.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
pub struct PullSummary {
    pub remote: String,
    /// Objects downloaded into the cache by this pull.
    pub downloaded: u64,
    /// Objects that were already in the cache.
    pub already_cached: u64,
    /// Plaintext bytes downloaded.
    pub bytes: u64,
    pub seconds: f64,
}

/// Where the cache and a remote differ, for the objects that tracked paths need.
#[derive(Clone, Debug, Default, Serialize, PartialEq, Eq)]
pub struct RemoteStatus {
    pub remote: String,
    /// In the cache, not on the remote: a push would upload these.
    pub missing_on_remote: Vec<Md5Hex>,
    /// Needed, not in the cache: a pull would download these (when the remote has them).
    pub missing_locally: Vec<Md5Hex>,
}

impl RemoteStatus {
    /// True when a push would upload nothing and a pull would download nothing.
    pub fn in_sync(&self) -> bool {
        self.missing_on_remote.is_empty() && self.missing_locally.is_empty()
    }
}

/// Many objects that failed, summarised in one error: the count and the first few reasons.
fn failures_error<E: Into<VersionError> + std::fmt::Display>(
    op: &str,
    remote: &Remote,
    errors: Vec<E>,
) -> VersionError {
    let n = errors.len();
    if n == 1 {
        if let Some(e) = errors.into_iter().next() {
            return e.into();
        }
        return VersionError::Other(format!("{op}: failed"));
    }
    let shown: Vec<String> = errors.iter().take(5).map(ToString::to_string).collect();
    VersionError::Other(format!(
        "{op} to/from remote {:?}: {n} object(s) failed; first: {}",
        remote.name(),
        shown.join("; ")
    ))
}

/// Builds the runtime the blocking entry points use.
fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| VersionError::Other(format!("cannot start the transfer runtime: {e}")))
}

/// Blocking [`push_async`].
pub fn push(
    repo: &Repo,
    remote: &Remote,
    targets: &[PathBuf],
    opts: &TransferOptions,
) -> Result<PushSummary> {
    runtime()?.block_on(push_async(repo, remote, targets, opts))
}

/// Blocking [`pull_async`].
pub fn pull(
    repo: &Repo,
    remote: &Remote,
    targets: &[PathBuf],
    opts: &TransferOptions,
) -> Result<PullSummary> {
    runtime()?.block_on(pull_async(repo, remote, targets, opts))
}

/// Blocking [`remote_status_async`].
pub fn remote_status(repo: &Repo, remote: &Remote, targets: &[PathBuf]) -> Result<RemoteStatus> {
    runtime()?.block_on(remote_status_async(repo, remote, targets))
}

/// The objects tracked paths need that are in the cache, and those that are not.
fn local_objects(repo: &Repo, dvc_files: &[PathBuf]) -> Result<(Vec<Md5Hex>, Vec<Md5Hex>)> {
    let cache = Cache::new(repo);
    let (mut present, mut absent) = (Vec::new(), Vec::new());
    for h in objects_for(repo, dvc_files)? {
        if cache.contains(&h) {
            present.push(h);
        } else {
            absent.push(h);
        }
    }
    Ok((present, absent))
}

/// Compares the cache with the remote for `targets` (all tracked paths when empty).
pub async fn remote_status_async(
    repo: &Repo,
    remote: &Remote,
    targets: &[PathBuf],
) -> Result<RemoteStatus> {
    let dvc_files = find_dvc_files(repo, targets)?;
    let (present, absent) = local_objects(repo, &dvc_files)?;
    let on_remote = remote.list_existing().await?;
    Ok(RemoteStatus {
        remote: remote.name().to_string(),
        missing_on_remote: present
            .into_iter()
            .filter(|h| !on_remote.contains(h))
            .collect(),
        missing_locally: absent,
    })
}

/// Uploads the cached objects of `targets` (all tracked paths when empty) that the remote
/// lacks: files first, `.dir` manifests after every file has gone up.
pub async fn push_async(
    repo: &Repo,
    remote: &Remote,
    targets: &[PathBuf],
    opts: &TransferOptions,
) -> Result<PushSummary> {
    let started = Instant::now();
    let dvc_files = find_dvc_files(repo, targets)?;
    let (present, absent) = local_objects(repo, &dvc_files)?;
    if !absent.is_empty() {
        return Err(VersionError::MissingObjects {
            cache: repo.cache_dir(),
            missing: absent.iter().map(ToString::to_string).collect(),
        });
    }
    let on_remote = remote.list_existing().await?;
    let cache = Cache::new(repo);
    let (todo, there): (Vec<Md5Hex>, Vec<Md5Hex>) =
        present.into_iter().partition(|h| !on_remote.contains(h));
    let (manifests, files): (Vec<Md5Hex>, Vec<Md5Hex>) = todo.into_iter().partition(|h| h.is_dir());

    let mut total_bytes = 0u64;
    for h in files.iter().chain(&manifests) {
        let p = cache.object_path(h);
        total_bytes += std::fs::metadata(&p).map(|m| m.len()).unwrap_or(0);
    }
    opts.progress
        .start((files.len() + manifests.len()) as u64, total_bytes);
    let jobs = effective_jobs(opts, remote);

    let mut bytes = 0u64;
    let mut uploaded = 0u64;
    for batch in [files, manifests] {
        let (n, b, errors) = upload_all(remote, &cache, batch, jobs, &opts.progress).await;
        uploaded += n;
        bytes += b;
        if !errors.is_empty() {
            // Manifests are not sent when a file failed: the remote must never hold a
            // manifest whose files are not all there.
            return Err(failures_error("push", remote, errors));
        }
    }
    Ok(PushSummary {
        remote: remote.name().to_string(),
        uploaded,
        already_there: there.len() as u64,
        bytes,
        seconds: started.elapsed().as_secs_f64(),
    })
}

async fn upload_all(
    remote: &Remote,
    cache: &Cache,
    objects: Vec<Md5Hex>,
    jobs: usize,
    progress: &Arc<dyn Progress>,
) -> (u64, u64, Vec<RemoteError>) {
    let cache = cache.clone();
    for_each_object(remote, objects, jobs, progress, move |remote, h| {
        let src = cache.object_path(&h);
        async move { remote.upload(&src, &h).await }
    })
    .await
}

/// Runs `one` on every object with at most `jobs` in flight, reporting each success to
/// `progress`; returns how many succeeded, their bytes, and every error (a panicked task
/// included), so that a caller can decide before anything is committed.
async fn for_each_object<E, F, Fut>(
    remote: &Remote,
    objects: Vec<Md5Hex>,
    jobs: usize,
    progress: &Arc<dyn Progress>,
    one: F,
) -> (u64, u64, Vec<E>)
where
    E: From<RemoteError> + Send + 'static,
    F: Fn(Remote, Md5Hex) -> Fut,
    Fut: std::future::Future<Output = std::result::Result<u64, E>> + Send + 'static,
{
    let mut results = futures::stream::iter(objects)
        .map(|h| {
            let work = one(remote.clone(), h);
            let progress = progress.clone();
            tokio::spawn(async move {
                let r = work.await;
                if let Ok(b) = &r {
                    progress.object_done(*b);
                }
                r
            })
        })
        .buffer_unordered(jobs.max(1));
    let (mut n, mut bytes, mut errors) = (0, 0, Vec::new());
    while let Some(joined) = results.next().await {
        match joined {
            Ok(Ok(b)) => {
                n += 1;
                bytes += b;
            }
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(E::from(RemoteError::Task {
                remote: remote.name().to_string(),
                message: e.to_string(),
            })),
        }
    }
    (n, bytes, errors)
}

/// Downloads the objects of `targets` (all tracked paths when empty) that the cache lacks,
/// verifying each md5 before it enters the cache. Does not touch the workspace: see [`pull_async`].
pub async fn fetch_async(
    repo: &Repo,
    remote: &Remote,
    targets: &[PathBuf],
    opts: &TransferOptions,
) -> Result<(Vec<PathBuf>, PullSummary)> {
    let started = Instant::now();
    let dvc_files = find_dvc_files(repo, targets)?;
    let cache = Cache::new(repo);
    let jobs = effective_jobs(opts, remote);

    // Manifests first: without them the folder entries are not known.
    let mut manifests = BTreeSet::new();
    for f in &dvc_files {
        for out in DvcFile::load(f)?.outs {
            if out.md5.is_dir() && !cache.contains(&out.md5) {
                manifests.insert(out.md5);
            }
        }
    }
    let (mut downloaded, mut bytes, errors) = download_all(
        remote,
        &cache,
        manifests.into_iter().collect(),
        jobs,
        &opts.progress,
    )
    .await;
    if !errors.is_empty() {
        return Err(failures_error("pull", remote, errors));
    }

    let (present, absent) = local_objects(repo, &dvc_files)?;
    opts.progress.start(absent.len() as u64, 0);
    let (n, b, errors) = download_all(remote, &cache, absent, jobs, &opts.progress).await;
    downloaded += n;
    bytes += b;
    if !errors.is_empty() {
        return Err(failures_error("pull", remote, errors));
    }
    Ok((
        dvc_files,
        PullSummary {
            remote: remote.name().to_string(),
            downloaded,
            // The manifests fetched above are in `present` now; they were not cached before.
            already_cached: (present.len() as u64).saturating_sub(downloaded - n),
            bytes,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

/// [`fetch_async`], then a checkout of the pulled paths once every object is in the cache.
pub async fn pull_async(
    repo: &Repo,
    remote: &Remote,
    targets: &[PathBuf],
    opts: &TransferOptions,
) -> Result<PullSummary> {
    let (dvc_files, mut summary) = fetch_async(repo, remote, targets, opts).await?;
    let repo2 = repo.clone();
    tokio::task::spawn_blocking(move || checkout_all(&repo2, &dvc_files))
        .await
        .map_err(|e| VersionError::Other(format!("checkout task failed: {e}")))??;
    summary.seconds = summary.seconds.max(0.0);
    Ok(summary)
}

fn checkout_all(repo: &Repo, dvc_files: &[PathBuf]) -> Result<()> {
    crate::checkout::checkout(
        repo,
        dvc_files,
        &crate::checkout::CheckoutOptions::default(),
    )
    .map(|_| ())
}

async fn download_all(
    remote: &Remote,
    cache: &Cache,
    objects: Vec<Md5Hex>,
    jobs: usize,
    progress: &Arc<dyn Progress>,
) -> (u64, u64, Vec<VersionError>) {
    let cache = cache.clone();
    for_each_object(remote, objects, jobs, progress, move |remote, h| {
        let cache = cache.clone();
        async move { download_one(&remote, &cache, &h).await }
    })
    .await
}

/// Objects up to this size are downloaded into memory, then hashed, checked and written into
/// the cache in one blocking step; larger ones are streamed into `.dvc/tmp` while hashed.
const IN_MEMORY_OBJECT: u64 = 1 << 20;

/// One object: download it (into memory when small, else into `.dvc/tmp`), check its md5
/// (and that a manifest parses and is safe), then move it into the cache read-only.
async fn download_one(remote: &Remote, cache: &Cache, hash: &Md5Hex) -> Result<u64> {
    let tmp = cache.temp_path("pull")?;
    let got = remote
        .download_small_in_memory(hash, &tmp, IN_MEMORY_OBJECT)
        .await?;
    let (remote2, cache, hash) = (remote.clone(), cache.clone(), hash.clone());
    tokio::task::spawn_blocking(move || -> Result<u64> {
        match got {
            Downloaded::Bytes(bytes) => {
                let size = bytes.len() as u64;
                remote2.check(&hash, &Md5Hex::of_bytes(&bytes), size)?;
                if hash.is_dir() {
                    parse_manifest(&bytes, &cache.object_path(&hash))?;
                }
                cache.write_object(&hash, &bytes)?;
                Ok(size)
            }
            Downloaded::File { md5, size } => {
                // The stream was hashed as it was written: compare, then commit.
                let checked = remote2
                    .check(&hash, &md5, size)
                    .map_err(VersionError::from)
                    .and_then(|()| {
                        if hash.is_dir() {
                            let bytes = std::fs::read(&tmp).at(&tmp)?;
                            parse_manifest(&bytes, &tmp)?;
                        }
                        cache.commit_temp(&tmp, &hash)
                    });
                if checked.is_err() {
                    let _ = std::fs::remove_file(&tmp);
                }
                checked.map(|()| size)
            }
        }
    })
    .await
    .map_err(|e| RemoteError::Task {
        remote: remote.name().to_string(),
        message: e.to_string(),
    })?
}

/// The set of objects a remote holds (one LIST), for callers that compare many targets.
pub async fn remote_objects(remote: &Remote) -> Result<HashSet<Md5Hex>> {
    Ok(remote.list_existing().await?)
}

/// Lets `Path`-taking callers pass `&[&Path]` without building `PathBuf`s themselves.
pub fn to_targets<P: AsRef<Path>>(paths: &[P]) -> Vec<PathBuf> {
    paths.iter().map(|p| p.as_ref().to_path_buf()).collect()
}
