//! A video point over a real broker: the fake coordinator asks for the stream (StreamStart),
//! a subscriber on `{prefix}/nodes/1/live/camera` gets sealed chunks of the demo clip, and
//! StreamStop ends them.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use rumqttc::{AsyncClient, Event as MqttEvent, MqttOptions, Packet, QoS};
use sortie_agent::ConfigLayer;
use sortie_shared::{open, Command, Event, MediaTag, Message, NodeKey, NodeStatus, StreamChunk};
use tokio::sync::mpsc;
use tokio::time::timeout;
use tokio_util::sync::CancellationToken;

use support::*;

const LIVE_TOPIC: &str = "sortie/v1/nodes/1/live/camera";

/// Every chunk published on the live topic, opened with the node's key: (seq, chunk).
async fn watch_live(port: u16, key: NodeKey) -> mpsc::Receiver<(u64, StreamChunk)> {
    let mut options = MqttOptions::new("sortie-coordinator-live", "127.0.0.1", port);
    options.set_max_packet_size(1 << 20, 1 << 20);
    let (client, mut eventloop) = AsyncClient::new(options, 16);
    client.subscribe(LIVE_TOPIC, QoS::AtMostOnce).await.unwrap();
    let (tx, rx) = mpsc::channel(4096);
    tokio::spawn(async move {
        let _client = client;
        loop {
            match eventloop.poll().await {
                Ok(MqttEvent::Incoming(Packet::Publish(p))) if p.topic == LIVE_TOPIC => {
                    let envelope = open(&p.payload, &p.topic, &key).expect("an authentic chunk");
                    envelope.check_node(NODE).unwrap();
                    let Message::Stream(chunk) = envelope.body else {
                        panic!("not a chunk on the live topic");
                    };
                    let _ = tx.send((envelope.seq, chunk)).await;
                }
                Ok(MqttEvent::Incoming(Packet::SubAck(_))) => {
                    let _ = tx.send((0, empty_chunk())).await;
                }
                Ok(_) => {}
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    });
    rx
}

/// Marks the subscription as acknowledged in the channel (seq 0).
fn empty_chunk() -> StreamChunk {
    StreamChunk {
        point: String::new(),
        stream_id: 0,
        has_audio: false,
        has_video: false,
        tags: Vec::new(),
    }
}

fn key_frame(tag: &MediaTag) -> bool {
    tag.is_keyframe() && tag.data.get(1) == Some(&1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watched_video_point_streams_sealed_chunks_until_stopped() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
    let port = start_broker();
    let base = start_blob_server(HashMap::new()).await;
    let key = NodeKey::generate();
    let data = tempfile::tempdir().unwrap();
    let mut coordinator = FakeCoordinator::connect(port, key.clone()).await;
    let mut live = watch_live(port, key.clone()).await;
    assert_eq!(live.recv().await.unwrap().0, 0, "subscribed");

    let text = format!(
        "{}\n[[points]]\nname = \"camera\"\nkind = \"video\"\nsource = \"demo\"\n",
        agent_toml(NODE, port, &base, &key, data.path())
    );
    let config = ConfigLayer::from_toml(&text).unwrap().resolve().unwrap();
    let stop = CancellationToken::new();
    let agent = tokio::spawn(sortie_agent::run(config, stop.clone()));
    coordinator.status(NodeStatus::Online).await;

    coordinator
        .send(Command::StreamStart {
            point: "camera".into(),
            lease_s: 30,
        })
        .await;
    // The source reports that it started (journaled, so through the outbox).
    let (_, health) = coordinator.next_non_heartbeat().await;
    assert!(
        matches!(&health, Event::PointHealth { point, healthy: true, message, .. }
            if point == "camera" && message == "started"),
        "{health:?}"
    );

    // Chunks up to the second keyframe (1 s of video, in real time).
    let mut chunks = Vec::new();
    while !chunks
        .iter()
        .flat_map(|(_, c): &(u64, StreamChunk)| &c.tags)
        .any(|t| key_frame(t) && t.timestamp_ms == 1000)
    {
        let chunk = timeout(Duration::from_secs(10), live.recv())
            .await
            .expect("a chunk within 10 s")
            .unwrap();
        chunks.push(chunk);
    }
    let tags: Vec<&MediaTag> = chunks.iter().flat_map(|(_, c)| &c.tags).collect();
    assert!(tags[0].data.starts_with(b"\x02\x00\x0aonMetaData"));
    assert_eq!(tags[1].data[..2], [0x17, 0], "the AVC sequence header");
    assert!(key_frame(tags[2]) && tags[2].timestamp_ms == 0);
    assert!(chunks.windows(2).all(|w| w[0].0 < w[1].0), "seqs increase");
    let stream_id = chunks[0].1.stream_id;
    assert!(chunks
        .iter()
        .all(|(_, c)| c.stream_id == stream_id && c.point == "camera" && c.has_video));

    // StreamStop: the chunks stop (the few already on their way aside).
    coordinator
        .send(Command::StreamStop {
            point: "camera".into(),
        })
        .await;
    let mut after_stop = 0;
    while timeout(Duration::from_secs(2), live.recv()).await.is_ok() {
        after_stop += 1;
        assert!(after_stop < 25, "still streaming after StreamStop");
    }

    stop.cancel();
    timeout(Duration::from_secs(15), agent)
        .await
        .expect("the agent stops")
        .unwrap()
        .unwrap();
}
