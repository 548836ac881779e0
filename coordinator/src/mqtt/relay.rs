//! The relay task: it owns the MQTT client, verifies every agent event (topic, node, key,
//! replay), applies it to the store, acknowledges it once stored, and publishes what happened
//! on the public JSON topics.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, MqttOptions, QoS};
use sortie_shared::payloads::{
    JobStatePayload, JsonPayload, NodeStatus, NodeStatusPayload, PlanRunningPayload,
};
use sortie_shared::{
    open, seal, Command, Envelope, Event, JobEvent, JobRef, JobState, NodeKey, Outcome,
    ReplayGuard, SeqCounter, Topic,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::link::{self, LinkEvent};
use super::{LiveEvent, RelayHandle, RelayRequest, RelaySettings};
use crate::model::{Job, Timestamp};
use crate::store::{JobUpdate, Store, StoreError, StoredLogLine};

/// The relay's state. Only the relay task touches it.
pub(super) struct Relay {
    pub(super) store: Store,
    pub(super) client: AsyncClient,
    pub(super) settings: RelaySettings,
    pub(super) handle: RelayHandle,
    keys: HashMap<u64, NodeKey>,
    guard: ReplayGuard,
    command_seq: SeqCounter,
    /// Nodes heard from, and when.
    pub(super) online: HashMap<u64, Instant>,
    /// When each node was last asked to resend its outbox.
    resend_asked: HashMap<u64, Instant>,
    /// Where point health reports go.
    points: Option<crate::points::Points>,
}

/// A seq this far above the last accepted one is a fresh agent journal (its first seq is the
/// time in µs), not a gap: about 16 minutes' worth of microseconds.
const FRESH_JOURNAL_JUMP: u64 = 1_000_000_000;

/// Runs the relay until `shutdown`.
pub async fn run(
    settings: RelaySettings,
    store: Store,
    handle: RelayHandle,
    mut requests: mpsc::Receiver<RelayRequest>,
    points: Option<crate::points::Points>,
    shutdown: CancellationToken,
) {
    let mut options = MqttOptions::new("sortie-coordinator", settings.host.clone(), settings.port);
    options
        .set_keep_alive(Duration::from_secs(5))
        .set_clean_session(false)
        .set_max_packet_size(2 << 20, 2 << 20)
        .set_inflight(200);
    if let Some(user) = &settings.username {
        options.set_credentials(user.clone(), settings.password.clone().unwrap_or_default());
    }
    let (client, mut eventloop) = AsyncClient::new(options, 4096);
    // Commands are small and latency-bound: do not let Nagle hold them back.
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    let (link_tx, mut link_rx) = mpsc::channel(4096);
    let link_task = tokio::spawn(link::run(eventloop, link_tx, shutdown.clone()));

    let guard = match last_accepted_event_seqs(&store) {
        Ok(guard) => guard,
        Err(e) => {
            tracing::error!(error = %e, "reading the relay's counters; the relay does not run");
            return;
        }
    };
    let now_ms = chrono::Utc::now().timestamp_millis() as u64;
    let mut relay = Relay {
        store,
        client,
        settings,
        handle,
        keys: HashMap::new(),
        guard,
        command_seq: SeqCounter::resume(None, now_ms),
        online: HashMap::new(),
        resend_asked: HashMap::new(),
        points,
    };
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => break,
            Some(request) = requests.recv() => relay.handle_request(request).await,
            Some(event) = link_rx.recv() => {
                // Take what else is already waiting, so one flush covers the batch.
                let mut batch = vec![event];
                while batch.len() < 512 {
                    match link_rx.try_recv() {
                        Ok(event) => batch.push(event),
                        Err(_) => break,
                    }
                }
                relay.handle_link_events(batch).await;
            }
            _ = tick.tick() => relay.tick().await,
        }
    }
    let _ = relay.client.disconnect().await;
    let _ = link_task.await;
}

fn last_accepted_event_seqs(store: &Store) -> Result<ReplayGuard, StoreError> {
    let mut pairs = Vec::new();
    for node in store.list_nodes()? {
        if let Some(seq) = store.relay_counter("evt_seq", node.id)? {
            pairs.push((node.id, seq));
        }
    }
    Ok(ReplayGuard::with_last_accepted(pairs))
}

impl Relay {
    async fn handle_request(&mut self, request: RelayRequest) {
        match request {
            RelayRequest::JobCreated(job) => {
                self.announce(&job, None).await;
                tracing::debug!(
                    job_id = job.id,
                    node_id = job.node_id,
                    online = self.online.contains_key(&job.node_id),
                    "job created"
                );
                if self.online.contains_key(&job.node_id) {
                    self.dispatch(job).await;
                }
            }
            RelayRequest::Cancel { job, reason } => {
                self.announce(&job, None).await;
                self.send_cancel(&job, reason).await;
            }
            RelayRequest::NodeCommand { node_id, command } => {
                self.publish_command(node_id, command).await;
            }
        }
    }

    async fn handle_link_events(&mut self, batch: Vec<LinkEvent>) {
        let mut acks: HashMap<u64, u64> = HashMap::new();
        // Node → whether a heartbeat came (then it also gets what waits for it).
        let mut heard: HashMap<u64, bool> = HashMap::new();
        for event in batch {
            match event {
                LinkEvent::Connected => self.subscribe().await,
                LinkEvent::Publish { topic, payload } => {
                    match Topic::parse(&topic, &self.settings.prefix) {
                        Ok(Topic::NodeEvents { node_id }) => {
                            if let Some(seq) = self
                                .handle_envelope(node_id, &topic, &payload, &mut heard)
                                .await
                            {
                                let entry = acks.entry(node_id).or_default();
                                *entry = (*entry).max(seq);
                            }
                        }
                        Ok(Topic::NodeStatus { node_id }) => self.handle_status(node_id, &payload),
                        Ok(_) => {}
                        Err(e) => {
                            tracing::debug!(%topic, error = %e, "ignoring a message on an unknown topic")
                        }
                    }
                }
            }
        }
        if acks.is_empty() {
            return;
        }
        // Acknowledge only what is on disk.
        if let Err(e) = self.store.flush().await {
            tracing::error!(error = %e, "flushing agent events; not acknowledging them");
            return;
        }
        for (node_id, seq) in acks {
            self.publish_command(node_id, Command::Ack { seq }).await;
        }
        for (node_id, heartbeat) in heard {
            self.node_heard(node_id, heartbeat).await;
        }
    }

    async fn subscribe(&mut self) {
        let filters = [
            Topic::all_events_filter(&self.settings.prefix),
            Topic::all_node_status_filter(),
        ];
        for filter in filters {
            if let Err(e) = self
                .client
                .subscribe(filter.clone(), QoS::AtLeastOnce)
                .await
            {
                tracing::error!(%filter, error = %e, "subscribing");
            }
        }
    }

    /// Verifies and applies one envelope; returns the seq to acknowledge.
    async fn handle_envelope(
        &mut self,
        node_id: u64,
        topic: &str,
        payload: &[u8],
        heard: &mut HashMap<u64, bool>,
    ) -> Option<u64> {
        let key = self.key(node_id)?;
        let envelope = match open(payload, topic, &key) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::warn!(node_id, error = %e, "dropping an event that fails authentication");
                return None;
            }
        };
        if let Err(e) = envelope.check_node(node_id) {
            tracing::warn!(node_id, error = %e, "dropping an event for another node");
            return None;
        }
        let seq = envelope.seq;
        let event = match envelope.body.into_event() {
            Ok(event) => event,
            Err(_) => {
                tracing::warn!(node_id, "dropping a command sent on an event topic");
                return None;
            }
        };
        if self.guard.check(node_id, seq).is_err() {
            // Already applied: the agent missed our ack. Acknowledge again, change nothing.
            return Some(seq);
        }
        if let Some(last) = self.guard.last_accepted(node_id) {
            if seq > last + 1 && seq - last < FRESH_JOURNAL_JUMP {
                // Events between were published while we were not subscribed (a restart of
                // ours or the broker's). Acking this one would make the agent drop them:
                // ask for its outbox again instead; it resends from the oldest, in order.
                self.request_resend(node_id, last, seq).await;
                return None;
            }
        }
        let is_heartbeat = matches!(event, Event::Heartbeat { .. });
        let entry = heard.entry(node_id).or_insert(false);
        *entry |= is_heartbeat;
        if let Err(e) = self.apply(node_id, event).await {
            tracing::error!(node_id, seq, error = %e, "applying an agent event; it will be redelivered");
            return None;
        }
        let _ = self.guard.accept(node_id, seq);
        if let Err(e) = self.store.set_relay_counter("evt_seq", node_id, seq) {
            tracing::error!(node_id, error = %e, "recording the last event seq");
        }
        Some(seq)
    }

    fn handle_status(&mut self, node_id: u64, payload: &[u8]) {
        // The public status topic is not authenticated: it may only take a node offline (the
        // agent's last will); online comes from authenticated heartbeats.
        if let Ok(status) = NodeStatusPayload::from_json(payload) {
            if status.status == NodeStatus::Offline && self.online.remove(&node_id).is_some() {
                tracing::info!(node_id, "node went offline");
                let _ = self.store.set_node_presence(node_id, false);
            }
        }
    }

    /// Asks node `node_id` to resend its outbox (at most twice a second).
    async fn request_resend(&mut self, node_id: u64, last: u64, seen: u64) {
        let recently = self
            .resend_asked
            .get(&node_id)
            .is_some_and(|at| at.elapsed() < Duration::from_millis(500));
        if recently {
            return;
        }
        tracing::warn!(
            node_id,
            last_accepted = last,
            seen,
            "gap in a node's events; asking it to resend"
        );
        self.resend_asked.insert(node_id, Instant::now());
        let nonce = rand::random();
        self.publish_command(node_id, Command::Ping { nonce }).await;
    }

    /// The node's key, cached. None if the node has no credentials (never configured).
    fn key(&mut self, node_id: u64) -> Option<NodeKey> {
        if let Some(key) = self.keys.get(&node_id) {
            return Some(key.clone());
        }
        let secrets = self.store.existing_node_secrets(node_id).ok().flatten()?;
        let key = NodeKey::from_hex(&secrets.key_hex).ok()?;
        self.keys.insert(node_id, key.clone());
        Some(key)
    }

    /// Applies one authenticated event of node `node_id`.
    async fn apply(&mut self, node_id: u64, event: Event) -> Result<(), StoreError> {
        if let Some(job_ref) = event.job() {
            match self.store.job(job_ref.plan_id, job_ref.job_seq)? {
                Some(job) if job.id == job_ref.id && job.node_id == node_id => {}
                _ => {
                    tracing::warn!(node_id, job = %job_ref, "dropping an event about a job this node does not run");
                    return Ok(());
                }
            }
        }
        match event {
            Event::Heartbeat { .. } | Event::Pong { .. } => {}
            Event::PointHealth {
                point,
                healthy,
                message,
                at_ms,
            } => {
                if healthy {
                    tracing::info!(node_id, point, message, "point source healthy");
                } else {
                    tracing::warn!(node_id, point, message, "point source failing");
                }
                if let Some(points) = &self.points {
                    let health = crate::points::SourceHealth {
                        healthy,
                        message,
                        at: from_ms(at_ms),
                    };
                    points.record_health(node_id, &point, health);
                }
            }
            Event::Accepted { job } => {
                self.transition(job, &[JobEvent::Dispatch], JobUpdate::default())
                    .await?;
            }
            Event::Started {
                job, started_at_ms, ..
            } => {
                let update = JobUpdate {
                    at: Some(from_ms(started_at_ms)),
                    ..JobUpdate::default()
                };
                self.transition(job, &[JobEvent::Start], update).await?;
            }
            Event::LogBatch {
                job,
                first_line,
                lines,
            } => {
                let stored: Vec<StoredLogLine> = lines
                    .iter()
                    .enumerate()
                    .map(|(i, line)| StoredLogLine {
                        line: first_line + i as u64,
                        stream: match line.stream {
                            sortie_shared::LogStream::Stdout => "stdout".into(),
                            sortie_shared::LogStream::Stderr => "stderr".into(),
                        },
                        at: from_ms(line.at_ms),
                        text: line.text.clone(),
                    })
                    .collect();
                let fresh = self.store.append_logs(job.id, &stored)?;
                if !fresh.is_empty() {
                    let text: String = fresh.iter().map(|l| format!("{}\n", l.text)).collect();
                    let topic = Topic::PlanTerm {
                        plan_id: job.plan_id,
                    }
                    .to_string(&self.settings.prefix);
                    let _ = self.client.try_publish(topic, QoS::AtMostOnce, false, text);
                    self.handle.publish_live(LiveEvent::Log {
                        job_id: job.id,
                        lines: Arc::new(fresh),
                    });
                }
            }
            Event::Progress {
                job,
                percent,
                message,
            } => {
                let topic = Topic::PlanTerm {
                    plan_id: job.plan_id,
                }
                .to_string(&self.settings.prefix);
                let _ = self.client.try_publish(
                    topic,
                    QoS::AtMostOnce,
                    false,
                    format!("[progress {}%] {message}\n", percent.min(100)),
                );
            }
            Event::Output { job, role, blob_id } => {
                match self
                    .store
                    .add_job_output(job.plan_id, job.job_seq, &role, blob_id)
                {
                    Ok(job) => self.handle.publish_live(LiveEvent::Job(Arc::new(job))),
                    Err(StoreError::Invalid { message, .. }) => {
                        tracing::warn!(job = %job, role, blob_id, message, "ignoring an output that names no blob");
                    }
                    Err(e) => return Err(e),
                }
            }
            Event::Finished {
                job,
                outcome,
                exit_code,
                reason,
                finished_at_ms,
            } => {
                let update = JobUpdate {
                    reason: reason.or_else(|| {
                        exit_code
                            .filter(|c| *c != 0)
                            .map(|c| format!("exit code {c}"))
                    }),
                    exit_code,
                    at: Some(from_ms(finished_at_ms)),
                };
                // A cancel the agent decided alone (the dead-man's switch) has no `canceling`
                // step on our side: take it first.
                let events: &[JobEvent] = match outcome {
                    Outcome::Cancelled => &[JobEvent::Cancel, JobEvent::CancelConfirmed],
                    other => &[other.job_event()],
                };
                self.transition(job, events, update).await?;
            }
        }
        Ok(())
    }

    /// Applies `events` in order, skipping those the job's state does not allow (a repeated or
    /// late report). Announces the result if anything changed.
    pub(super) async fn transition(
        &mut self,
        job: JobRef,
        events: &[JobEvent],
        update: JobUpdate,
    ) -> Result<Option<Job>, StoreError> {
        let previous = self.store.job(job.plan_id, job.job_seq)?.map(|j| j.status);
        let mut changed = None;
        for event in events {
            match self
                .store
                .transition_job(job.plan_id, job.job_seq, *event, &update)
            {
                Ok(next) => changed = Some(next),
                Err(StoreError::Conflict(reason)) => {
                    tracing::debug!(job = %job, ?event, reason, "event does not apply")
                }
                Err(e) => return Err(e),
            }
        }
        if let Some(job) = &changed {
            self.announce(job, previous).await;
        }
        Ok(changed)
    }

    /// Publishes a job's state on the public topics and to live subscribers.
    pub(super) async fn announce(&mut self, job: &Job, previous: Option<JobState>) {
        let reference = job_ref(job);
        let mut payload =
            JobStatePayload::new(reference, job.node_id, job.status, job.updated_at.0);
        payload.previous_status = previous;
        payload.exit_code = job.exit_code;
        payload.reason = job.reason.clone();
        let prefix = &self.settings.prefix;
        let state_topic = Topic::JobStateChange { job_id: job.id }.to_string(prefix);
        let _ = self
            .client
            .try_publish(state_topic, QoS::AtLeastOnce, false, payload.to_json());
        let running = match self
            .store
            .active_jobs(job.plan_id)
            .ok()
            .and_then(|jobs| jobs.into_iter().next())
        {
            Some(running) => PlanRunningPayload(Some(JobStatePayload::new(
                job_ref(&running),
                running.node_id,
                running.status,
                running.updated_at.0,
            ))),
            None => PlanRunningPayload(None),
        };
        let running_topic = Topic::PlanRunning {
            plan_id: job.plan_id,
        }
        .to_string(prefix);
        let _ = self
            .client
            .try_publish(running_topic, QoS::AtLeastOnce, true, running.to_json());
        self.handle
            .publish_live(LiveEvent::Job(Arc::new(job.clone())));
    }

    /// Seals and publishes a command to node `node_id`.
    pub(super) async fn publish_command(&mut self, node_id: u64, command: Command) -> bool {
        let Some(key) = self.key(node_id) else {
            tracing::warn!(
                node_id,
                "node has no credentials (run `node agent-config`); cannot send it commands"
            );
            return false;
        };
        let topic = Topic::NodeCommands { node_id }.to_string(&self.settings.prefix);
        let now_ms = chrono::Utc::now().timestamp_millis() as u64;
        let envelope = Envelope::new(node_id, self.command_seq.next_seq(), now_ms, command);
        let bytes = seal(&envelope, &topic, &key);
        match self
            .client
            .publish(topic, QoS::AtLeastOnce, false, bytes)
            .await
        {
            Ok(()) => true,
            Err(e) => {
                tracing::error!(node_id, error = %e, "publishing a command");
                false
            }
        }
    }

    /// A node was heard from: mark it online and, when it just came online or sent a
    /// heartbeat, hand it what waits for it.
    async fn node_heard(&mut self, node_id: u64, heartbeat: bool) {
        let was_online = self.online.insert(node_id, Instant::now()).is_some();
        if !was_online {
            tracing::info!(node_id, "node online");
        }
        if !was_online || heartbeat {
            if let Err(e) = self.store.set_node_presence(node_id, true) {
                tracing::warn!(node_id, error = %e, "recording node presence");
            }
            self.catch_up(node_id).await;
        }
    }
}

/// The private-message reference of a job.
pub(super) fn job_ref(job: &Job) -> JobRef {
    JobRef {
        id: job.id,
        plan_id: job.plan_id,
        job_seq: job.job_id,
    }
}

fn from_ms(ms: u64) -> Timestamp {
    Timestamp(chrono::DateTime::from_timestamp_millis(ms as i64).unwrap_or_else(chrono::Utc::now))
}
