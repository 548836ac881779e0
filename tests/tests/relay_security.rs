//! A node cannot act as another node. On the embedded broker the topic ACLs refuse node 2's
//! publishes on node 1's topics outright; on a broker without ACLs (this test's Mosquitto)
//! node 2's credentials are enough to publish anywhere, so the envelope's key and the topic it
//! binds are what must stop a rogue node 2 from finishing or cancelling node 1's job. The test
//! checks whichever defence the broker under test leaves in front.

use std::time::Duration;

use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS};
use sortie_shared::{
    seal, CancelRequest, Command, Envelope, Event, JobRef, NodeKey, Outcome, Topic, TopicPrefix,
};
use sortie_tests::{
    processes_with_marker, script_plan, unique_marker, wait_processes_gone, wait_until, Agent,
    BrokerKind, Coordinator, JobHandle, NodeCredentials, ServeOptions,
};

/// Bound for a job to be picked up, run, or reported.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Waits for the go file, then exits 4: a `failure`, so a forged `success` cannot pass for it.
const WAIT_THEN_FAIL: &str = r#"#!/bin/sh
echo "started"
i=0
while [ ! -e "$SORTIE_EXTRA_GO_FILE" ] && [ "$i" -lt 600 ]; do
  sleep 0.1
  i=$((i + 1))
done
echo "exiting 4"
exit 4
"#;

/// An MQTT client logged in with a node's credentials that seals whatever it is told to.
struct RogueNode {
    client: Client,
    connection: rumqttc::Connection,
    key: NodeKey,
    prefix: TopicPrefix,
    node_id: u64,
    seq: u64,
}

impl RogueNode {
    /// Connects as the node (client id `sortie-node-<id>`, as the embedded broker demands).
    fn connect(credentials: &NodeCredentials) -> RogueNode {
        let url = url::Url::parse(&credentials.mqtt_url).expect("mqtt_url is a URL");
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .expect("UTF-8 credentials")
                .into_owned()
        };
        let mut options = MqttOptions::new(
            format!("sortie-node-{}", credentials.node_id),
            url.host_str().expect("a broker host"),
            url.port().expect("a broker port"),
        );
        options.set_credentials(
            decode(url.username()),
            decode(url.password().unwrap_or_default()),
        );
        let (client, mut connection) = Client::new(options, 16);
        let connected = (0..50).any(|_| {
            matches!(
                connection.recv_timeout(Duration::from_millis(200)),
                Ok(Ok(MqttEvent::Incoming(Packet::ConnAck(_))))
            )
        });
        assert!(connected, "the rogue client could not connect");
        RogueNode {
            client,
            connection,
            key: NodeKey::from_hex(&credentials.node_key).expect("a node key"),
            prefix: TopicPrefix::new(credentials.mqtt_prefix.clone()).expect("a prefix"),
            node_id: credentials.node_id,
            seq: now_ms() * 1000,
        }
    }

    /// Seals `body` in an envelope naming `claimed_node`, with the rogue's own key, for
    /// `topic`, publishes it with QoS 1 and waits for the broker's PUBACK.
    fn publish(
        &mut self,
        topic: &Topic,
        claimed_node: u64,
        body: impl Into<sortie_shared::Message>,
    ) {
        self.seq += 1;
        let topic = topic.to_string(&self.prefix);
        let envelope = Envelope::new(claimed_node, self.seq, now_ms(), body);
        let bytes = seal(&envelope, &topic, &self.key);
        self.client
            .publish(&topic, QoS::AtLeastOnce, false, bytes)
            .expect("queueing a publish");
        let acked = (0..50).any(|_| {
            matches!(
                self.connection.recv_timeout(Duration::from_millis(200)),
                Ok(Ok(MqttEvent::Incoming(Packet::PubAck(_))))
            )
        });
        assert!(
            acked,
            "the broker did not take the rogue publish on {topic}"
        );
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as u64
}

/// Whether a line of `log` contains every part.
fn logged(log: &str, parts: &[&str]) -> bool {
    log.lines()
        .any(|line| parts.iter().all(|part| line.contains(part)))
}

#[test]
fn a_node_cannot_finish_or_cancel_another_nodes_job() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let agent = Agent::start(&api, 1);
    let go = agent.scratch_dir().join("go");
    let marker = unique_marker();
    let plan = script_plan(
        &api,
        1,
        WAIT_THEN_FAIL,
        &[("go_file", &go.display().to_string()), ("marker", &marker)],
    );
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_for(&api, "running", TIMEOUT);
    job.wait_log(&api, "started", TIMEOUT);
    let job_ref = JobRef {
        id: job.id,
        plan_id: job.plan_id,
        job_seq: job.seq,
    };
    let forged_success = || Event::Finished {
        job: job_ref,
        outcome: Outcome::Success,
        exit_code: Some(0),
        reason: None,
        finished_at_ms: now_ms(),
    };

    // Node 2's real credentials; its agent never runs.
    let node2 = Agent::configure(&api, 2);
    let mut rogue = RogueNode::connect(node2.credentials());
    assert_eq!(rogue.node_id, 2);
    // 1. On node 1's event topic, claiming to be node 1: the tag is node 2's, not node 1's.
    rogue.publish(&Topic::NodeEvents { node_id: 1 }, 1, forged_success());
    // 2. On node 1's command topic, a cancel: node 1's agent checks the tag with its own key.
    rogue.publish(
        &Topic::NodeCommands { node_id: 1 },
        1,
        Command::Cancel(CancelRequest {
            job: job_ref,
            reason: "forged cancel".into(),
        }),
    );
    // 3. On node 2's own topic, authentic as node 2, about node 1's job. (That this one gets
    //    past authentication, to the job check, also shows the rogue's envelopes are well
    //    formed: 1 and 2 fail for their key alone.)
    rogue.publish(&Topic::NodeEvents { node_id: 2 }, 2, forged_success());

    // Each was seen and dropped: by the broker's ACL where it has one, else by the receiver.
    let embedded = BrokerKind::from_env() == BrokerKind::Embedded;
    let dropped = wait_until(TIMEOUT, || {
        let log = server.stderr();
        let first_two = if embedded {
            logged(
                &log,
                &["MQTT access refused by the ACL", "sortie/v1/nodes/1/evt"],
            ) && logged(
                &log,
                &["MQTT access refused by the ACL", "sortie/v1/nodes/1/cmd"],
            )
        } else {
            logged(
                &log,
                &["dropping an event that fails authentication", "node_id=1"],
            )
        };
        first_two
            && logged(
                &log,
                &[
                    "dropping an event about a job this node does not run",
                    "node_id=2",
                ],
            )
    });
    assert!(
        dropped,
        "the forged events were not dropped:\n{}",
        server.stderr()
    );
    if !embedded {
        agent.wait_logged(
            &[
                "dropping a message on the command topic",
                "failed authentication",
            ],
            TIMEOUT,
        );
    }

    // The job is untouched: still running, its process alive, no stop requested.
    let now = job.get(&api);
    assert_eq!(now["status"], "running", "{now}");
    assert!(now["exit_code"].is_null(), "{now}");
    assert!(
        !processes_with_marker(&marker).is_empty(),
        "the job's process is gone"
    );
    assert!(!job.log(&api).contains("[sortie]"), "{}", job.log(&api));

    // It ends as its script decides.
    std::fs::write(&go, "go").expect("writing the go file");
    let done = job.wait_for(&api, "failure", TIMEOUT);
    assert_eq!(done["exit_code"], 4, "{done}");
    assert_eq!(job.log(&api), "started\nexiting 4\n");
    wait_processes_gone(&marker, Duration::from_secs(5));
}
