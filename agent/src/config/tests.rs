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
