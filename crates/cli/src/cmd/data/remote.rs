//! `taxon data remote add|modify|list|remove`: remotes kept in DVC's own config files
//! (`.dvc/config`, credentials in `.dvc/config.local`), so the real `dvc` sees the same remotes.
//! taxon-only options (`encrypt`, `key_file`, `jobs`, `multipart_threshold`, `part_size`) go to
//! `.taxon/config`, because DVC refuses keys it does not know.

use std::path::Path;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Serialize;
use taxon_version::Repo;
use taxon_version::config::{
    ConfigLevel, IniDoc, is_secret_key, load_remotes, remote_section, validate_remote_name,
};

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

/// Keys DVC accepts for the remotes taxon speaks to (local folders and S3).
const DVC_KEYS: &[&str] = &[
    "url",
    "endpointurl",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "region",
    "profile",
    "credentialpath",
    "configpath",
    "use_ssl",
    "ssl_verify",
    "listobjects",
    "jobs",
    "verify",
];

/// Keys only taxon reads; stored in `.taxon/config`.
const TAXON_KEYS: &[&str] = &[
    "encrypt",
    "key_file",
    "multipart_threshold",
    "part_size",
    "taxon_jobs",
];

#[derive(Debug, Subcommand)]
pub enum RemoteCmd {
    /// Add a remote: a local folder or s3://bucket/prefix (written to .dvc/config).
    Add(AddArgs),
    /// Set (or --unset) one option of a remote. Credentials always go to .dvc/config.local;
    /// taxon-only options (encrypt, key_file, multipart_threshold, part_size, taxon_jobs) go to
    /// .taxon/config.
    Modify(ModifyArgs),
    /// List configured remotes (credentials shown as ***).
    List,
    /// Remove a remote from every config file.
    Remove(RemoveArgs),
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Make it the default remote (`[core] remote = NAME`).
    #[arg(short = 'd', long = "default")]
    default: bool,
    /// Write to .dvc/config.local (private, not committed) instead of .dvc/config.
    #[arg(long)]
    local: bool,
    /// Replace a remote of the same name.
    #[arg(short, long)]
    force: bool,
    /// Remote name.
    name: String,
    /// A folder (relative paths are relative to .dvc/, as DVC reads them) or s3://bucket/prefix.
    url: String,
}

#[derive(Debug, Args)]
pub struct ModifyArgs {
    /// Write to .dvc/config.local.
    #[arg(long)]
    local: bool,
    /// Remove the option instead of setting it.
    #[arg(short, long)]
    unset: bool,
    /// Remote name.
    name: String,
    /// Option name, e.g. endpointurl, region, access_key_id, secret_access_key, encrypt.
    key: String,
    /// New value (omit with --unset).
    value: Option<String>,
}

#[derive(Debug, Args)]
pub struct RemoveArgs {
    /// Remote name.
    name: String,
}

pub fn run(cmd: RemoteCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let repo = Repo::discover(Path::new("."))?;
    match cmd {
        RemoteCmd::Add(a) => add(&repo, a, ctx),
        RemoteCmd::Modify(a) => modify(&repo, a, ctx),
        RemoteCmd::List => list(&repo, ctx),
        RemoteCmd::Remove(a) => remove(&repo, a, ctx),
    }
}

fn load(path: &Path) -> anyhow::Result<IniDoc> {
    Ok(IniDoc::load(path)?)
}

fn add(repo: &Repo, a: AddArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    validate_remote_name(&a.name)?;
    // Check the URL parses before writing it.
    taxon_version::config::parse_url(repo, &a.url)?;
    let all = load_remotes(repo)?;
    if all.remotes.contains_key(&a.name) && !a.force {
        bail!(
            "remote {:?} already exists; use --force to replace it, or `taxon data remote modify`",
            a.name
        );
    }
    let level = if a.local {
        ConfigLevel::Local
    } else {
        ConfigLevel::Repo
    };
    let path = level.path(repo);
    let mut doc = load(&path)?;
    let section = remote_section(&a.name);
    if a.force {
        doc.remove_section(&section);
    }
    doc.set(&section, "url", &a.url);
    if a.default {
        doc.set("core", "remote", &a.name);
    }
    doc.save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    ctx.info(format!(
        "added remote {:?} -> {}{} in {}",
        a.name,
        a.url,
        if a.default { " (default)" } else { "" },
        path.display()
    ));
    if ctx.json {
        print_json(&serde_json::json!({"added": a.name, "url": a.url, "default": a.default}))?;
    }
    Ok(Outcome::Ok)
}

fn modify(repo: &Repo, a: ModifyArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let all = load_remotes(repo)?;
    if !all.remotes.contains_key(&a.name) {
        bail!(
            "remote {:?} does not exist; add it first with `taxon data remote add {} URL`",
            a.name,
            a.name
        );
    }
    let key = a.key.as_str();
    let (path, stored_key) = if TAXON_KEYS.contains(&key) {
        let k = if key == "taxon_jobs" { "jobs" } else { key };
        (repo.taxon_dir().join("config"), k)
    } else if DVC_KEYS.contains(&key) {
        let level = if a.local || is_secret_key(key) {
            ConfigLevel::Local
        } else {
            ConfigLevel::Repo
        };
        if is_secret_key(key) && !a.local {
            ctx.info(format!(
                "{key} is a credential: writing it to .dvc/config.local (not committed)"
            ));
        }
        (level.path(repo), key)
    } else {
        bail!(
            "unknown remote option {key:?}; DVC options: {}; taxon options: {}",
            DVC_KEYS.join(", "),
            TAXON_KEYS.join(", ")
        );
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let mut doc = load(&path)?;
    let section = remote_section(&a.name);
    if a.unset {
        if !doc.unset(&section, stored_key) {
            bail!(
                "remote {:?} has no option {key:?} in {}",
                a.name,
                path.display()
            );
        }
    } else {
        let Some(value) = &a.value else {
            bail!("missing VALUE for {key:?} (or pass --unset to remove it)");
        };
        doc.set(&section, stored_key, value);
    }
    doc.save(&path)
        .with_context(|| format!("writing {}", path.display()))?;
    // Check the result still resolves (e.g. a bad `jobs` value) and undo nothing silently.
    if let Err(e) = taxon_version::config::resolve_remote(repo, Some(&a.name)) {
        ctx.info(format!(
            "warning: remote {:?} does not resolve yet: {e}",
            a.name
        ));
    }
    let shown = if is_secret_key(key) {
        "***".to_string()
    } else {
        a.value.clone().unwrap_or_default()
    };
    if a.unset {
        ctx.info(format!("unset {key} of remote {:?}", a.name));
    } else {
        ctx.info(format!("set {key} = {shown} for remote {:?}", a.name));
    }
    if ctx.json {
        print_json(
            &serde_json::json!({"remote": a.name, "key": key, "value": if a.unset { None } else { Some(shown) }, "file": path}),
        )?;
    }
    Ok(Outcome::Ok)
}

#[derive(Serialize)]
struct RemoteRow {
    name: String,
    url: String,
    default: bool,
    options: std::collections::BTreeMap<String, String>,
}

fn list(repo: &Repo, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let all = load_remotes(repo)?;
    let taxon_doc = load(&repo.taxon_dir().join("config"))?;
    let rows: Vec<RemoteRow> = all
        .remotes
        .iter()
        .map(|(name, keys)| {
            let mut options: std::collections::BTreeMap<String, String> = keys
                .iter()
                .filter(|(k, _)| k.as_str() != "url")
                .map(|(k, v)| {
                    let v = if is_secret_key(k) {
                        "***".into()
                    } else {
                        v.clone()
                    };
                    (k.clone(), v)
                })
                .collect();
            if let Some(entries) = taxon_doc.section(&remote_section(name)) {
                for (k, v) in entries {
                    options.insert(format!("taxon.{k}"), v.clone());
                }
            }
            RemoteRow {
                name: name.clone(),
                url: keys.get("url").cloned().unwrap_or_default(),
                default: all.default.as_deref() == Some(name.as_str()),
                options,
            }
        })
        .collect();
    if ctx.json {
        print_json(&rows)?;
        return Ok(Outcome::Ok);
    }
    if rows.is_empty() {
        ctx.info("no remotes; add one with `taxon data remote add -d NAME URL`");
        return Ok(Outcome::Ok);
    }
    let mut t = table(["name", "url", "default", "options"]);
    for r in &rows {
        let opts: Vec<String> = r.options.iter().map(|(k, v)| format!("{k}={v}")).collect();
        t.add_row([
            r.name.clone(),
            r.url.clone(),
            if r.default {
                "yes".into()
            } else {
                String::new()
            },
            opts.join(" "),
        ]);
    }
    println!("{t}");
    Ok(Outcome::Ok)
}

fn remove(repo: &Repo, a: RemoveArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let section = remote_section(&a.name);
    let mut found = false;
    for path in [
        ConfigLevel::Repo.path(repo),
        ConfigLevel::Local.path(repo),
        repo.taxon_dir().join("config"),
    ] {
        if !path.exists() {
            continue;
        }
        let mut doc = load(&path)?;
        let mut changed = doc.remove_section(&section);
        found |= changed;
        if doc.get("core", "remote") == Some(a.name.as_str()) {
            doc.unset("core", "remote");
            changed = true;
        }
        if changed {
            doc.save(&path)
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if !found {
        bail!(
            "remote {:?} does not exist (see `taxon data remote list`)",
            a.name
        );
    }
    ctx.info(format!("removed remote {:?}", a.name));
    if ctx.json {
        print_json(&serde_json::json!({"removed": a.name}))?;
    }
    Ok(Outcome::Ok)
}
