//! The command intake: authenticates what arrives on `{prefix}/nodes/{id}/cmd` and hands each
//! command to whoever handles it.
//!
//! ```text
//!  Incoming ─▶ open (tag, topic, version) ─▶ check_node ─▶ Command? ─▶ replay guard
//!     ─▶ Dispatch/Cancel → supervisor    Ping → Pong in the outbox    Ack → prune the outbox
//!        StreamStart/StreamStop → the video point's lease
//!     ─▶ guard.accept(seq) ─▶ PUBACK
//! ```
//!
//! Anything forged, replayed, for another node, or of the wrong family is dropped with a
//! warning (and acknowledged to the broker, so it is not redelivered). The PUBACK is sent only
//! after the command is handled and durable, so a crash in between gets the command redelivered
//! by the broker; every command tolerates being handled twice (a dispatch for a known job is
//! ignored, a second cancel finds the job finished).

use sortie_shared::{open, Command, Event, NodeKey, Topic, TopicPrefix, WireError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::journal::{Journal, JournalError};
use crate::link::Incoming;
use crate::points::Points;
use crate::supervisor::Supervisor;

/// What the intake needs.
#[derive(Debug, Clone)]
pub struct CommandSettings {
    /// The node.
    pub node_id: u64,
    /// The node's envelope key.
    pub key: NodeKey,
    /// Private topic prefix.
    pub prefix: TopicPrefix,
    /// The video points, for `StreamStart`/`StreamStop`.
    pub points: Points,
}

/// Why a message was not handled.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error("{0}")]
    Wire(#[from] WireError),
    #[error("an event arrived on the command topic")]
    WrongFamily,
    #[error("handling failed: {0}")]
    Journal(#[from] JournalError),
    #[error("the job supervisor has stopped")]
    SupervisorGone,
}

/// Handles incoming commands until `stop` or until the link closes the channel.
pub async fn run_commands(
    settings: CommandSettings,
    journal: Journal,
    supervisor: Supervisor,
    mut incoming: mpsc::Receiver<Incoming>,
    stop: CancellationToken,
) {
    let topic = Topic::NodeCommands {
        node_id: settings.node_id,
    }
    .to_string(&settings.prefix);
    loop {
        let message = tokio::select! {
            _ = stop.cancelled() => return,
            message = incoming.recv() => match message {
                Some(message) => message,
                None => return,
            },
        };
        let result = handle(
            &settings,
            &topic,
            &journal,
            &supervisor,
            &message.publish.payload,
        )
        .await;
        match result {
            Ok(()) => {}
            Err(Refusal::Journal(e)) => {
                // Not acknowledged: the broker redelivers it on the next connection.
                tracing::error!(error = %e, "could not handle a command");
                continue;
            }
            Err(Refusal::SupervisorGone) => return,
            Err(Refusal::Wire(WireError::Replayed { seq, last, .. })) => {
                tracing::warn!(seq, last, "dropping a replayed or duplicate command");
            }
            Err(e) => tracing::warn!(error = %e, "dropping a message on the command topic"),
        }
        if let Err(e) = message.client.ack(&message.publish).await {
            tracing::debug!(error = %e, "acknowledging a command (the connection is gone)");
        }
    }
}

async fn handle(
    settings: &CommandSettings,
    topic: &str,
    journal: &Journal,
    supervisor: &Supervisor,
    payload: &[u8],
) -> Result<(), Refusal> {
    let envelope = open(payload, topic, &settings.key)?;
    envelope.check_node(settings.node_id)?;
    let seq = envelope.seq;
    let command = envelope
        .body
        .into_command()
        .map_err(|_| Refusal::WrongFamily)?;
    journal.check_command(seq)?;
    tracing::debug!(seq, command = command_name(&command), "command");
    match command {
        Command::Dispatch(dispatch) => supervisor
            .dispatch(dispatch)
            .await
            .ok_or(Refusal::SupervisorGone)??,
        Command::Cancel(cancel) => supervisor
            .cancel(cancel)
            .await
            .ok_or(Refusal::SupervisorGone)??,
        Command::Ping { nonce } => {
            // The coordinator pings when it saw a gap in our events (it was not subscribed
            // when they went out): send everything unacknowledged again, then the Pong.
            journal.request_resend();
            journal.append(vec![Event::Pong { nonce }]).await?;
        }
        Command::Ack { seq } => {
            let pruned = journal.ack(seq).await?;
            tracing::trace!(seq, pruned, "outbox acknowledged");
        }
        Command::StreamStart { point, lease_s } => settings.points.stream_start(&point, lease_s),
        Command::StreamStop { point } => settings.points.stream_stop(&point),
    }
    journal.accept_command(seq).await?;
    Ok(())
}

fn command_name(command: &Command) -> &'static str {
    match command {
        Command::Dispatch(_) => "dispatch",
        Command::Cancel(_) => "cancel",
        Command::Ping { .. } => "ping",
        Command::Ack { .. } => "ack",
        Command::StreamStart { .. } => "stream-start",
        Command::StreamStop { .. } => "stream-stop",
    }
}
