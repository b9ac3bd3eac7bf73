//! Integration tests: the load generator against a small in-test HTTP server, through the
//! library API (`run`) and the `taxon-loadgen` binary.

mod cli;
mod run;
mod server;
