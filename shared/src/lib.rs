//! The protocol both halves of Sortie speak.
//!
//! This crate is types only: it knows nothing of tokio, MQTT clients, storage or HTTP, so the
//! coordinator, the agent and the tests can all depend on it without pulling those in.
//!
//! # Layout
//! - [`job`]: the job state machine, as one enum with pure transition methods. Both the
//!   coordinator (tracking a job it dispatched) and the agent (running it) drive their state
//!   through [`job::JobState::apply`], so the two sides cannot disagree on what is legal.

pub mod job;

pub use job::{IllegalTransition, JobEvent, JobState};
