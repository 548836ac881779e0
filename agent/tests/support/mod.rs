//! Harness for the end-to-end tests: a real broker (rumqttd) on a free port, a TCP proxy that
//! can cut the agent's link, a tiny blob server, and a fake coordinator that seals and opens
//! envelopes with the node's key exactly as the real one does.

#![allow(dead_code)] // each test binary uses a different part

use std::collections::{BTreeMap, HashMap};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::routing::get;
use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use sha2::{Digest, Sha256};
use sortie_agent::{AgentConfig, ConfigLayer};
use sortie_shared::{
    open, seal, Command, Envelope, Event, JobDispatch, JobRef, JsonPayload, NodeKey, NodeStatus,
    NodeStatusPayload, PlanFile, SeqCounter, Topic, TopicPrefix,
};
use tokio::sync::mpsc;
use tokio::time::timeout;

pub const NODE: u64 = 1;
pub const TOKEN: &str = "e2e-token";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn start_broker() -> u16 {
    let port = free_port();
    let listen: SocketAddr = ([127, 0, 0, 1], port).into();
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 5000,
        max_payload_size: 1 << 20,
        max_inflight_count: 200,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "e2e".into(),
        listen,
        tls: None,
        next_connection_delay_ms: 0,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 100,
            max_outgoing_packet_count: 200,
            max_segment_size: 4 << 20,
            max_segment_count: 4,
            custom_segment: None,
            initialized_filters: None,
            shared_subscriptions_strategy: Default::default(),
            acl: None,
        },
        v4: Some([("1".to_owned(), server)].into_iter().collect()),
        ..Default::default()
    };
    std::thread::spawn(move || rumqttd::Broker::new(config).start().unwrap());
    for _ in 0..200 {
        if std::net::TcpStream::connect(listen).is_ok() {
            return port;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("broker did not start");
}

pub async fn start_blob_server(blobs: HashMap<u64, Vec<u8>>) -> String {
    async fn get_blob(
        State(blobs): State<Arc<HashMap<u64, Vec<u8>>>>,
        UrlPath(id): UrlPath<u64>,
    ) -> Result<Vec<u8>, axum::http::StatusCode> {
        blobs
            .get(&id)
            .cloned()
            .ok_or(axum::http::StatusCode::NOT_FOUND)
    }
    let app = axum::Router::new()
        .route("/gosd/api/v2/blobs/{id}", get(get_blob))
        .with_state(Arc::new(blobs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/gosd")
}

pub fn plan_file(id: u64, content: &[u8]) -> PlanFile {
    PlanFile {
        role: "script".into(),
        blob_id: id,
        name: "run.sh".into(),
        size: content.len() as u64,
        sha256: hex::encode(Sha256::digest(content)),
    }
}

/// A config file for node `node` on the broker at `port`.
pub fn agent_toml(node: u64, port: u16, base: &str, key: &NodeKey, data_dir: &Path) -> String {
    format!(
        r#"
node_id = {node}
mqtt_url = "mqtt://127.0.0.1:{port}"
coordinator_url = "{base}"
api_token = "{TOKEN}"
node_key = "{key}"
data_dir = "{dir}"
heartbeat_secs = 1
kill_grace_secs = 1
"#,
        key = key.to_hex(),
        dir = data_dir.display()
    )
}

/// Node 1's config.
pub fn agent_config(port: u16, base: &str, key: &NodeKey, data_dir: &Path) -> AgentConfig {
    let text = agent_toml(NODE, port, base, key, data_dir);
    ConfigLayer::from_toml(&text).unwrap().resolve().unwrap()
}

/// The coordinator's side of node 1's channel.
pub struct FakeCoordinator {
    client: AsyncClient,
    key: NodeKey,
    seq: SeqCounter,
    events: mpsc::Receiver<(u64, Event)>,
    statuses: mpsc::Receiver<NodeStatus>,
    cmd_topic: String,
}

impl FakeCoordinator {
    pub async fn connect(port: u16, key: NodeKey) -> Self {
        let prefix = TopicPrefix::default();
        let evt_topic = Topic::NodeEvents { node_id: NODE }.to_string(&prefix);
        let status_topic = Topic::NodeStatus { node_id: NODE }.to_string(&prefix);
        let mut options = MqttOptions::new("sortie-coordinator-e2e", "127.0.0.1", port);
        options.set_max_packet_size(1 << 20, 1 << 20);
        let (client, mut eventloop) = AsyncClient::new(options, 64);
        client
            .subscribe(Topic::all_events_filter(&prefix), QoS::AtLeastOnce)
            .await
            .unwrap();
        client
            .subscribe(&status_topic, QoS::AtLeastOnce)
            .await
            .unwrap();
        let (events_tx, events) = mpsc::channel(1024);
        let (status_tx, statuses) = mpsc::channel(64);
        let open_key = key.clone();
        tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == evt_topic => {
                        let envelope =
                            open(&p.payload, &p.topic, &open_key).expect("authentic event");
                        envelope.check_node(NODE).unwrap();
                        let event = envelope.body.into_event().expect("an event");
                        let _ = events_tx.send((envelope.seq, event)).await;
                    }
                    Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == status_topic => {
                        let status = NodeStatusPayload::from_json(&p.payload).unwrap().status;
                        let _ = status_tx.send(status).await;
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                }
            }
        });
        let cmd_topic = Topic::NodeCommands { node_id: NODE }.to_string(&prefix);
        FakeCoordinator {
            client,
            key,
            seq: SeqCounter::resume(None, sortie_agent::now_ms()),
            events,
            statuses,
            cmd_topic,
        }
    }

    pub async fn send(&mut self, command: Command) {
        let envelope = Envelope::new(NODE, self.seq.next_seq(), sortie_agent::now_ms(), command);
        let bytes = seal(&envelope, &self.cmd_topic, &self.key);
        self.client
            .publish(&self.cmd_topic, QoS::AtLeastOnce, false, bytes)
            .await
            .unwrap();
    }

    /// The next event, acknowledged at once (cumulatively, as the coordinator does).
    pub async fn next(&mut self) -> (u64, Event) {
        let (seq, event) = self.next_unacked().await;
        self.send(Command::Ack { seq }).await;
        (seq, event)
    }

    /// The next event, not acknowledged.
    pub async fn next_unacked(&mut self) -> (u64, Event) {
        timeout(Duration::from_secs(15), self.events.recv())
            .await
            .expect("an event within 15 s")
            .expect("event channel open")
    }

    /// The next event that is not a heartbeat.
    pub async fn next_non_heartbeat(&mut self) -> (u64, Event) {
        loop {
            let (seq, event) = self.next().await;
            if !matches!(event, Event::Heartbeat { .. }) {
                return (seq, event);
            }
        }
    }

    pub async fn status(&mut self, wanted: NodeStatus) {
        loop {
            let status = timeout(Duration::from_secs(10), self.statuses.recv())
                .await
                .unwrap()
                .unwrap();
            if status == wanted {
                return;
            }
        }
    }
}

pub fn job(id: u64) -> JobRef {
    JobRef {
        id,
        plan_id: 7,
        job_seq: id,
    }
}

pub fn dispatch(id: u64, file: PlanFile) -> Command {
    Command::Dispatch(JobDispatch {
        job: job(id),
        files: vec![file],
        extra: BTreeMap::new(),
        timeout_s: None,
        abort_on_link_loss_s: None,
    })
}

/// True while a non-zombie process is in group `pgid`.
pub fn group_has_live_process(pgid: i32) -> bool {
    std::fs::read_dir("/proc").unwrap().flatten().any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields.len() > 2 && fields[0] != "Z" && fields[2] == pgid.to_string()
    })
}

/// A TCP proxy in front of the broker whose link can be cut and restored, to play a flaky
/// network between the agent and the broker.
pub struct LinkProxy {
    /// Where agents connect.
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
}

impl LinkProxy {
    /// Starts a proxy to the broker on `broker_port`.
    pub async fn start(broker_port: u16) -> LinkProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, up_rx) = tokio::sync::watch::channel(true);
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let mut up_rx = up_rx.clone();
                if !*up_rx.borrow_and_update() {
                    continue; // dropped: connection refused, in effect
                }
                tokio::spawn(async move {
                    let Ok(mut outbound) =
                        tokio::net::TcpStream::connect(("127.0.0.1", broker_port)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = up_rx.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        LinkProxy { port, up }
    }

    /// Closes every connection and refuses new ones until [`restore`](Self::restore).
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

/// Every `nodes/+/status` message on the broker at `port`, as (node id, status).
pub async fn status_watcher(port: u16) -> mpsc::Receiver<(u64, NodeStatus)> {
    let mut options = MqttOptions::new("sortie-status-watcher", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client
        .subscribe(Topic::all_node_status_filter(), QoS::AtLeastOnce)
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(256);
    tokio::spawn(async move {
        let _client = client; // keep the request channel open
        let prefix = TopicPrefix::default();
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::Publish(p))) => {
                    let Ok(Topic::NodeStatus { node_id }) = Topic::parse(&p.topic, &prefix) else {
                        continue;
                    };
                    let status = NodeStatusPayload::from_json(&p.payload).unwrap().status;
                    if tx.send((node_id, status)).await.is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    rx
}
