//! Points and hardware through the real binaries: the coordinator renders the agent's
//! `[[points]]`, `[hal]` and `safe_state` (`node agent-config`), and the real agent runs them.
//!
//! - a simulated drone's status telemetry is retained on `nodes/{id}/msg/status`: a watcher that
//!   subscribes after the first sample gets the latest value at once;
//! - a plan's script drives the depot's door through the agent (`sortie-agent hal set door open`
//!   over `$SORTIE_HAL_SOCKET`) and reads it back; the CLI finds the agent from its config too;
//! - a cancelled job's log shows the safe-state hardware steps;
//! - the config rendered for a real device (camera command, commented hardware) starts an agent.
//!
//! Live video through the coordinator (`live.flv`) is covered by the coordinator's own suite.

use std::process::{Command, Output};
use std::time::Duration;

use rumqttc::{Client, Event as MqttEvent, MqttOptions, Packet, QoS};
use serde_json::{json, Value};
use sortie_tests::{
    agent_bin, node_status, script_plan, wait_until, Agent, Coordinator, JobHandle, ServeOptions,
    DEMO_PASSWORD, DEMO_USER,
};

/// Bound for anything that involves the agent starting, connecting or running a short job.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The demo drone and depot that `serve --demo` creates (a fresh data dir numbers them so).
const DRONE: u64 = 1;
const DEPOT: u64 = 2;

/// `sortie-agent` as a job's shell runs it: under `$SORTIE_AGENT_RUNNER` (an emulator for a
/// cross-built agent) if that is set.
fn agent_cli() -> String {
    let runner = std::env::var("SORTIE_AGENT_RUNNER").unwrap_or_default();
    format!("{} {}", runner.trim(), agent_bin().display())
        .trim()
        .to_owned()
}

/// Runs `sortie-agent hal ARGS` from the test (not from a job).
fn hal_cli(args: &[&str]) -> Output {
    let cli = agent_cli();
    let mut words = cli.split_whitespace();
    let mut command = Command::new(words.next().expect("a program"));
    command.args(words).arg("hal").args(args);
    command.env_remove("SORTIE_HAL_SOCKET");
    command.output().expect("running sortie-agent hal")
}

/// A watcher on the broker the agent uses: any client id not starting with `sortie-`, logged in
/// as an API user (the embedded broker's rule; a test Mosquitto lets anyone in).
fn watcher(agent: &Agent, topic: &str) -> (Client, rumqttc::Connection) {
    let url = url::Url::parse(&agent.credentials().mqtt_url).expect("mqtt_url is a URL");
    let mut options = MqttOptions::new(
        format!("watcher-{}", std::process::id()),
        url.host_str().expect("a broker host"),
        url.port().expect("a broker port"),
    );
    options.set_credentials(DEMO_USER, DEMO_PASSWORD);
    let (client, connection) = Client::new(options, 16);
    client
        .subscribe(topic, QoS::AtMostOnce)
        .expect("queueing the subscription");
    (client, connection)
}

#[test]
fn a_watcher_that_subscribes_late_gets_the_retained_drone_status_at_once() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let agent = Agent::start(&api, DRONE);

    // The first sample went out: the coordinator has it.
    let mut first = Value::Null;
    let arrived = wait_until(TIMEOUT, || {
        first = api
            .get(&format!("/api/v1/nodes/{DRONE}/points/status"))
            .json();
        !first["value"].is_null()
    });
    assert!(
        arrived,
        "no status sample reached the coordinator; agent log:\n{}",
        agent.log()
    );
    assert_eq!(first["source"]["healthy"], true, "{first}");

    let topic = format!("nodes/{DRONE}/msg/status");
    let (_client, mut connection) = watcher(&agent, &topic);
    let mut retained = None;
    for event in connection.iter() {
        match event {
            Ok(MqttEvent::Incoming(Packet::Publish(publish))) if publish.topic == topic => {
                retained = Some(publish);
                break;
            }
            Ok(MqttEvent::Incoming(Packet::SubAck(ack))) => {
                assert!(
                    ack.return_codes
                        .iter()
                        .all(|c| matches!(c, rumqttc::SubscribeReasonCode::Success(_))),
                    "subscription refused: {ack:?}"
                );
            }
            Ok(_) => {}
            Err(e) => panic!("watcher connection failed: {e}"),
        }
    }
    let publish = retained.expect("a message on the status topic");
    // Delivered because it is retained, not because a new sample happened to come.
    assert!(
        publish.retain,
        "the first message a new subscriber gets is the retained one"
    );
    let sample: Value = serde_json::from_slice(&publish.payload).expect("telemetry is JSON");
    assert!(sample["at"].is_string(), "{sample}");
    let value = &sample["value"];
    assert!(value["battery_percent"].is_number(), "{sample}");
    assert_eq!(value["source"], "sim", "{sample}");
    assert_eq!(value["state"], "landed", "{sample}");
    assert!(value["latitude_deg"].is_number(), "{sample}");
}

#[test]
fn a_plan_drives_the_depot_door_through_the_agent() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let agent = Agent::start(&api, DEPOT);
    let script = format!(
        r#"#!/bin/sh
set -e
hal="{cli} hal"
test -S "$SORTIE_HAL_SOCKET"
$hal set door open
echo "door is $($hal get door)"
if $hal set dor open; then exit 9; fi
echo "typo refused"
"#,
        cli = agent_cli()
    );
    let plan = script_plan(&api, DEPOT, &script, &[]);
    let job = JobHandle::create(&api, plan, &[]);
    let done = job.wait_for(&api, "success", TIMEOUT);
    let log = job.log(&api);
    assert_eq!(done["exit_code"], 0, "{done}\n{log}");
    assert!(log.contains("door on\n"), "{log}");
    assert!(log.contains("door is on\n"), "{log}");
    assert!(log.contains("typo refused\n"), "{log}");
    assert!(
        log.contains(
            "no output named \"dor\" is configured (outputs: charger, door, estop, lights)"
        ),
        "the refusal names the outputs:\n{log}"
    );

    // From outside a job, the CLI finds the agent through its config file.
    let config = agent.scratch_dir().join("agent.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let out = hal_cli(&["--config", config, "get", "door"]);
    assert!(out.status.success(), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "on\n");
    let out = hal_cli(&["--config", config, "status"]);
    let status: Value = serde_json::from_slice(&out.stdout).expect("status is JSON");
    assert_eq!(status["outputs"]["door"], true, "{status}");
    assert!(status["depot_status"]["door"].is_string(), "{status}");
    let out = hal_cli(&["--config", config, "set", "door", "ajar"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("\"ajar\" is not a level"));

    let mut agent = agent;
    agent.stop();
    let out = hal_cli(&["--config", config, "get", "door"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the agent is not running"),
        "{out:?}"
    );
}

#[test]
fn a_cancelled_job_reports_the_safe_state_steps_in_its_log() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let agent = Agent::start(&api, DRONE);
    let plan = script_plan(&api, DRONE, "#!/bin/sh\necho flying\nexec sleep 60\n", &[]);
    let job = JobHandle::create(&api, plan, &[]);
    job.wait_log(&api, "flying", TIMEOUT);
    job.cancel(&api);
    job.wait_for(&api, "cancelled", TIMEOUT);
    let log = job.log(&api);
    assert!(
        log.contains("[sortie] safe-state: 1/1 set estop on: ok\n"),
        "no safe-state step in the log:\n{log}"
    );
    assert!(
        log.contains("[sortie] safe-state: steps done after "),
        "{log}"
    );
    let config = agent.scratch_dir().join("agent.toml");
    let out = hal_cli(&["--config", config.to_str().unwrap(), "get", "estop"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "on\n", "{out:?}");
}

#[test]
fn the_config_rendered_for_a_device_starts_an_agent() {
    let server = Coordinator::start(ServeOptions::relay());
    let api = server.demo_api();
    let node = api
        .post_json(
            "/api/v1/nodes/",
            &json!({
                "name": "field-drone",
                "type_name": "air",
                "points": [
                    {"name": "camera", "point_type_name": "livestream_flv"},
                    {"name": "status", "point_type_name": "drone-status"},
                    {"name": "wx", "point_type_name": "weather"},
                    {"name": "probe", "point_type_name": "soil",
                     "params": {"command": "while true; do echo '{\"moisture\": 0.3}'; sleep 1; done"}},
                ],
            }),
        )
        .json();
    let node_id = node["id"].as_u64().unwrap_or_else(|| panic!("{node}"));
    let text = api
        .get(&format!("/api/v1/nodes/{node_id}/agent-config"))
        .text();
    assert!(
        text.contains("source = \"command\"\ncommand = \"rpicam-vid"),
        "{text}"
    );
    assert!(text.contains("# [hal]"), "{text}");
    let agent = Agent::start(&api, node_id);
    assert!(
        wait_until(TIMEOUT, || node_status(&api, node_id) == "online"),
        "the agent did not come online; log:\n{}",
        agent.log()
    );
    // The custom point with a command in its params publishes.
    let arrived = wait_until(TIMEOUT, || {
        api.get(&format!("/api/v1/nodes/{node_id}/points/probe"))
            .json()["value"]["moisture"]
            == json!(0.3)
    });
    assert!(
        arrived,
        "no sample of the custom point; log:\n{}",
        agent.log()
    );
}
