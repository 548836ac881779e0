//! The agent's hardware: one thread owns the hardware layer's `Hardware`, everyone else holds a
//! cloneable [`HardwareHandle`] and asks it over a bounded channel.
//!
//! ```text
//!  telemetry points ─┐                                   ┌──────── "sortie-hal" thread ────────┐
//!  safe-state steps ─┼─ HardwareHandle ── mpsc(32) ────▶ │ owns Hardware (blocking GPIO/I²C I/O)│
//!  hal.sock server ──┤   (request + oneshot reply)       │ one request at a time                │
//!  job activity ─────┘                                   └──────────────────────────────────────┘
//! ```
//!
//! Design: the hardware layer does blocking I/O (a GPIO ioctl, an I²C transfer that may stall),
//! which must never run on the async runtime's threads; and only one owner may drive a pin. So
//! the agent opens the hardware once, at start (a bad pin or a missing device refuses the start
//! with the layer's message), hands it to a thread of its own, and every user — telemetry, the
//! stop path, jobs through [`socket`] — goes through this one queue and never fights another for
//! a pin.
//!
//! - [`device`]: the [`Device`] trait in front of `sortie_hal::Hardware` (and its adapter).
//! - [`socket`]: the `<data_dir>/hal.sock` server and its line-delimited JSON protocol.
//! - [`cli`]: `sortie-agent hal set|get|status`, the socket's client.

pub mod cli;
mod device;
pub mod socket;

use std::time::Duration;

use serde_json::Value;
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::config::Reading;
pub use device::{open_hardware, Device};

/// How long an ordinary request may take before its caller gives up (an I²C bus can hang).
pub const REQUEST_LIMIT: Duration = Duration::from_secs(10);

/// Why a request to the hardware failed. The message is ready to show (the layer's whole
/// error chain).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct HardwareError(pub String);

impl From<sortie_hal::HalError> for HardwareError {
    fn from(error: sortie_hal::HalError) -> Self {
        HardwareError(error.chain())
    }
}

/// What the hardware thread can be asked.
enum Request {
    SetOutput(String, bool, oneshot::Sender<Result<(), HardwareError>>),
    Get(String, oneshot::Sender<Result<bool, HardwareError>>),
    Reading(Reading, oneshot::Sender<Result<Value, HardwareError>>),
    Status(oneshot::Sender<Value>),
    JobActive(bool),
    RunSteps(Vec<sortie_hal::Step>, oneshot::Sender<StepsOutcome>),
}

/// How a run of hardware steps went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepsOutcome {
    /// Every step succeeded.
    pub ok: bool,
    /// One line per step (what it did, or why it failed).
    pub lines: Vec<String>,
}

/// A handle on the hardware thread. Cheap to clone; the thread ends when the last handle is
/// dropped.
#[derive(Debug, Clone)]
pub struct HardwareHandle {
    requests: mpsc::Sender<Request>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::SetOutput(..) => "SetOutput",
            Request::Get(..) => "Get",
            Request::Reading(..) => "Reading",
            Request::Status(..) => "Status",
            Request::JobActive(..) => "JobActive",
            Request::RunSteps(..) => "RunSteps",
        })
    }
}

impl HardwareHandle {
    /// Moves `device` to a thread of its own ("sortie-hal") and returns the handle on it.
    pub fn spawn(device: impl Device) -> std::io::Result<HardwareHandle> {
        let (requests, inbox) = mpsc::channel(32);
        std::thread::Builder::new()
            .name("sortie-hal".into())
            .spawn(move || serve(device, inbox))?;
        Ok(HardwareHandle { requests })
    }

    /// Sets output `name` on (active) or off.
    pub async fn set_output(&self, name: &str, on: bool) -> Result<(), HardwareError> {
        self.ask(
            |reply| Request::SetOutput(name.to_owned(), on, reply),
            REQUEST_LIMIT,
        )
        .await?
    }

    /// The level of output `name` (as last set) or of input `name` (read now).
    pub async fn get(&self, name: &str) -> Result<bool, HardwareError> {
        self.ask(|reply| Request::Get(name.to_owned(), reply), REQUEST_LIMIT)
            .await?
    }

    /// A status reading, as JSON.
    pub async fn reading(&self, reading: Reading) -> Result<Value, HardwareError> {
        self.ask(|reply| Request::Reading(reading, reply), REQUEST_LIMIT)
            .await?
    }

    /// Every output and input with its level, and the status readings the hardware has.
    pub async fn status(&self) -> Result<Value, HardwareError> {
        self.ask(Request::Status, REQUEST_LIMIT).await
    }

    /// Tells the hardware whether a job runs (the simulated drone flies its route meanwhile).
    pub async fn set_job_active(&self, active: bool) {
        let _ = self.requests.send(Request::JobActive(active)).await;
    }

    /// Runs `steps` in order, for at most `limit`; returns one line per step (or why they
    /// could not run).
    pub async fn run_steps(&self, steps: &[sortie_hal::Step], limit: Duration) -> StepsOutcome {
        match self
            .ask(|reply| Request::RunSteps(steps.to_vec(), reply), limit)
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => StepsOutcome {
                ok: false,
                lines: vec![e.0],
            },
        }
    }

    async fn ask<T>(
        &self,
        request: impl FnOnce(oneshot::Sender<T>) -> Request,
        limit: Duration,
    ) -> Result<T, HardwareError> {
        let asked = async {
            let (reply, answer) = oneshot::channel();
            self.requests
                .send(request(reply))
                .await
                .map_err(|_| HardwareError("the hardware thread has stopped".into()))?;
            answer
                .await
                .map_err(|_| HardwareError("the hardware thread has stopped".into()))
        };
        tokio::time::timeout(limit, asked).await.map_err(|_| {
            HardwareError(format!(
                "the hardware did not answer within {} s",
                limit.as_secs_f64()
            ))
        })?
    }
}

/// The hardware thread: one request at a time, until every handle is gone.
fn serve(mut device: impl Device, mut inbox: mpsc::Receiver<Request>) {
    while let Some(request) = inbox.blocking_recv() {
        match request {
            Request::SetOutput(name, on, reply) => {
                let _ = reply.send(device.set_output(&name, on));
            }
            Request::Get(name, reply) => {
                let _ = reply.send(device.get(&name));
            }
            Request::Reading(reading, reply) => {
                let _ = reply.send(device.reading(reading));
            }
            Request::Status(reply) => {
                let _ = reply.send(device.status());
            }
            Request::JobActive(active) => device.set_job_active(active),
            Request::RunSteps(steps, reply) => {
                let _ = reply.send(device.run_steps(&steps));
            }
        }
    }
    tracing::debug!("hardware thread stopped");
}

/// Tells the hardware whether a job runs, from the supervisor's list of active jobs, until
/// `stop`. (The list is running first, then queued; queued jobs only wait while one runs.)
pub async fn follow_job_activity(
    hardware: HardwareHandle,
    mut active: watch::Receiver<Vec<sortie_shared::JobRef>>,
    stop: CancellationToken,
) {
    let mut was = None;
    loop {
        let now = !active.borrow_and_update().is_empty();
        if was != Some(now) {
            was = Some(now);
            hardware.set_job_active(now).await;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            changed = active.changed() => if changed.is_err() { break },
        }
    }
    if was == Some(true) {
        hardware.set_job_active(false).await;
    }
}
