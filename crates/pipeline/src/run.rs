//! Running a pipeline as `dvc repro` does: the selected stages in dependency order, each
//! skipped when nothing it reads changed, else its outputs removed (unless `persist`), its
//! commands run by `sh -c` in its `wdir`, its outputs checked and stored in the DVC cache,
//! and its record written to `dvc.lock` (atomically, only after it succeeded). One run at a
//! time per repository, under a lock the operating system releases if the process dies.

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use taxon_version::Repo;
use taxon_version::cache::Cache;
use taxon_version::dvcfile::ensure_gitignored;
use taxon_version::workspace::state_for;

use crate::dag::Dag;
use crate::error::{IoContext, PipelineError, Result};
use crate::lock::{DVC_LOCK, LockFile};
use crate::lockfile::FileLock;
use crate::params::ParamsFiles;
use crate::spec::{Pipeline, Stage};
use crate::status::{Checker, Reason};

/// Which stages, and how.
#[derive(Clone, Debug, Default)]
pub struct RunOptions {
    /// Stage names; empty means every stage.
    pub targets: Vec<String>,
    /// Run the targets even when up to date (and everything upstream of them, unless
    /// `single_item`).
    pub force: bool,
    /// Say what would run and why; run nothing, write nothing.
    pub dry_run: bool,
    /// Only the targets, not the stages they depend on.
    pub single_item: bool,
    /// Also the stages downstream of the targets.
    pub downstream: bool,
    /// Send the commands' standard output to our standard error (for `--json`).
    pub stdout_to_stderr: bool,
    /// Why this run happens, given to the commands as `TAXON_PIPELINE_CAUSE` (the standard
    /// pipeline stores it with the registry version); default `taxon pipeline run`.
    pub cause: Option<String>,
    /// The caller already holds the repository's [`RunLock`] (a retraining takes it before it
    /// touches the data, so no other run can slip in between).
    pub lock_held: bool,
}

/// What happened to one stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Up to date: nothing it reads changed.
    Skipped,
    /// `frozen: true`: never run by the pipeline.
    Frozen,
    /// `--dry-run`: it would run.
    WouldRun,
    Ran,
}

/// One stage's outcome.
#[derive(Clone, Debug, serde::Serialize)]
pub struct StageReport {
    pub stage: String,
    pub action: Action,
    pub reasons: Vec<Reason>,
    /// Wall time of its commands (and hashing), when it ran.
    pub seconds: Option<f64>,
}

/// Progress, as it happens.
#[derive(Debug)]
pub enum Event<'a> {
    /// A stage is about to run: its position among the selected stages, its commands.
    Starting {
        stage: &'a Stage,
        index: usize,
        total: usize,
        reasons: &'a [Reason],
    },
    Finished(&'a StageReport),
}

/// The stages `opts` selects, in run order.
pub fn select(p: &Pipeline, dag: &Dag, opts: &RunOptions) -> Result<Vec<usize>> {
    if opts.targets.is_empty() {
        return Ok(dag.order.clone());
    }
    let mut idx = Vec::new();
    for t in &opts.targets {
        // A `foreach` name without `@item` means all of its items, as in DVC.
        let matched: Vec<usize> = p
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == *t || s.name.split_once('@').is_some_and(|(g, _)| g == t))
            .map(|(i, _)| i)
            .collect();
        if matched.is_empty() {
            return Err(PipelineError::UnknownStage(t.clone(), p.path.clone()));
        }
        idx.extend(matched);
    }
    let mut set: std::collections::BTreeSet<usize> = if opts.single_item {
        idx.iter().copied().collect()
    } else {
        dag.upstream_of(&idx)
    };
    if opts.downstream {
        set.extend(dag.downstream_of(&idx));
    }
    Ok(dag
        .order
        .iter()
        .copied()
        .filter(|i| set.contains(i))
        .collect())
}

/// Holds the repository's pipeline lock while alive.
pub struct RunLock {
    lock: FileLock,
}

impl RunLock {
    /// Takes `.taxon/pipeline.lock`, or fails at once when another run holds it.
    pub fn acquire(repo: &Repo) -> Result<Self> {
        let lock = FileLock::try_acquire(&repo.taxon_dir().join("pipeline.lock"))?;
        // Who holds it, for a person who looks (the lock itself is the kernel's).
        let _ = fs::write(&lock.path, format!("{}\n", std::process::id()));
        Ok(Self { lock })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.lock.path
    }
}

/// Runs the pipeline. Stops at the first stage that fails, with its name, command and exit
/// code; the stages that ran before it keep their records.
pub fn run(
    p: &Pipeline,
    opts: &RunOptions,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Vec<StageReport>> {
    let repo = Repo::discover(&p.dir)?;
    let dag = Dag::build(p)?;
    let selected = select(p, &dag, opts)?;
    let _lock = if opts.dry_run || opts.lock_held {
        None
    } else {
        Some(RunLock::acquire(&repo)?)
    };
    let cache = Cache::new(&repo);
    let state = state_for(&repo);
    let lock_path = p.dir.join(DVC_LOCK);
    let mut lock = LockFile::load(&lock_path)?;
    let mut params = ParamsFiles::default();
    let mut reports: Vec<StageReport> = Vec::new();
    let mut will_run = std::collections::BTreeSet::new();
    let total = selected.len();
    for (n, &i) in selected.iter().enumerate() {
        let stage = &p.stages[i];
        if stage.frozen {
            let r = StageReport {
                stage: stage.name.clone(),
                action: Action::Frozen,
                reasons: Vec::new(),
                seconds: None,
            };
            on_event(Event::Finished(&r));
            reports.push(r);
            continue;
        }
        let mut checker = Checker {
            cache: &cache,
            state: &state,
            params: &mut params,
        };
        let mut reasons = checker.reasons(stage, lock.get(&stage.name))?;
        if opts.force {
            reasons.insert(0, Reason::Forced);
        }
        if opts.dry_run {
            for &j in &dag.parents[i] {
                if will_run.contains(&j) {
                    reasons.push(Reason::Upstream {
                        stage: p.stages[j].name.clone(),
                    });
                }
            }
        }
        if reasons.is_empty() {
            let r = StageReport {
                stage: stage.name.clone(),
                action: Action::Skipped,
                reasons,
                seconds: None,
            };
            on_event(Event::Finished(&r));
            reports.push(r);
            continue;
        }
        will_run.insert(i);
        if opts.dry_run {
            let r = StageReport {
                stage: stage.name.clone(),
                action: Action::WouldRun,
                reasons,
                seconds: None,
            };
            on_event(Event::Finished(&r));
            reports.push(r);
            continue;
        }
        on_event(Event::Starting {
            stage,
            index: n + 1,
            total,
            reasons: &reasons,
        });
        let started = Instant::now();
        for d in &stage.deps {
            if fs::symlink_metadata(stage.abs(d)).is_err() {
                return Err(PipelineError::MissingDependency {
                    stage: stage.name.clone(),
                    path: d.clone(),
                });
            }
        }
        // Parameters are read before the commands run: a missing one fails the stage early.
        checker.param_values(stage)?;
        remove_outputs(stage)?;
        fs::create_dir_all(&stage.wdir).at(&stage.wdir)?;
        for cmd in &stage.cmd {
            execute(&repo, stage, cmd, opts)?;
        }
        for o in &stage.outs {
            if fs::symlink_metadata(stage.abs(&o.path)).is_err() {
                return Err(PipelineError::MissingOutput {
                    stage: stage.name.clone(),
                    path: o.path.clone(),
                });
            }
        }
        let record = checker.record(stage)?;
        for o in stage.outs.iter().filter(|o| o.cache) {
            ensure_gitignored(&repo, &stage.abs(&o.path))?;
        }
        lock.set(&stage.name, record);
        let order: Vec<String> = p.stages.iter().map(|s| s.name.clone()).collect();
        lock.sort_by_stages(&order);
        lock.save(&lock_path)?;
        state.save()?;
        let r = StageReport {
            stage: stage.name.clone(),
            action: Action::Ran,
            reasons,
            seconds: Some(started.elapsed().as_secs_f64()),
        };
        on_event(Event::Finished(&r));
        reports.push(r);
    }
    Ok(reports)
}

/// Removes a stage's outputs before it runs, as DVC does (they are in the cache if they were
/// recorded), except `persist: true` ones. Cached files are read-only links or copies: remove,
/// never write through them.
fn remove_outputs(stage: &Stage) -> Result<()> {
    for o in stage.outs.iter().filter(|o| !o.persist) {
        let p = stage.abs(&o.path);
        match fs::symlink_metadata(&p) {
            Err(_) => {}
            Ok(m) if m.is_dir() => fs::remove_dir_all(&p).at(&p)?,
            Ok(_) => fs::remove_file(&p).at(&p)?,
        }
    }
    Ok(())
}

/// Runs one command of a stage through `sh -c` in its `wdir`, with `DVC_ROOT` and
/// `DVC_STAGE` set as DVC sets them, and the running `taxon`'s folder first on `PATH`.
fn execute(repo: &Repo, stage: &Stage, cmd: &str, opts: &RunOptions) -> Result<()> {
    let mut c = Command::new("sh");
    // `taxon` in a stage's command is this binary first: the pipeline runs with the version
    // that reads it, whatever else is on PATH.
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![dir];
        dirs.extend(std::env::split_paths(&path));
        if let Ok(joined) = std::env::join_paths(dirs) {
            c.env("PATH", joined);
        }
    }
    c.arg("-c")
        .arg(cmd)
        .current_dir(&stage.wdir)
        .env("DVC_ROOT", &repo.root)
        .env("DVC_STAGE", &stage.name)
        .env(
            "TAXON_PIPELINE_CAUSE",
            opts.cause.as_deref().unwrap_or("taxon pipeline run"),
        )
        .stdin(Stdio::null());
    if opts.stdout_to_stderr {
        c.stdout(Stdio::from(std::io::stderr()));
    }
    let status = c.status().at(Path::new("sh"))?;
    if status.success() {
        return Ok(());
    }
    use std::os::unix::process::ExitStatusExt;
    Err(PipelineError::StageFailed {
        stage: stage.name.clone(),
        cmd: cmd.to_string(),
        code: status.code(),
        signal: status.signal(),
    })
}

/// Each selected stage and why it is out of date (`taxon pipeline status`, as `dvc status`
/// does: a stage's own changes, not those of the stages before it). Reads only.
pub fn status(p: &Pipeline, targets: &[String]) -> Result<Vec<StageReport>> {
    let mut reports = run(
        p,
        &RunOptions {
            targets: targets.to_vec(),
            dry_run: true,
            ..RunOptions::default()
        },
        &mut |_| {},
    )?;
    for r in &mut reports {
        r.reasons
            .retain(|why| !matches!(why, Reason::Upstream { .. }));
        if r.action == Action::WouldRun && r.reasons.is_empty() {
            r.action = Action::Skipped;
        }
    }
    Ok(reports)
}
