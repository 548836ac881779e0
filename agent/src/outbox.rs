//! The outbox publisher: sends the journal's unacknowledged events, strictly in `seq` order.
//!
//! ```text
//!  journal.durable ──▶ ┌ publisher ┐ ── seal(Envelope{seq, now}) ──▶ {prefix}/nodes/{id}/evt
//!  link (Up{gen}) ───▶ └───────────┘    new generation: start again from the oldest entry
//! ```
//!
//! An event is published only after it is flushed (the journal announces durable `seq`s), and
//! stays in the journal until the coordinator's cumulative `Ack`. After every reconnect the
//! whole outbox is sent again in order, re-sealed with the same `seq` and a fresh
//! `sent_at_ms`; the coordinator drops (and acks) what it already had.

use rumqttc::QoS;
use sortie_shared::{seal, Envelope, NodeKey, Topic, TopicPrefix};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::journal::Journal;
use crate::link::LinkState;

/// How many outbox entries are read from the journal at a time.
const PAGE: usize = 64;

/// What the publisher needs.
#[derive(Debug, Clone)]
pub struct PublisherSettings {
    /// The node.
    pub node_id: u64,
    /// The node's envelope key.
    pub key: NodeKey,
    /// Private topic prefix.
    pub prefix: TopicPrefix,
}

/// Publishes the outbox until `stop`. `published` reports the highest `seq` handed to the
/// current connection (for a draining shutdown).
pub async fn run_publisher(
    settings: PublisherSettings,
    journal: Journal,
    mut link: watch::Receiver<LinkState>,
    published: watch::Sender<u64>,
    stop: CancellationToken,
) {
    let topic = Topic::NodeEvents {
        node_id: settings.node_id,
    }
    .to_string(&settings.prefix);
    let mut durable = journal.durable();
    let mut resend = journal.resend_requests();
    let mut generation = 0;
    // Highest seq sent on the current connection; None: nothing yet, start from the oldest.
    let mut sent: Option<u64> = None;
    loop {
        let state = link.borrow_and_update().clone();
        if let LinkState::Up {
            generation: g,
            client,
        } = state
        {
            if g != generation {
                generation = g;
                sent = None;
                tracing::debug!(
                    generation,
                    backlog = journal.outbox_len(),
                    "resending the outbox"
                );
            }
            'pages: loop {
                let upto = *durable.borrow_and_update();
                if sent.is_some_and(|s| s >= upto)
                    || link.has_changed().unwrap_or(true)
                    || stop.is_cancelled()
                {
                    break;
                }
                let page = match journal.outbox_after(sent, PAGE).await {
                    Ok(page) => page,
                    Err(e) => {
                        tracing::error!(error = %e, "reading the outbox");
                        break;
                    }
                };
                if page.is_empty() {
                    // Everything up to `upto` was acknowledged already.
                    sent = Some(upto);
                    break;
                }
                for (seq, event) in page {
                    if seq > upto {
                        // Inserted but not flushed yet: wait for the journal to announce it.
                        break 'pages;
                    }
                    let envelope = Envelope::new(settings.node_id, seq, crate::now_ms(), event);
                    let bytes = seal(&envelope, &topic, &settings.key);
                    if let Err(e) = client.publish(&topic, QoS::AtLeastOnce, false, bytes).await {
                        // The connection is gone; the link will announce the next one.
                        tracing::debug!(seq, error = %e, "publishing an event");
                        break 'pages;
                    }
                    sent = Some(seq);
                    published.send_replace(seq);
                }
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            changed = link.changed() => if changed.is_err() { return },
            changed = durable.changed() => if changed.is_err() { return },
            changed = resend.changed() => {
                if changed.is_err() { return }
                tracing::debug!(backlog = journal.outbox_len(), "the coordinator asked for the outbox again");
                sent = None;
            }
        }
    }
}
