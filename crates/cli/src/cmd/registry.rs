//! `taxon registry register | list | show | alias | history | pull`: model versions with
//! lineage, aliases with their audit history and the promotion gate, and verified downloads,
//! over the registry in `.taxon/registry.db` and its artifact store.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::{DateTime, Local, NaiveDate, NaiveDateTime, TimeZone, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;
use taxon_registry::{
    AliasChange, AliasOptions, DEFAULT_MODEL, LATEST, ModelVersion, RegisterOptions, Registry,
    RegistryError, default_artifacts_url, default_db_path, split_ref,
};
use taxon_track::{RunStatus, RunStore};

use crate::ctx::{Ctx, Outcome};
use crate::output::{human_bytes, print_json, table};

#[derive(Debug, Subcommand)]
pub enum RegistryCmd {
    /// Register a finished training run's model folder as the next version of a model: the
    /// files are checked against the run's record, uploaded to the artifact store, then the
    /// version is written (a register killed half-way leaves no version).
    Register(RegisterArgs),
    /// Registered versions: name, version, aliases, model type, created, run, data version,
    /// headline metrics.
    List {
        /// Only this model's versions (default: every model).
        #[arg(long)]
        name: Option<String>,
    },
    /// Everything about one version: lineage (run, data, code), labels, input limits,
    /// metrics, files with md5, and the aliases pointing at it.
    Show {
        /// The model and version: NAME, NAME:3, NAME:v3 or NAME:ALIAS (default: the newest
        /// version).
        #[arg(value_name = "NAME[:VERSION|:ALIAS]", default_value = DEFAULT_MODEL)]
        reference: String,
    },
    /// Aliases (`staging`, `production`, any name): set, remove, list.
    #[command(subcommand)]
    Alias(AliasCmd),
    /// Every recorded alias change (who, when, from which version to which, forced or not);
    /// with --at, just the version the alias pointed at then.
    History(HistoryArgs),
    /// Download a version into the local cache, verifying every file's md5 against the
    /// record, and copy it to --output when given; prints the folder.
    Pull(PullArgs),
}

/// Where the model files live.
#[derive(Debug, Args)]
pub struct StoreArgs {
    /// Artifact store: a folder, file:///path or s3://bucket/prefix (S3 endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY). Default:
    /// env TAXON_REGISTRY_ARTIFACTS, else the folder .taxon/registry/artifacts.
    #[arg(long, value_name = "URL")]
    pub artifacts: Option<String>,
}

#[derive(Debug, Args)]
pub struct RegisterArgs {
    /// The training run: its id, a unique prefix, or `latest` (the newest finished train run).
    pub run: String,
    /// Model name in the registry.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub name: String,
    /// A note stored with the version.
    #[arg(long)]
    pub description: Option<String>,
    /// Register a run that already has a version under this name again.
    #[arg(long)]
    pub allow_duplicate: bool,
    #[command(flatten)]
    pub store: StoreArgs,
}

#[derive(Debug, Subcommand)]
pub enum AliasCmd {
    /// Point ALIAS at VERSION. Moving `production` to a version whose evaluation metric is
    /// worse than the current production version's is refused (exit 1) unless --force.
    Set {
        /// Lower-case name: staging, production, canary, ...
        alias: String,
        /// 3, v3, latest, or another alias (whose version is taken).
        #[arg(value_name = "VERSION")]
        target: String,
        /// Model name.
        #[arg(long, default_value = DEFAULT_MODEL)]
        name: String,
        /// Move `production` even when the promotion gate refuses (recorded in the history).
        #[arg(long)]
        force: bool,
        /// Metric the promotion gate compares (default: the first of eval.test.macro_f1,
        /// eval.test.accuracy, validation_macro_f1, validation_accuracy that both versions
        /// have; higher is better, lower for losses and calibration errors).
        #[arg(long, value_name = "KEY")]
        metric: Option<String>,
    },
    /// Remove ALIAS (recorded in the history).
    Remove {
        alias: String,
        /// Model name.
        #[arg(long, default_value = DEFAULT_MODEL)]
        name: String,
    },
    /// The aliases and the versions they point at.
    List {
        /// Only this model's aliases (default: every model).
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Model name.
    #[arg(long, default_value = DEFAULT_MODEL)]
    pub name: String,
    /// Only this alias's changes.
    #[arg(long)]
    pub alias: Option<String>,
    /// Print only the version --alias pointed at at this time: RFC 3339
    /// (2026-11-26T14:00:00Z) or local time (2026-11-26 14:00, 2026-11-26).
    #[arg(long, value_name = "TIME", requires = "alias")]
    pub at: Option<String>,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The model and version: NAME, NAME:3, NAME:v3 or NAME:ALIAS (default: the newest
    /// version).
    #[arg(value_name = "NAME[:VERSION|:ALIAS]", default_value = DEFAULT_MODEL)]
    pub reference: String,
    /// Also copy the verified folder here (a new or empty folder).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub store: StoreArgs,
}

/// A version with the aliases that point at it (list, show).
#[derive(Serialize)]
struct VersionView<'a> {
    #[serde(flatten)]
    version: &'a ModelVersion,
    aliases: Vec<String>,
}

pub fn run(cmd: RegistryCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        RegistryCmd::Register(a) => register(a, ctx),
        RegistryCmd::List { name } => list(&open(None)?, name.as_deref(), ctx),
        RegistryCmd::Show { reference } => show(&open(None)?, &reference, ctx),
        RegistryCmd::Alias(c) => alias(c, ctx),
        RegistryCmd::History(a) => history(&open(None)?, a, ctx),
        RegistryCmd::Pull(a) => pull(a, ctx),
    }
}

/// The project's registry, with the artifact store `artifacts` when given.
fn open(artifacts: Option<&str>) -> anyhow::Result<Registry> {
    let here = Path::new(".");
    let url = artifacts
        .map(str::to_string)
        .unwrap_or_else(|| default_artifacts_url(here));
    Ok(Registry::open_with(&default_db_path(here), &url)?)
}

/// Who is acting: `$TAXON_USER`, else `$USER`, else `unknown`.
fn actor() -> String {
    ["TAXON_USER", "USER"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| "unknown".into())
}

fn register(args: RegisterArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let runs = RunStore::open_default(Path::new("."))?;
    let id = if args.run == LATEST {
        runs.list(usize::MAX)?
            .into_iter()
            .find(|r| r.kind == "train" && r.status == RunStatus::Finished)
            .map(|r| r.id)
            .with_context(|| {
                format!(
                    "no finished train run in {}; train one with `taxon train`",
                    runs.path().display()
                )
            })?
    } else {
        runs.resolve(&args.run)?
    };
    let record = runs.get(&id)?;
    let mut reg = open(args.store.artifacts.as_deref())?;
    let v = reg
        .register(
            &record,
            &RegisterOptions {
                name: args.name,
                description: args.description,
                actor: actor(),
                allow_duplicate: args.allow_duplicate,
            },
        )
        .with_context(|| format!("registering run {}", short_id(&id)))?;
    if ctx.json {
        print_json(&v)?;
    } else {
        println!(
            "registered {} v{} (run {}, {} files, {})",
            v.name,
            v.version,
            short_id(&v.run_id),
            v.files.len(),
            human_bytes(v.total_bytes())
        );
    }
    Ok(Outcome::Ok)
}

fn list(reg: &Registry, name: Option<&str>, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let versions = reg.list(name)?;
    let mut aliases: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for v in &versions {
        if !aliases.contains_key(&v.name) {
            aliases.insert(v.name.clone(), reg.aliases(&v.name)?);
        }
    }
    let pointing = |v: &ModelVersion| -> Vec<String> {
        aliases
            .get(&v.name)
            .map(|m| {
                m.iter()
                    .filter(|(_, to)| **to == v.version)
                    .map(|(a, _)| a.clone())
                    .collect()
            })
            .unwrap_or_default()
    };
    if ctx.json {
        let views: Vec<VersionView> = versions
            .iter()
            .map(|v| VersionView {
                version: v,
                aliases: pointing(v),
            })
            .collect();
        print_json(&views)?;
        return Ok(Outcome::Ok);
    }
    let mut t = table([
        "name", "version", "aliases", "model", "created", "run", "data", "metrics",
    ]);
    for v in &versions {
        t.add_row(vec![
            v.name.clone(),
            format!("v{}", v.version),
            pointing(v).join(", "),
            v.model_type.clone(),
            local_time(v.created_at),
            short_id(&v.run_id),
            v.data_version
                .as_deref()
                .map_or_else(|| "-".into(), short_id),
            headline_metrics(&v.metrics),
        ]);
    }
    println!("{t}");
    if versions.is_empty() {
        ctx.info(format!(
            "no versions in {}; register a run with `taxon registry register RUN`",
            reg.db_path().display()
        ));
    }
    Ok(Outcome::Ok)
}

fn show(reg: &Registry, reference: &str, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let (name, r) = split_ref(reference);
    let v = reg.resolve(name, r)?;
    let aliases: Vec<String> = reg
        .aliases(name)?
        .into_iter()
        .filter(|(_, to)| *to == v.version)
        .map(|(a, _)| a)
        .collect();
    if ctx.json {
        print_json(&VersionView {
            version: &v,
            aliases,
        })?;
        return Ok(Outcome::Ok);
    }
    let none = || "-".to_string();
    println!("{} v{}", v.name, v.version);
    println!(
        "  aliases      {}",
        if aliases.is_empty() {
            none()
        } else {
            aliases.join(", ")
        }
    );
    println!("  run          {} ({})", v.run_id, v.run_name);
    println!("  model type   {}", v.model_type);
    println!("  labels       {}", v.labels.join(", "));
    println!(
        "  input        max_tokens {}, lowercase {}",
        v.input
            .max_tokens
            .map_or_else(|| "unbounded".into(), |n| n.to_string()),
        v.input.lowercase
    );
    println!(
        "  data         {} (version {})",
        v.data_path.as_deref().unwrap_or("-"),
        v.data_version.as_deref().unwrap_or("untracked")
    );
    println!(
        "  code         {}",
        v.code_version.clone().unwrap_or_else(none)
    );
    if let Some(d) = &v.description {
        println!("  description  {d}");
    }
    println!(
        "  created      {} by {}",
        v.created_at.to_rfc3339(),
        v.created_by
    );
    let mut t = table(["metric", "value"]);
    for (k, x) in &v.metrics {
        t.add_row(vec![k.clone(), format!("{x:.6}")]);
    }
    println!("{t}");
    let mut t = table(["file", "md5", "bytes"]);
    for f in &v.files {
        t.add_row(vec![f.name.clone(), f.md5.to_string(), f.bytes.to_string()]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}

fn alias(cmd: AliasCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let mut reg = open(None)?;
    match cmd {
        AliasCmd::Set {
            alias,
            target,
            name,
            force,
            metric,
        } => {
            let target = reg.resolve(&name, &target)?.version;
            let opts = AliasOptions {
                force,
                actor: actor(),
                metric,
            };
            match reg.set_alias(&name, &alias, target, &opts) {
                Ok(change) => print_change(&change, ctx),
                Err(RegistryError::Gate(refusal)) => {
                    let message = refusal.to_string();
                    eprintln!("{message}");
                    if ctx.json {
                        print_json(&serde_json::json!({
                            "refused": true,
                            "message": message,
                            "gate": refusal,
                        }))?;
                    }
                    Ok(Outcome::CheckFailed)
                }
                Err(e) => Err(e.into()),
            }
        }
        AliasCmd::Remove { alias, name } => {
            let change = reg.remove_alias(&name, &alias, &actor())?;
            print_change(&change, ctx)
        }
        AliasCmd::List { name } => {
            let names = match name {
                Some(n) => vec![n],
                None => reg.models()?,
            };
            let mut all: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
            for n in names {
                let a = reg.aliases(&n)?;
                all.insert(n, a);
            }
            if ctx.json {
                print_json(&all)?;
                return Ok(Outcome::Ok);
            }
            let mut t = table(["name", "alias", "version"]);
            for (n, aliases) in &all {
                for (a, v) in aliases {
                    t.add_row(vec![n.clone(), a.clone(), format!("v{v}")]);
                }
            }
            println!("{t}");
            Ok(Outcome::Ok)
        }
    }
}

fn print_change(c: &AliasChange, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if ctx.json {
        print_json(&serde_json::json!({
            "changed": !c.is_noop(),
            "change": c,
        }))?;
        return Ok(Outcome::Ok);
    }
    let v = |x: Option<u64>| x.map_or_else(|| "none".to_string(), |v| format!("v{v}"));
    if c.is_noop() {
        println!(
            "{} {} already points at {}; nothing changed",
            c.name,
            c.alias,
            v(c.to_version)
        );
    } else if c.to_version.is_none() {
        println!("removed {} {} (was {})", c.name, c.alias, v(c.from_version));
    } else {
        println!(
            "{} {}: {} -> {}",
            c.name,
            c.alias,
            v(c.from_version),
            v(c.to_version)
        );
    }
    if let Some(r) = &c.reason {
        println!("  {r}");
    }
    Ok(Outcome::Ok)
}

fn history(reg: &Registry, args: HistoryArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if let (Some(at), Some(alias)) = (&args.at, &args.alias) {
        let t = parse_time(at)?;
        let v = reg.alias_at(&args.name, alias, t)?;
        if ctx.json {
            print_json(&serde_json::json!({
                "name": args.name,
                "alias": alias,
                "at": t,
                "version": v,
            }))?;
        } else {
            println!(
                "{}",
                v.map_or_else(|| "none".to_string(), |v| format!("v{v}"))
            );
        }
        return Ok(Outcome::Ok);
    }
    let changes = reg.history(&args.name, args.alias.as_deref())?;
    if ctx.json {
        print_json(&changes)?;
        return Ok(Outcome::Ok);
    }
    let v = |x: Option<u64>| x.map_or_else(|| "-".to_string(), |v| format!("v{v}"));
    let mut t = table(["at", "alias", "from", "to", "actor", "forced", "reason"]);
    for c in &changes {
        t.add_row(vec![
            local_time(c.at),
            c.alias.clone(),
            v(c.from_version),
            v(c.to_version),
            c.actor.clone(),
            if c.forced { "yes" } else { "" }.to_string(),
            c.reason.clone().unwrap_or_default(),
        ]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}

fn pull(args: PullArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let reg = open(args.store.artifacts.as_deref())?;
    let (name, r) = split_ref(&args.reference);
    let v = reg.resolve(name, r)?;
    let cache = reg
        .materialize(&v)
        .with_context(|| format!("pulling {} v{}", v.name, v.version))?;
    let folder = match &args.output {
        Some(out) => {
            copy_version(&v, &cache, out)?;
            out.clone()
        }
        None => cache.clone(),
    };
    if ctx.json {
        print_json(&serde_json::json!({
            "name": v.name,
            "version": v.version,
            "folder": folder,
            "cache": cache,
        }))?;
    } else {
        println!("{}", folder.display());
    }
    Ok(Outcome::Ok)
}

/// Copies the verified files of `v` from `cache` into `out` (created; must be new or empty).
fn copy_version(v: &ModelVersion, cache: &Path, out: &Path) -> anyhow::Result<()> {
    if out.exists() {
        let mut entries =
            std::fs::read_dir(out).with_context(|| format!("reading {}", out.display()))?;
        anyhow::ensure!(
            entries.next().is_none(),
            "{} exists and is not empty; pull into a new or empty folder",
            out.display()
        );
    }
    for f in &v.files {
        let dest = out.join(&f.name);
        if let Some(dir) = dest.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::copy(cache.join(&f.name), &dest)
            .with_context(|| format!("copying {} to {}", f.name, dest.display()))?;
    }
    Ok(())
}

/// `2026-11-26T14:00:00Z` (RFC 3339), or a local time: `2026-11-26 14:00[:00]`,
/// `2026-11-26T14:00[:00]`, `2026-11-26` (midnight).
fn parse_time(s: &str) -> anyhow::Result<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = [
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
    ]
    .iter()
    .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
    .or_else(|| {
        NaiveDate::parse_from_str(s, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
    });
    let Some(naive) = naive else {
        anyhow::bail!(
            "--at {s:?}: not a time; use RFC 3339 (2026-11-26T14:00:00Z) or local \
             `2026-11-26 14:00`"
        );
    };
    Local
        .from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .with_context(|| format!("--at {s:?}: that local time does not exist (a clock change)"))
}

fn local_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&Local)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn short_id(id: &str) -> String {
    id.chars().take(8).collect()
}

/// The scores a list row shows: accuracy and macro-F1, validation and evaluation.
fn headline_metrics(m: &BTreeMap<String, f64>) -> String {
    m.iter()
        .filter(|(k, _)| k.ends_with("accuracy") || k.ends_with("macro_f1"))
        .map(|(k, v)| format!("{k}={v:.4}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        // As the binary builds it: `--version` propagated to every subcommand.
        let cmd = clap::Command::new("registry")
            .version("0")
            .propagate_version(true);
        <RegistryCmd as Subcommand>::augment_subcommands(cmd).debug_assert();
    }

    #[test]
    fn times_parse_as_rfc3339_or_local() {
        let t = parse_time("2026-11-26T14:00:00Z").unwrap();
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 26, 14, 0, 0).unwrap());
        let local = parse_time("2026-11-26 14:00").unwrap();
        let expected = Local
            .with_ymd_and_hms(2026, 11, 26, 14, 0, 0)
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(local, expected);
        assert_eq!(
            parse_time("2026-11-26").unwrap(),
            parse_time("2026-11-26 00:00:00").unwrap()
        );
        let err = parse_time("yesterday").unwrap_err().to_string();
        assert!(err.contains("RFC 3339"), "{err}");
    }
}
