//! Shared types of taxon: the ids, records and artifacts that one stage hands the next.
//!
//! Every crate depends on this one, and this one on no other taxon crate, so the types here stay
//! small and serde-friendly. Its only I/O is a model folder's description: reading and writing
//! `model.json` and reading a file checked against it ([`model::ModelDescription`]).

pub mod hash;
pub mod model;
pub mod record;
pub mod stats;
pub mod version;

pub use hash::Md5Hex;
pub use record::{Location, Record};
pub use stats::{DatasetStats, LengthQuantiles};
pub use version::VersionRecord;
