//! `taxon pipeline`: DVC's pipeline files run by taxon. `run` reproduces the stages of
//! `dvc.yaml` that changed (as `dvc repro`), `status` says which did and why (as `dvc
//! status`), `dag` draws the stage graph, `init` writes the standard text-classification
//! pipeline for the user's own data.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Serialize;
use taxon_pipeline::init::{DataLayout, standard};
use taxon_pipeline::spec::DVC_YAML;
use taxon_pipeline::{Action, Dag, Event, Pipeline, RunOptions, StageReport};

use crate::ctx::{Ctx, Outcome};
use crate::output::{print_json, table};

#[derive(Debug, Subcommand)]
pub enum PipelineCmd {
    /// Run the stages of dvc.yaml in dependency order, skipping each one whose command,
    /// dependencies (md5) and parameters are unchanged since dvc.lock recorded it (as `dvc
    /// repro`). Outputs go to the DVC cache; dvc.lock is written after each stage succeeds.
    /// A failed stage stops the run (exit 2) with its name, command and exit code.
    Run(RunArgs),
    /// Which stages are out of date and why: command, dependency, parameter or output
    /// changes (as `dvc status`). Exit 0: up to date, 1: some stage would run.
    Status(StatusArgs),
    /// The stage graph: text (default), Graphviz dot or Mermaid.
    Dag(DagArgs),
    /// Write the standard text-classification pipeline for your data: dvc.yaml (prepare,
    /// validate, train, evaluate, register and promote), params.yaml and expectations.yaml.
    Init(InitArgs),
    /// Close the loop: the labelled feedback of a prediction log becomes fresh training (and
    /// test) rows and a new data version, the pipeline runs, and the alias moves through the
    /// promotion gate (`taxon serve --alias` swaps without a restart). One at a time, with a
    /// cool-down; exit 1 when refused (cool-down, too few fresh labels). --history lists them.
    Retrain(super::retrain::RetrainArgs),
}

#[derive(Debug, Args)]
pub struct FileArg {
    /// The pipeline file.
    #[arg(long, short = 'f', value_name = "PATH", default_value = DVC_YAML)]
    file: PathBuf,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Stages to run (with the stages they depend on); default: all. `name` alone selects
    /// every item of a `foreach` stage.
    stages: Vec<String>,
    /// Run the selected stages even when nothing they read changed.
    #[arg(long)]
    force: bool,
    /// Print what would run and why; run nothing, change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Only the named stages, not the stages they depend on.
    #[arg(long, short = 's')]
    single_item: bool,
    /// Also the stages that depend on the named ones.
    #[arg(long)]
    downstream: bool,
    /// Why this run happens, given to the commands as TAXON_PIPELINE_CAUSE (the standard
    /// pipeline stores it with the registry version).
    #[arg(long)]
    cause: Option<String>,
    #[command(flatten)]
    file: FileArg,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Stages to check (with the stages they depend on); default: all.
    stages: Vec<String>,
    #[command(flatten)]
    file: FileArg,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DagFormat {
    Text,
    Dot,
    Mermaid,
}

#[derive(Debug, Args)]
pub struct DagArgs {
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: DagFormat,
    #[command(flatten)]
    file: FileArg,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Your data: a folder with one sub-folder of text files per label (a `prepare` stage
    /// splits it), or a folder holding train.jsonl and test.jsonl.
    #[arg(long, value_name = "PATH", conflicts_with_all = ["train", "test"])]
    data: Option<PathBuf>,
    /// A training file already split (JSONL, CSV/TSV or Parquet with `text` and `label`).
    #[arg(long, value_name = "FILE", requires = "test")]
    train: Option<PathBuf>,
    /// The test file that goes with --train.
    #[arg(long, value_name = "FILE", requires = "train")]
    test: Option<PathBuf>,
    /// The registry model name the pipeline registers.
    #[arg(long, default_value = taxon_registry::DEFAULT_MODEL)]
    name: String,
    /// The model type params.yaml starts with.
    #[arg(long, default_value = "linear")]
    model_type: String,
    /// Replace an existing dvc.yaml, params.yaml and expectations.yaml.
    #[arg(long)]
    force: bool,
}

pub fn run(cmd: PipelineCmd, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        PipelineCmd::Run(a) => run_stages(a, ctx),
        PipelineCmd::Status(a) => status(a, ctx),
        PipelineCmd::Dag(a) => dag(a, ctx),
        PipelineCmd::Init(a) => init(a, ctx),
        PipelineCmd::Retrain(a) => super::retrain::run(a, ctx),
    }
}

fn load(file: &Path) -> anyhow::Result<Pipeline> {
    if !file.exists() {
        bail!(
            "{}: no pipeline file here; write one with `taxon pipeline init` (or point at one with --file)",
            file.display()
        );
    }
    Ok(Pipeline::load(file)?)
}

fn reasons_text(r: &StageReport) -> String {
    r.reasons
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

fn run_stages(args: RunArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let p = load(&args.file.file)?;
    let opts = RunOptions {
        targets: args.stages,
        force: args.force,
        dry_run: args.dry_run,
        single_item: args.single_item,
        downstream: args.downstream,
        stdout_to_stderr: ctx.json,
        cause: args.cause,
        lock_held: false,
    };
    let started = std::time::Instant::now();
    let reports = taxon_pipeline::run(&p, &opts, &mut |e| match e {
        Event::Starting {
            stage,
            index,
            total,
            reasons,
        } => {
            let why: Vec<String> = reasons.iter().map(ToString::to_string).collect();
            ctx.info(format!(
                "── stage {} ({index}/{total}): {}",
                stage.name,
                why.join("; ")
            ));
            for c in &stage.cmd {
                ctx.info(format!("> {c}"));
            }
        }
        Event::Finished(r) => match r.action {
            Action::Skipped => ctx.info(format!("── stage {}: up to date, skipped", r.stage)),
            Action::Frozen => ctx.info(format!("── stage {}: frozen, not run", r.stage)),
            Action::WouldRun => ctx.info(format!(
                "── stage {} would run: {}",
                r.stage,
                reasons_text(r)
            )),
            Action::Ran => ctx.info(format!(
                "── stage {}: done in {:.1} s, recorded in dvc.lock",
                r.stage,
                r.seconds.unwrap_or(0.0)
            )),
        },
    })?;
    let ran = reports.iter().filter(|r| r.action == Action::Ran).count();
    let would = reports
        .iter()
        .filter(|r| r.action == Action::WouldRun)
        .count();
    if ctx.json {
        print_json(&serde_json::json!({
            "dry_run": args.dry_run,
            "stages": reports,
            "seconds": started.elapsed().as_secs_f64(),
        }))?;
        return Ok(Outcome::Ok);
    }
    if args.dry_run {
        println!(
            "{would} of {} stage(s) would run; nothing was run or changed",
            reports.len()
        );
    } else if ran == 0 {
        println!(
            "pipeline is up to date: {} stage(s), none changed",
            reports.len()
        );
    } else {
        println!(
            "ran {ran} of {} stage(s) in {:.1} s; dvc.lock updated",
            reports.len(),
            started.elapsed().as_secs_f64()
        );
    }
    Ok(Outcome::Ok)
}

fn status(args: StatusArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let p = load(&args.file.file)?;
    let reports = taxon_pipeline::status(&p, &args.stages)?;
    let changed: Vec<&StageReport> = reports
        .iter()
        .filter(|r| r.action == Action::WouldRun)
        .collect();
    if ctx.json {
        #[derive(Serialize)]
        struct View<'a> {
            up_to_date: bool,
            stages: &'a [StageReport],
        }
        print_json(&View {
            up_to_date: changed.is_empty(),
            stages: &reports,
        })?;
    } else if changed.is_empty() {
        println!("pipeline is up to date ({} stage(s))", reports.len());
    } else {
        let mut t = table(["stage", "why it would run"]);
        for r in &changed {
            for (i, why) in r.reasons.iter().enumerate() {
                let name = if i == 0 {
                    r.stage.clone()
                } else {
                    String::new()
                };
                t.add_row(vec![name, why.to_string()]);
            }
        }
        println!("{t}");
        println!(
            "{} of {} stage(s) out of date; `taxon pipeline run` brings them up to date",
            changed.len(),
            reports.len()
        );
    }
    Ok(if changed.is_empty() {
        Outcome::Ok
    } else {
        Outcome::CheckFailed
    })
}

fn dag(args: DagArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let p = load(&args.file.file)?;
    let d = Dag::build(&p)?;
    if ctx.json {
        let stages: Vec<serde_json::Value> = d
            .order
            .iter()
            .map(|&i| {
                let s = &p.stages[i];
                serde_json::json!({
                    "stage": s.name,
                    "after": taxon_pipeline::dag::names(&p, &d.parents[i]),
                    "cmd": s.cmd,
                    "deps": s.deps,
                    "outs": s.outs.iter().map(|o| &o.path).collect::<Vec<_>>(),
                    "desc": s.desc,
                })
            })
            .collect();
        print_json(&stages)?;
        return Ok(Outcome::Ok);
    }
    match args.format {
        DagFormat::Text => print!("{}", d.to_text(&p)),
        DagFormat::Dot => print!("{}", d.to_dot(&p)),
        DagFormat::Mermaid => print!("{}", d.to_mermaid(&p)),
    }
    Ok(Outcome::Ok)
}

/// `path` as the pipeline files write it: relative to the current folder when inside it.
fn rel(path: &Path) -> anyhow::Result<String> {
    let cwd = std::env::current_dir()?;
    let abs = std::path::absolute(path)?;
    let shown = abs.strip_prefix(&cwd).unwrap_or(&abs);
    Ok(shown.to_string_lossy().into_owned())
}

fn init(args: InitArgs, ctx: &Ctx) -> anyhow::Result<Outcome> {
    let layout = match (&args.data, &args.train, &args.test) {
        (Some(d), _, _) => {
            if !d.is_dir() {
                bail!(
                    "--data {}: not a folder (give a folder of label folders, a folder with train.jsonl and test.jsonl, or --train and --test)",
                    d.display()
                );
            }
            let (train, test) = (d.join("train.jsonl"), d.join("test.jsonl"));
            if train.is_file() && test.is_file() {
                DataLayout::Split {
                    train: rel(&train)?,
                    test: rel(&test)?,
                }
            } else {
                DataLayout::LabelFolders { root: rel(d)? }
            }
        }
        (None, Some(train), Some(test)) => {
            for f in [train, test] {
                if !f.is_file() {
                    bail!("{}: no such file", f.display());
                }
            }
            DataLayout::Split {
                train: rel(train)?,
                test: rel(test)?,
            }
        }
        _ => bail!("say where the data is: --data PATH, or --train FILE --test FILE"),
    };
    let files = standard(&layout, &args.name, &args.model_type);
    let targets = [
        (DVC_YAML, &files.dvc_yaml),
        ("params.yaml", &files.params_yaml),
        ("expectations.yaml", &files.expectations_yaml),
    ];
    if !args.force {
        let existing: Vec<&str> = targets
            .iter()
            .map(|(n, _)| *n)
            .filter(|n| Path::new(n).exists())
            .collect();
        if !existing.is_empty() {
            bail!(
                "{} already exist(s) here; nothing was written (--force replaces them)",
                existing.join(", ")
            );
        }
    }
    let (_, created) = taxon_version::Repo::init(Path::new("."))?;
    if created {
        ctx.info("made this folder a DVC-compatible repository (.dvc/, as `dvc init --no-scm`)");
    }
    for (name, text) in targets {
        std::fs::write(name, text).with_context(|| format!("writing {name}"))?;
    }
    let p = Pipeline::load(Path::new(DVC_YAML))?;
    let d = Dag::build(&p)?;
    if ctx.json {
        print_json(&serde_json::json!({
            "written": targets.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            "stages": taxon_pipeline::dag::names(&p, &d.order),
        }))?;
        return Ok(Outcome::Ok);
    }
    println!("wrote dvc.yaml, params.yaml and expectations.yaml; the stages:");
    print!("{}", d.to_text(&p));
    println!(
        "next: `taxon pipeline run` (or `dvc repro`); change params.yaml and run again to re-run only what it affects"
    );
    Ok(Outcome::Ok)
}
