//! Versioning subcommands: init, add, status, checkout, versions, diff. The work is done by
//! `taxon-version` (and `taxon-dataset` for content diffs); this file parses and prints.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use taxon_core::VersionRecord;
use taxon_dataset::{Format, OnError, ReadOptions};
use taxon_version::Repo;
use taxon_version::cache::{Cache, named_files_of};
use taxon_version::checkout::CheckoutOptions;
use taxon_version::dvcfile::find_dvc_files;

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

fn discover() -> anyhow::Result<Repo> {
    Ok(Repo::discover(Path::new("."))?)
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Folder to make a repository (default: the current folder).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

pub fn init(args: InitArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let (repo, created) = Repo::init(&args.dir)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "root": repo.root,
            "created_dvc": created,
        }))?;
    } else if created {
        ctx.info(format!(
            "initialized a DVC-compatible repository in {} (.dvc/, .taxon/)",
            repo.root.display()
        ));
    } else {
        ctx.info(format!(
            "{} already holds .dvc/; kept it, .taxon/ is ready",
            repo.root.display()
        ));
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Files or folders to track.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// A note stored with the version record.
    #[arg(short, long)]
    pub message: Option<String>,
}

fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u + 1 < UNITS.len() {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub fn add(args: AddArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let repo = discover()?;
    let mut records = Vec::new();
    for path in &args.paths {
        let before = taxon_version::versions::list_versions(&repo, path)?.len();
        let total = taxon_version::workspace::data_size(path)?;
        let bar = ctx.bytes_bar(total, &format!("add {}", path.display()));
        let record =
            taxon_version::add::add_with_progress(&repo, path, args.message.as_deref(), &|n| {
                bar.inc(n)
            })
            .with_context(|| format!("adding {}", path.display()))?;
        bar.finish_and_clear();
        let after = taxon_version::versions::list_versions(&repo, path)?.len();
        let rows = record
            .stats
            .as_ref()
            .map(|s| format!(", {} rows", s.rows))
            .unwrap_or_default();
        if after == before {
            ctx.info(format!(
                "{}: unchanged, still version {}",
                record.path,
                record.id.short()
            ));
        } else {
            ctx.info(format!(
                "{}: version {} ({}, {} file(s){rows}); wrote {}.dvc",
                record.path,
                record.id.short(),
                human_bytes(record.size),
                record.nfiles,
                record.path
            ));
        }
        records.push(record);
    }
    if ctx.json {
        print_json(&records)?;
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Tracked paths or .dvc files (default: every .dvc file in the repository).
    pub targets: Vec<PathBuf>,
    /// Also compare the cache with the default remote: what a push would upload and what a
    /// pull would download (as `dvc status -c`).
    #[arg(short = 'c', long)]
    pub cloud: bool,
    /// Compare with this remote instead of the default one (implies --cloud).
    #[arg(short = 'r', long, value_name = "NAME")]
    pub remote: Option<String>,
}

#[derive(serde::Serialize)]
struct StatusWithRemote<'a, T: serde::Serialize> {
    workspace: &'a T,
    remote: &'a taxon_version::transfer::RemoteStatus,
}

pub fn status(args: StatusArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let repo = discover()?;
    let files = find_dvc_files(&repo, &args.targets)?;
    let statuses = taxon_version::status::status(&repo, &files)?;
    let remote_status = if args.cloud || args.remote.is_some() {
        let (repo, remote) = super::sync::open(args.remote.as_deref())?;
        Some(taxon_version::transfer::remote_status(
            &repo,
            &remote,
            &args.targets,
        )?)
    } else {
        None
    };
    if ctx.json {
        match &remote_status {
            Some(remote) => print_json(&StatusWithRemote {
                workspace: &statuses,
                remote,
            })?,
            None => print_json(&statuses)?,
        }
        return Ok(Outcome::Ok);
    }
    if let Some(r) = &remote_status {
        if r.in_sync() {
            println!("remote {:?}: in sync with the cache", r.remote);
        } else {
            println!(
                "remote {:?}: {} object(s) to push, {} object(s) to pull",
                r.remote,
                r.missing_on_remote.len(),
                r.missing_locally.len()
            );
        }
    }
    if statuses.is_empty() {
        println!("no tracked data (add some with `taxon data add PATH`)");
    } else {
        let mut t = table(["path", "status", "dvc file"]);
        for s in &statuses {
            t.add_row(vec![
                s.path.clone(),
                s.status.to_string(),
                s.dvc_file.clone(),
            ]);
        }
        println!("{t}");
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
#[command(disable_version_flag = true)]
pub struct CheckoutArgs {
    /// Tracked paths or .dvc files (default: every .dvc file in the repository).
    pub targets: Vec<PathBuf>,
    /// Restore this recorded version (id or unique prefix, see `taxon data versions`) and
    /// point PATH.dvc at it. Needs exactly one target.
    #[arg(long, value_name = "ID")]
    pub version: Option<String>,
}

pub fn checkout(args: CheckoutArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let repo = discover()?;
    if args.version.is_some() && args.targets.len() != 1 {
        anyhow::bail!("--version needs exactly one target (the tracked path to restore)");
    }
    let files = find_dvc_files(&repo, &args.targets)?;
    let summary = taxon_version::checkout::checkout(
        &repo,
        &files,
        &CheckoutOptions {
            version: args.version.clone(),
        },
    )?;
    if ctx.json {
        print_json(&summary)?;
    } else {
        for p in &summary.restored {
            ctx.info(format!("restored {p}"));
        }
        for p in &summary.removed {
            ctx.info(format!("removed {p} (not in this version)"));
        }
        for p in &summary.rewritten {
            ctx.info(format!("rewrote {p}"));
        }
        ctx.info(format!(
            "{} restored, {} removed, {} unchanged",
            summary.restored.len(),
            summary.removed.len(),
            summary.unchanged
        ));
    }
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
pub struct VersionsArgs {
    /// The tracked path.
    pub path: PathBuf,
}

fn labels_cell(r: &VersionRecord) -> String {
    r.stats
        .as_ref()
        .map(|s| s.label_counts.len().to_string())
        .unwrap_or_else(|| "-".into())
}

pub fn versions(args: VersionsArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let repo = discover()?;
    let list = taxon_version::versions::list_versions(&repo, &args.path)?;
    if ctx.json {
        print_json(&list)?;
        return Ok(Outcome::Ok);
    }
    if list.is_empty() {
        println!("no recorded versions of {}", args.path.display());
        return Ok(Outcome::Ok);
    }
    let current = find_dvc_files(&repo, std::slice::from_ref(&args.path))
        .ok()
        .and_then(|f| taxon_version::dvcfile::DvcFile::load(&f[0]).ok())
        .and_then(|d| d.outs.first().map(|o| o.md5.clone()));
    let mut t = table([
        "id",
        "created (UTC)",
        "size",
        "rows",
        "labels",
        "vocab",
        "dup rate",
        "message",
    ]);
    for r in &list {
        let mark = if current.as_ref() == Some(&r.id) {
            "*"
        } else {
            " "
        };
        let (rows, vocab, dup) = match &r.stats {
            Some(s) => (
                s.rows.to_string(),
                s.vocabulary_size.to_string(),
                format!("{:.2}%", s.duplicate_rate * 100.0),
            ),
            None => ("-".into(), "-".into(), "-".into()),
        };
        t.add_row(vec![
            format!("{mark}{}", r.id.short()),
            r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
            human_bytes(r.size),
            rows,
            labels_cell(r),
            vocab,
            dup,
            r.message.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    println!("* = the version PATH.dvc points at");
    Ok(Outcome::Ok)
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// The tracked path.
    pub path: PathBuf,
    /// The old side: a version id or unique prefix, or `workspace`.
    pub a: String,
    /// The new side: a version id or unique prefix, or `workspace`.
    pub b: String,
    /// Field holding the text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// Field holding the label.
    #[arg(long, default_value = "label")]
    pub label_field: String,
}

/// The readable data files of one side of a diff, sorted by relpath.
fn side_files(repo: &Repo, path: &Path, side: &str) -> anyhow::Result<Vec<(PathBuf, Format)>> {
    let abs = std::path::absolute(path)?;
    let named: Vec<(String, PathBuf)> = if side == "workspace" {
        if abs.is_dir() {
            taxon_version::hashing::walk_files(&abs)?
                .into_iter()
                .map(|f| (f.relpath, f.path))
                .collect()
        } else if abs.is_file() {
            let name = abs
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            vec![(name, abs.clone())]
        } else {
            anyhow::bail!("{}: not in the workspace", path.display());
        }
    } else {
        let record = taxon_version::versions::resolve(repo, path, side)?;
        named_files_of(&Cache::new(repo), &record.id, &abs)?
    };
    let mut files: Vec<(String, PathBuf, Format)> = named
        .into_iter()
        .filter_map(|(rel, p)| Format::from_path(Path::new(&rel)).map(|f| (rel, p, f)))
        .collect();
    files.sort_by(|a, b| a.0.cmp(&b.0));
    for (_, p, _) in &files {
        if !p.is_file() {
            anyhow::bail!(
                "{}: object of version {side} is not in the cache; run `taxon data pull` first",
                p.display()
            );
        }
    }
    if files.is_empty() {
        anyhow::bail!(
            "{} at {side} holds no data file taxon reads (jsonl, csv, tsv, parquet)",
            path.display()
        );
    }
    Ok(files.into_iter().map(|(_, p, f)| (p, f)).collect())
}

pub fn diff(args: DiffArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let repo = discover()?;
    let a = side_files(&repo, &args.path, &args.a)?;
    let b = side_files(&repo, &args.path, &args.b)?;
    let opts = ReadOptions {
        text_field: args.text_field.clone(),
        label_field: args.label_field.clone(),
        label_required: false,
        on_error: OnError::Skip,
        ..Default::default()
    };
    let d = taxon_dataset::diff::diff(&a, &b, &opts)?;
    if ctx.json {
        print_json(&d)?;
        return Ok(Outcome::Ok);
    }
    println!("{} {} -> {}", args.path.display(), args.a, args.b);
    print_value_tables(&serde_json::to_value(&d)?);
    Ok(Outcome::Ok)
}

/// Prints a serialized diff for people: scalars in one key/value table, then one table per
/// list or map (lists of objects get a column per key).
fn print_value_tables(v: &serde_json::Value) {
    use serde_json::Value;
    let Value::Object(map) = v else {
        println!("{v}");
        return;
    };
    let cell = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.fract() != 0.0)
            .map(|f| format!("{f:.4}"))
            .unwrap_or_else(|| n.to_string()),
        other => other.to_string(),
    };
    let mut scalars = table(["", "value"]);
    let mut has_scalars = false;
    for (k, v) in map {
        if !v.is_object() && !v.is_array() {
            scalars.add_row(vec![k.replace('_', " "), cell(v)]);
            has_scalars = true;
        }
    }
    if has_scalars {
        println!("{scalars}");
    }
    for (k, v) in map {
        match v {
            Value::Object(inner) if !inner.is_empty() => {
                let nested = inner.values().all(Value::is_object);
                println!("\n{}", k.replace('_', " "));
                if nested {
                    let cols: Vec<String> = inner
                        .values()
                        .flat_map(|o| o.as_object().into_iter().flat_map(|m| m.keys().cloned()))
                        .fold(Vec::new(), |mut acc, c| {
                            if !acc.contains(&c) {
                                acc.push(c);
                            }
                            acc
                        });
                    let mut t = table(std::iter::once(String::new()).chain(cols.iter().cloned()));
                    for (name, o) in inner {
                        let mut row = vec![name.clone()];
                        for c in &cols {
                            row.push(o.get(c).map(cell).unwrap_or_default());
                        }
                        t.add_row(row);
                    }
                    println!("{t}");
                } else {
                    let mut t = table(["", "value"]);
                    for (name, val) in inner {
                        t.add_row(vec![name.clone(), cell(val)]);
                    }
                    println!("{t}");
                }
            }
            Value::Array(items) if !items.is_empty() => {
                println!("\n{}", k.replace('_', " "));
                if let Some(Value::Object(first)) = items.first() {
                    let cols: Vec<String> = first.keys().cloned().collect();
                    let mut t = table(cols.clone());
                    for it in items {
                        t.add_row(
                            cols.iter()
                                .map(|c| it.get(c).map(cell).unwrap_or_default())
                                .collect::<Vec<_>>(),
                        );
                    }
                    println!("{t}");
                } else {
                    for it in items {
                        println!("  {}", cell(it));
                    }
                }
            }
            _ => {}
        }
    }
}
