//! Sortie's device agent.
//!
//! # Layout
//! - [`process`]: a job's process group, its output lines, and stopping it.

pub mod process;
