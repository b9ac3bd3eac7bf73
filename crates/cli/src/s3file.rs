//! `s3://bucket/key` where a command takes a file: the object is fetched into, or sent from, a
//! local temporary file through `taxon_version::remote::Remote` (the same client as DVC remotes
//! and the registry's artifact store), with the endpoint, region and credentials taken from
//! the `AWS_*` environment exactly as the registry takes them (`AWS_ENDPOINT_URL`,
//! `AWS_DEFAULT_REGION` or `AWS_REGION`, `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`).

use std::path::Path;

use anyhow::Context;
use taxon_version::remote::Remote;

/// One object named by an `s3://bucket/key` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    pub bucket: String,
    pub key: String,
}

impl S3Object {
    /// `None` when `arg` is not an `s3://` URL (a local path); an error when it is one without
    /// a bucket or a key.
    pub fn parse(arg: &Path) -> Option<anyhow::Result<Self>> {
        let url = arg.to_str()?.strip_prefix("s3://")?;
        let parsed = match url.split_once('/') {
            Some((bucket, key)) if !bucket.is_empty() && !key.trim_matches('/').is_empty() => {
                Ok(Self {
                    bucket: bucket.to_string(),
                    key: key.trim_matches('/').to_string(),
                })
            }
            _ => Err(anyhow::anyhow!(
                "{}: expected s3://BUCKET/KEY (an object, not a bucket)",
                arg.display()
            )),
        };
        Some(parsed)
    }

    /// The key's last segment (`in.jsonl` of `s3://b/batch/in.jsonl`): readers pick the format
    /// from it.
    pub fn file_name(&self) -> &str {
        self.key.rsplit('/').next().unwrap_or(&self.key)
    }

    fn url(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }

    /// The remote for the bucket, and a runtime to drive it on.
    fn connect(&self) -> anyhow::Result<(Remote, tokio::runtime::Runtime)> {
        let cfg = taxon_registry::artifacts::remote_config(&format!("s3://{}", self.bucket))?;
        let remote = Remote::open(&cfg)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .context("starting the S3 client's runtime")?;
        Ok((remote, runtime))
    }

    /// Downloads the object into the new file `dest`; returns its size in bytes.
    pub fn download(&self, dest: &Path) -> anyhow::Result<u64> {
        let (remote, rt) = self.connect()?;
        rt.block_on(remote.download_file(&self.key, dest))
            .with_context(|| format!("downloading {}", self.url()))
    }

    /// Uploads the file `src` as the object (multipart when large); returns the bytes sent.
    pub fn upload(&self, src: &Path) -> anyhow::Result<u64> {
        let (remote, rt) = self.connect()?;
        rt.block_on(remote.upload_file(src, &self.key))
            .with_context(|| format!("uploading {} to {}", src.display(), self.url()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_bucket_and_key_and_leaves_local_paths_alone() {
        let o = S3Object::parse(Path::new("s3://scores/batch/2026/in.parquet"))
            .unwrap()
            .unwrap();
        assert_eq!(o.bucket, "scores");
        assert_eq!(o.key, "batch/2026/in.parquet");
        assert_eq!(o.file_name(), "in.parquet");
        assert!(S3Object::parse(Path::new("data/in.jsonl")).is_none());
        assert!(
            S3Object::parse(Path::new("s3://bucket-only"))
                .unwrap()
                .is_err()
        );
        assert!(S3Object::parse(Path::new("s3://b/")).unwrap().is_err());
        assert!(S3Object::parse(Path::new("s3:///key")).unwrap().is_err());
    }
}
