//! One variant per stage; each stage's subcommands live in their own module.

pub mod alerts;
pub mod auth_args;
pub mod data;
pub mod eval;
pub mod listen;
pub mod model;
pub mod monitor;
pub mod pipeline;
pub mod predict;
pub mod quickstart;
pub mod registry;
pub mod retrain;
pub mod runs;
pub mod serve;
pub mod train;
pub mod ui;
pub mod users;

use clap::Subcommand;

use crate::ctx::{Ctx, Outcome};

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Versioned datasets: add, push, pull, status, checkout, versions, diff, validate,
    /// statistics, encryption.
    #[command(subcommand)]
    Data(data::DataCmd),
    /// Run the main job end to end on the BBC News benchmark (fetch, split, version,
    /// validate, statistics, train, evaluate, predict, register, serve).
    Quickstart(quickstart::QuickstartArgs),
    /// Train a model (`linear`, `lstm` or `bert`) from a YAML config and/or flags; writes
    /// model.json, weights and metrics.json to the output folder.
    Train(Box<train::TrainArgs>),
    /// Evaluate a model folder on labelled data: accuracy, macro-F1, per-class P/R/F1,
    /// confusion matrix.
    Eval(eval::EvalArgs),
    /// Operations on a trained model folder: `optimize` (int8 quantization and magnitude
    /// pruning of bert models, with size, latency and accuracy before and after).
    #[command(subcommand)]
    Model(model::ModelCmd),
    /// Recorded runs: list, show, compare (params, per-epoch metrics, artifacts, data and
    /// code versions, stage timings).
    #[command(subcommand)]
    Runs(runs::RunsCmd),
    /// Score a file (JSONL, CSV/TSV, Parquet) with a model as a stream: one JSON line per row
    /// with the label and every label's probability.
    Predict(predict::PredictArgs),
    /// The model registry: register a run's model as a version, list and show versions, move
    /// aliases (`staging`, `production`, any name) and read their history.
    #[command(subcommand)]
    Registry(registry::RegistryCmd),
    /// Serve a model folder or a registry alias over HTTP: predict, batch predict, models,
    /// health, readiness, Prometheus metrics, OpenAPI.
    Serve(Box<serve::ServeArgs>),
    /// The monitor stage: reference profiles, drift, and datasets from the prediction log
    /// (`profile`, `drift`, `export`).
    #[command(subcommand)]
    Monitor(monitor::MonitorCmd),
    /// Users of the inference server (OAuth2 password flow): add, remove, list.
    #[command(subcommand)]
    Users(users::UsersCmd),
    /// Embedded alerts of `taxon serve --alerts`: the history of fired and resolved alerts
    /// (`list`), a test notice to every channel of a config (`test`).
    #[command(subcommand)]
    Alerts(alerts::AlertsCmd),
    /// DVC pipelines (dvc.yaml, params.yaml, dvc.lock): run the stages that changed, status,
    /// the stage graph, and `init` for the standard text-classification pipeline.
    #[command(subcommand)]
    Pipeline(pipeline::PipelineCmd),
    /// A read-only web UI over the project's stores: runs and their curves, registry versions
    /// and alias history, data versions (HTML and inline SVG, no JavaScript).
    Ui(ui::UiArgs),
}

impl Command {
    /// The compute threads the command line asks the model kernels to use, if it says.
    pub fn compute_threads(&self) -> Option<usize> {
        match self {
            Command::Train(a) => a.threads,
            Command::Eval(a) => a.threads,
            Command::Predict(a) => a.threads,
            Command::Serve(a) => a.model_threads,
            Command::Model(model::ModelCmd::Optimize(a)) => usize::try_from(a.threads).ok(),
            _ => None,
        }
        .filter(|&n| n > 0)
    }
}

pub fn run(cmd: Command, ctx: &Ctx) -> anyhow::Result<Outcome> {
    match cmd {
        Command::Data(c) => data::run(c, ctx),
        Command::Quickstart(a) => quickstart::run(a, ctx),
        Command::Train(a) => train::run(*a, ctx),
        Command::Eval(a) => eval::run(a, ctx),
        Command::Model(c) => model::run(c, ctx),
        Command::Runs(c) => runs::run(c, ctx),
        Command::Predict(a) => predict::run(a, ctx),
        Command::Registry(c) => registry::run(c, ctx),
        Command::Serve(a) => serve::run(*a, ctx),
        Command::Users(c) => users::run(c, ctx),
        Command::Monitor(c) => monitor::run(c, ctx),
        Command::Alerts(c) => alerts::run(c, ctx),
        Command::Pipeline(c) => pipeline::run(c, ctx),
        Command::Ui(a) => ui::run(a, ctx),
    }
}
