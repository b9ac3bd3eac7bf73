//! A bounded HTTP load generator for the serving benchmarks: closed-loop or fixed-rate,
//! latency percentiles, status counts, the server's memory, and a tracked response field (the
//! model version during a hot swap).
//!
//! The flow: [`options`] and [`texts`] turn flags into a [`Config`]; [`run()`] drives C
//! connections ([`client`]) and records every outcome ([`record`]) while [`procfs`] watches the
//! server; the result is a [`Report`] printed as a table or JSON.

pub mod client;
pub mod error;
pub mod options;
pub mod procfs;
pub mod record;
pub mod report;
pub mod run;
pub mod texts;

pub use error::Error;
pub use options::{FieldPath, Target};
pub use report::Report;
pub use run::{Config, run};
pub use texts::Texts;
