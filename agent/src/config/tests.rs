use super::*;

const KEY: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

fn complete() -> ConfigLayer {
    let text = DEFAULT_CONFIG
        .replace("api_token = \"\"", "api_token = \"ab12\"")
        .replace("node_key = \"\"", &format!("node_key = \"{KEY}\""));
    ConfigLayer::from_toml(&text).unwrap()
}

#[test]
fn default_config_parses_and_only_lacks_secrets() {
    let layer = ConfigLayer::from_toml(DEFAULT_CONFIG).unwrap();
    let err = layer.resolve().unwrap_err().to_string();
    assert!(err.contains("api_token"), "{err}");

    let config = complete().resolve().unwrap();
    assert_eq!(config.node_id, 1);
    assert_eq!(config.mqtt.host, "127.0.0.1");
    assert_eq!(config.mqtt.port, 1883);
    assert_eq!(
        config.mqtt.credentials,
        Some(("node-1".into(), "PASSWORD".into()))
    );
    assert_eq!(config.mqtt_prefix.as_str(), "sortie/v1");
    assert_eq!(config.coordinator_url, "http://127.0.0.1:8000/gosd");
    assert_eq!(config.kill_grace, Duration::from_secs(3));
    assert_eq!(config.heartbeat, Duration::from_secs(5));
    assert_eq!(config.retention, Duration::from_secs(604_800));
    assert_eq!(config.safe_state_command, None);
    assert_eq!(config.default_timeout, None);
}

#[test]
fn later_layers_win() {
    let over = ConfigLayer {
        node_id: Some(7),
        mqtt_url: Some("mqtt://node-7:p%40ss@broker:1999".into()),
        default_timeout_secs: Some(60),
        ..ConfigLayer::default()
    };
    let config = complete().merge(over).resolve().unwrap();
    assert_eq!(config.node_id, 7);
    assert_eq!(config.mqtt.port, 1999);
    assert_eq!(
        config.mqtt.credentials,
        Some(("node-7".into(), "p@ss".into()))
    );
    assert_eq!(config.default_timeout, Some(Duration::from_secs(60)));
}

#[test]
fn bad_values_name_their_key() {
    let cases: [(ConfigLayer, &str); 7] = [
        (
            ConfigLayer {
                mqtt_url: Some("mqtt://node-2:x@h:1".into()),
                ..ConfigLayer::default()
            },
            "mqtt_url",
        ),
        (
            ConfigLayer {
                mqtt_url: Some("mqtts://node-1:x@h:1".into()),
                ..ConfigLayer::default()
            },
            "plain MQTT",
        ),
        (
            ConfigLayer {
                coordinator_url: Some("https://c".into()),
                ..ConfigLayer::default()
            },
            "coordinator_url",
        ),
        (
            ConfigLayer {
                node_key: Some("abc".into()),
                ..ConfigLayer::default()
            },
            "node_key",
        ),
        (
            ConfigLayer {
                heartbeat_secs: Some(0),
                ..ConfigLayer::default()
            },
            "heartbeat_secs",
        ),
        (
            ConfigLayer {
                mqtt_prefix: Some("$SYS/x".into()),
                ..ConfigLayer::default()
            },
            "mqtt_prefix",
        ),
        (
            ConfigLayer {
                retention_secs: Some(0),
                ..ConfigLayer::default()
            },
            "retention_secs",
        ),
    ];
    for (over, needle) in cases {
        let err = complete().merge(over).resolve().unwrap_err().to_string();
        assert!(err.contains(needle), "{needle}: {err}");
    }
}

#[test]
fn unknown_keys_are_refused() {
    let err = ConfigLayer::from_toml("node_idd = 3").err().unwrap();
    assert!(err.contains("node_idd"), "{err}");
}

#[test]
fn secrets_never_show_in_debug_or_errors() {
    let config = complete().resolve().unwrap();
    let debug = format!("{config:?}");
    assert!(!debug.contains("PASSWORD"), "{debug}");
    assert!(!debug.contains("ab12"), "{debug}");
    assert!(!debug.contains(KEY), "{debug}");
    assert!(debug.contains("node-1:***@127.0.0.1"), "{debug}");

    let layer_debug = format!("{:?}", complete());
    assert!(!layer_debug.contains("PASSWORD"), "{layer_debug}");

    let over = ConfigLayer {
        mqtt_url: Some("mqtt://node-1:hunter2@ho st:1".into()),
        ..ConfigLayer::default()
    };
    let err = complete().merge(over).resolve().unwrap_err().to_string();
    assert!(!err.contains("hunter2"), "{err}");
}

#[test]
fn redacted_url_hides_only_the_password() {
    let show = |s: &str| RedactedUrl(s).to_string();
    assert_eq!(show("mqtt://node-1:pw@h:1883"), "mqtt://node-1:***@h:1883");
    assert_eq!(show("mqtt://h:1883"), "mqtt://h:1883");
    assert_eq!(show("http://u:p@h/x?y"), "http://u:***@h/x?y");
    assert_eq!(show("no scheme"), "no scheme");
}

/// A complete config with `extra` appended (tables must come after the top-level keys).
fn with(extra: &str) -> Result<AgentConfig, String> {
    let text = DEFAULT_CONFIG
        .replace("api_token = \"\"", "api_token = \"ab12\"")
        .replace("node_key = \"\"", &format!("node_key = \"{KEY}\""));
    let layer = ConfigLayer::from_toml(&format!("{text}\n{extra}"))?;
    layer.resolve().map_err(|e| e.to_string())
}

const SIM_DRONE: &str = r#"
[hal]
backend = "sim"
[hal.sim]
kind = "drone"
[hal.outputs.estop]
[hal.outputs.charger]
[hal.inputs.landed]
[hal.sensors.battery]
driver = "ina219"
bus = "/dev/i2c-1"
"#;

#[test]
fn points_hal_and_safe_state_resolve() {
    let config = with(&format!(
        r#"safe_state = [{{ set = "estop", to = "on" }}, {{ wait_ms = 100 }}]
{SIM_DRONE}
[[points]]
name = "status"
kind = "telemetry"
source = "hal"
reading = "drone-status"
rate_hz = 2.5
[[points]]
name = "camera"
kind = "video"
source = "demo"
always_on = true
[[points]]
name = "wx"
kind = "telemetry"
source = "command"
command = "read-wx"
[[points]]
name = "file"
kind = "video"
source = "file"
path = "/var/lib/sortie/clip.flv"
[[points]]
name = "pi"
kind = "video"
source = "command"
command = "rpicam-vid -o - | ffmpeg -i - -c copy -f flv -"
"#
    ))
    .unwrap();
    assert!(config.hal.is_some());
    assert_eq!(config.safe_state.len(), 2);
    let specs: Vec<(&str, &PointSpec)> = config
        .points
        .iter()
        .map(|p| (p.name.as_str(), &p.spec))
        .collect();
    assert_eq!(
        specs[0],
        (
            "status",
            &PointSpec::Telemetry(TelemetrySource::Hal {
                reading: Reading::DroneStatus,
                rate_hz: 2.5
            })
        )
    );
    assert_eq!(
        specs[1],
        (
            "camera",
            &PointSpec::Video {
                source: VideoSource::Demo,
                always_on: true
            }
        )
    );
    assert_eq!(
        specs[2].1,
        &PointSpec::Telemetry(TelemetrySource::Command("read-wx".into()))
    );
    assert_eq!(
        specs[3].1,
        &PointSpec::Video {
            source: VideoSource::File("/var/lib/sortie/clip.flv".into()),
            always_on: false
        }
    );
    assert!(matches!(
        specs[4].1,
        PointSpec::Video {
            source: VideoSource::Command(_),
            ..
        }
    ));
    // The defaults: no points, no hardware.
    let plain = complete().resolve().unwrap();
    assert!(plain.points.is_empty() && plain.hal.is_none() && plain.safe_state.is_empty());
}

#[test]
fn bad_points_name_their_entry_and_key() {
    let point = |body: &str| format!("[[points]]\n{body}\n");
    let cases = [
        (point("kind = \"telemetry\"\nsource = \"command\"\ncommand = \"x\""), "`points[0].name`: is not set"),
        (point("name = \"a/b\"\nkind = \"video\"\nsource = \"demo\""), "`points[0].name`: invalid point name"),
        (point("name = \"a\"\nsource = \"demo\""), "`points[0].kind`: is not set"),
        (point("name = \"a\"\nkind = \"audio\"\nsource = \"demo\""), "`points[0].kind`: \"audio\" is not telemetry or video"),
        (point("name = \"a\"\nkind = \"video\""), "`points[0].source`: is not set (command, file or demo)"),
        (point("name = \"a\"\nkind = \"video\"\nsource = \"hal\""), "`points[0].source`: \"hal\" is not a video source"),
        (point("name = \"a\"\nkind = \"telemetry\"\nsource = \"demo\""), "`points[0].source`: \"demo\" is not a telemetry source"),
        (point("name = \"a\"\nkind = \"video\"\nsource = \"command\""), "`points[0].command`: is not set"),
        (point("name = \"a\"\nkind = \"video\"\nsource = \"command\"\ncommand = \"  \""), "`points[0].command`: is not set"),
        (point("name = \"a\"\nkind = \"video\"\nsource = \"file\""), "`points[0].path`: is not set"),
        (point("name = \"a\"\nkind = \"telemetry\"\nsource = \"command\"\ncommand = \"x\"\nalways_on = true"), "`points[0].always_on`: only applies to video points"),
        (point("name = \"a\"\nkind = \"video\"\nsource = \"demo\"\nrate_hz = 1.0"), "`points[0].rate_hz`: only applies"),
        (point("name = \"a\"\nkind = \"video\"\nsource = \"demo\"\ncommand = \"x\""), "`points[0].command`: only applies"),
        (point("name = \"a\"\nkind = \"telemetry\"\nsource = \"hal\"\nreading = \"drone-status\""), "`points[0].source`: \"hal\" needs the hardware layer, but there is no [hal] table"),
        (format!("{}{}", point("name = \"a\"\nkind = \"video\"\nsource = \"demo\""), point("name = \"a\"\nkind = \"video\"\nsource = \"demo\"")), "`points[1].name`: \"a\" is used by an earlier point"),
    ];
    for (extra, needle) in cases {
        let err = with(&extra).unwrap_err();
        assert!(err.contains(needle), "{needle}\n  got: {err}");
    }
}

#[test]
fn hal_points_are_checked_against_the_hardware_table() {
    let hal_point = |extra: &str| {
        format!(
            "{SIM_DRONE}\n[[points]]\nname = \"s\"\nkind = \"telemetry\"\nsource = \"hal\"\n{extra}\n"
        )
    };
    let cases = [
        ("", "`points[0].reading`: is not set"),
        (
            "reading = \"weather\"",
            "`points[0].reading`: \"weather\" is not drone-status or depot-status",
        ),
        (
            "reading = \"drone-status\"\nrate_hz = 0.05",
            "`points[0].rate_hz`: 0.05 is outside 0.1 ..= 100",
        ),
        (
            "reading = \"drone-status\"\nrate_hz = 101.0",
            "`points[0].rate_hz`: 101 is outside",
        ),
        (
            "reading = \"drone-status\"\ncommand = \"x\"",
            "`points[0].command`: only applies",
        ),
    ];
    for (extra, needle) in cases {
        let err = with(&hal_point(extra)).unwrap_err();
        assert!(err.contains(needle), "{needle}\n  got: {err}");
    }
    let ok = with(&hal_point("reading = \"depot-status\"")).unwrap();
    assert_eq!(
        ok.points[0].spec,
        PointSpec::Telemetry(TelemetrySource::Hal {
            reading: Reading::DepotStatus,
            rate_hz: 1.0
        })
    );
}

#[test]
fn bad_hardware_tables_and_steps_name_their_key() {
    let err = with("safe_state = [{ set = \"estop\", to = \"on\" }]").unwrap_err();
    assert!(
        err.contains("`safe_state`: hardware steps need the hardware layer"),
        "{err}"
    );
    let err = with(&format!(
        "safe_state = [{{ set = \"estop\", to = \"ajar\" }}]\n{SIM_DRONE}"
    ))
    .unwrap_err();
    assert!(
        err.contains("`safe_state[0]`: ") && err.contains("ajar"),
        "{err}"
    );
    let err = with("[hal]\nbackend = \"vax\"").unwrap_err();
    assert!(err.starts_with("`hal`: ") && err.contains("vax"), "{err}");
    let err = with("[hal]\nbakend = \"sim\"").unwrap_err();
    assert!(err.contains("bakend"), "{err}");
    let err = with(&format!(
        "safe_state = [{{ set = \"estopp\", to = \"on\" }}]\n{SIM_DRONE}"
    ))
    .unwrap_err();
    assert!(
        err.contains(
            "`safe_state[0]`: no output named \"estopp\" in [hal] (outputs: charger, estop)"
        ),
        "{err}"
    );
    let err = with(&format!(
        "safe_state = [{{ expect = \"door_closed\", to = \"on\" }}]\n{SIM_DRONE}"
    ))
    .unwrap_err();
    assert!(
        err.contains("no input or output named \"door_closed\""),
        "{err}"
    );
    let err = with("[hal]\nbackend = \"rpi\"\n[hal.outputs.door]\n").unwrap_err();
    assert!(err.starts_with("`hal.outputs.door"), "{err}");
}

#[test]
fn points_and_hardware_are_file_only() {
    // The flags/environment layer has no way to set them, so merging it keeps the file's.
    let file = ConfigLayer::from_toml(&format!(
        "{SIM_DRONE}\n[[points]]\nname = \"c\"\nkind = \"video\"\nsource = \"demo\"\n"
    ))
    .unwrap();
    let merged = file.merge(ConfigLayer::default());
    assert_eq!(merged.points.as_ref().map(Vec::len), Some(1));
    assert!(merged.hal.is_some());
}

#[test]
fn the_commented_examples_of_the_default_config_are_valid() {
    let uncommented: String = DEFAULT_CONFIG
        .replace("api_token = \"\"", "api_token = \"ab12\"")
        .replace("node_key = \"\"", &format!("node_key = \"{KEY}\""))
        .lines()
        .map(|line| {
            let example = line.strip_prefix("# ").filter(|rest| {
                rest.starts_with('[')
                    || rest.split_once(" = ").is_some_and(|(key, _)| {
                        key.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                    })
            });
            format!("{}\n", example.unwrap_or(line))
        })
        .collect();
    let config = ConfigLayer::from_toml(&uncommented)
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"))
        .resolve()
        .unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    assert_eq!(config.points.len(), 5);
    assert_eq!(config.safe_state.len(), 2);
    let hal = config.hal.unwrap();
    assert_eq!(hal.outputs.len(), 2, "{hal:?}");
}
