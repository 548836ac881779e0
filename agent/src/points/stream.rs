//! Sealing and publishing a video point's chunks on `{prefix}/nodes/{id}/live/{point}`.
//!
//! Design: chunks take their `seq` from one counter shared by every video point of the agent,
//! apart from the journal's (they are not journaled or acknowledged). The counter starts at the
//! time in µs, so it keeps rising across restarts, and a lock is held from taking a `seq` to
//! handing the envelope to the client: the broker then sees one client's chunks in `seq` order,
//! which the coordinator's strictly increasing replay guard requires.

use std::sync::Arc;

use rumqttc::{AsyncClient, ClientError, QoS};
use sortie_shared::{
    seal, Envelope, Message, NodeKey, PointName, SeqCounter, StreamChunk, Topic, TopicPrefix,
};
use tokio::sync::Mutex;

/// Seals and publishes chunks for one agent. Cheap to clone.
#[derive(Debug, Clone)]
pub struct StreamSender {
    node_id: u64,
    key: NodeKey,
    prefix: TopicPrefix,
    seq: Arc<Mutex<SeqCounter>>,
}

impl StreamSender {
    /// A sender whose `seq` starts at the current time in µs.
    pub fn new(node_id: u64, key: NodeKey, prefix: TopicPrefix) -> Self {
        StreamSender {
            node_id,
            key,
            prefix,
            seq: Arc::new(Mutex::new(SeqCounter::resume(None, crate::now_ms()))),
        }
    }

    /// The topic of `point`'s chunks.
    pub fn topic(&self, point: &PointName) -> String {
        Topic::NodeStream {
            node_id: self.node_id,
            point: point.clone(),
        }
        .to_string(&self.prefix)
    }

    /// Seals `chunk` for `topic` and hands it to `client` (QoS 0, not retained). Waits while the
    /// client's queue is full: that is how a slow uplink pushes back on the point's tag queue.
    pub async fn send(
        &self,
        client: &AsyncClient,
        topic: &str,
        chunk: StreamChunk,
    ) -> Result<(), ClientError> {
        let mut seq = self.seq.lock().await;
        let envelope = Envelope::new(
            self.node_id,
            seq.next_seq(),
            crate::now_ms(),
            Message::Stream(chunk),
        );
        let bytes = seal(&envelope, topic, &self.key);
        client.publish(topic, QoS::AtMostOnce, false, bytes).await
    }
}
