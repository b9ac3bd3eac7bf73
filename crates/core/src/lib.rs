//! Shared types of taxon: the ids, records and artifacts that one stage hands the next.
//!
//! Every stage crate depends on this one and on nothing upstream of it but this one, so the
//! types here stay small, serde-friendly and free of I/O.

pub mod hash;
pub mod model;
pub mod record;
pub mod stats;
pub mod version;

pub use hash::Md5Hex;
pub use record::{Location, Record};
pub use stats::{DatasetStats, LengthQuantiles};
pub use version::VersionRecord;
