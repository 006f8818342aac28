//! What is attached to a bench, from its rig config (labgrid's "resources"), and where a bench
//! folder keeps its files. Knows no driver and no simulator: the instruments crate binds
//! drivers to these descriptions, the `rig` binary assembles a bench from them.

pub mod bench_folder;
pub mod ranges;
pub mod rig_config;
pub mod source_file;

pub use rig_config::*;
pub use source_file::{FileError, SourceFile};
