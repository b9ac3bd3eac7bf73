//! The integration tests of the `taxon` binary, in one test binary (one link instead of one per
//! file): a module per command group, in the order of the flow, and the helpers they share in
//! [`common`].

mod common;

// data
mod data_crypto;
mod data_io;
mod data_validate;
mod data_version;
mod dvc_interop;
mod remote_local;
mod remote_s3;

// train, evaluate, predict
mod bert;
mod eval;
mod model_optimize;
mod predict;
mod train;

// monitor
mod monitor;

// track and register
mod mlflow;
mod pushgateway;
mod registry;
mod runs;

// serve
mod alerts;
mod scale_out;
mod serve;
mod ui;
mod users;

// pipelines
mod pipeline;

// deploy: the Dockerfile and Helm chart use real flags and variables
mod deploy;

// the whole flow, and the README's set-up commands
mod quickstart;
mod readme;
