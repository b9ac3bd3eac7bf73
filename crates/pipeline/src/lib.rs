//! `taxon pipeline`: DVC's pipeline files (`dvc.yaml`, `params.yaml`, `dvc.lock`) read, run
//! and recorded as `dvc repro` does, so that `dvc status` and taxon agree on what is up to date.
//!
//! Stage outputs go to the same DVC cache as `taxon data add`; hashing and the cache come
//! from `taxon-version`.

// Modules in layers; each uses only those of the layers above it (no cycles):
//
//   error, lockfile            errors with file, line, stage and key; kernel file locks
//   params, interp             parameter files and `${...}` templating
//   spec, lock                 dvc.yaml (stages) and dvc.lock (records)
//   dag                        the stage graph: order, cycles, drawing
//   status                     why a stage must run; the record it leaves
//   run                        running the selected stages under the run lock
//   init, retrain              the standard pipeline; the retraining loop's guard rails
pub mod error;
pub mod lockfile;

pub mod interp;
pub mod params;

pub mod lock;
pub mod spec;

pub mod dag;

pub mod status;

pub mod run;

pub mod init;
pub mod retrain;

pub use dag::Dag;
pub use error::{PipelineError, Result};
pub use lock::LockFile;
pub use run::{Action, Event, RunOptions, StageReport, run, status};
pub use spec::{Pipeline, Stage};
pub use status::Reason;
