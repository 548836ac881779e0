//! Topic building, parsing and table consistency.

use super::*;

fn prefix() -> TopicPrefix {
    TopicPrefix::default()
}

fn samples(id: u64) -> Vec<Topic> {
    vec![
        Topic::NodeCommands { node_id: id },
        Topic::NodeEvents { node_id: id },
        Topic::NodeStatus { node_id: id },
        Topic::PlanRunning { plan_id: id },
        Topic::PlanTerm { plan_id: id },
        Topic::JobStateChange { job_id: id },
        Topic::NodeTelemetry {
            node_id: id,
            point: PointName::new("battery").unwrap(),
        },
        Topic::NodeStream {
            node_id: id,
            point: PointName::new("camera").unwrap(),
        },
    ]
}

#[test]
fn topics_have_the_documented_names() {
    let p = prefix();
    let names: Vec<String> = samples(7).iter().map(|t| t.to_string(&p)).collect();
    assert_eq!(
        names,
        [
            "sortie/v1/nodes/7/cmd",
            "sortie/v1/nodes/7/evt",
            "nodes/7/status",
            "plans/7/running",
            "plans/7/term",
            "jobs/7/state",
            "nodes/7/msg/battery",
            "sortie/v1/nodes/7/live/camera",
        ]
    );
}

#[test]
fn every_topic_round_trips_under_several_prefixes() {
    let prefixes = ["sortie/v1", "x", "fleet-a/sortie/v2", "sortie/plans/1/term"];
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut ids = vec![0, 1, 9, 10, u64::MAX];
    for _ in 0..100 {
        state = state
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1);
        ids.push(state >> (state % 64));
    }
    for prefix in prefixes.map(|p| TopicPrefix::new(p).unwrap()) {
        for id in &ids {
            for topic in samples(*id) {
                let text = topic.to_string(&prefix);
                assert_eq!(Topic::parse(&text, &prefix), Ok(topic.clone()), "{text}");
            }
        }
    }
}

#[test]
fn a_prefix_cannot_sit_in_the_public_tree() {
    for prefix in ["nodes", "plans/x", "jobs/v1"] {
        let err = TopicPrefix::new(prefix).unwrap_err();
        assert!(err.to_string().contains("public topic root"), "{err}");
    }
    assert!(TopicPrefix::new("nodesx/v1").is_ok());
}

#[test]
fn private_topics_need_the_configured_prefix() {
    let other = TopicPrefix::new("fleet-b/v1").unwrap();
    let text = Topic::NodeEvents { node_id: 3 }.to_string(&other);
    assert_eq!(
        Topic::parse(&text, &prefix()),
        Err(TopicError::Unknown(text.clone()))
    );
    // A prefix that merely starts the same way is not the prefix.
    assert!(Topic::parse("sortie/v10/nodes/3/evt", &prefix()).is_err());
    // Public topics do not depend on it.
    assert_eq!(
        Topic::parse("nodes/3/status", &other),
        Ok(Topic::NodeStatus { node_id: 3 })
    );
}

#[test]
fn invalid_ids_are_refused() {
    for bad in ["x", "", "-1", "01", "+1", "1.0", "18446744073709551616"] {
        let topic = format!("sortie/v1/nodes/{bad}/evt");
        let err = Topic::parse(&topic, &prefix()).unwrap_err();
        assert!(
            matches!(
                err,
                TopicError::InvalidId(_)
                    | TopicError::EmptySegment(_)
                    | TopicError::ForbiddenChar { .. }
            ),
            "{topic}: {err:?}"
        );
    }
    assert_eq!(
        Topic::parse("jobs/abc/state", &prefix()),
        Err(TopicError::InvalidId("abc".into()))
    );
}

#[test]
fn wildcards_nul_and_empty_levels_are_refused() {
    let p = prefix();
    assert_eq!(Topic::parse("", &p), Err(TopicError::Empty));
    for (topic, found) in [
        ("nodes/+/status", '+'),
        ("nodes/#", '#'),
        ("nodes/1/msg/a+b", '+'),
        ("nodes/1\0/status", '\0'),
        ("nodes/1/msg/a\tb", '\t'),
    ] {
        assert!(
            matches!(Topic::parse(topic, &p), Err(TopicError::ForbiddenChar { found: f, .. }) if f == found),
            "{topic:?}"
        );
    }
    for topic in [
        "nodes//status",
        "/nodes/1/status",
        "nodes/1/status/",
        "sortie/v1//nodes/1/cmd",
    ] {
        assert_eq!(
            Topic::parse(topic, &p),
            Err(TopicError::EmptySegment(topic.into()))
        );
    }
    let long = format!("nodes/1/msg/{}", "a".repeat(MAX_TOPIC_BYTES));
    assert!(matches!(
        Topic::parse(&long, &p),
        Err(TopicError::TooLong { .. })
    ));
}

#[test]
fn unknown_topics_are_refused() {
    let p = prefix();
    for topic in [
        "nodes/1",
        "nodes/1/state",
        "nodes/1/status/extra",
        "plans/1/logs",
        "sortie/v1/nodes/1/other",
        "sortie/v1/plans/1/cmd",
        "$SYS/broker/uptime",
    ] {
        assert_eq!(
            Topic::parse(topic, &p),
            Err(TopicError::Unknown(topic.into()))
        );
    }
    let long_point = format!("nodes/1/msg/{}", "p".repeat(MAX_POINT_NAME_BYTES + 1));
    assert!(matches!(
        Topic::parse(&long_point, &p),
        Err(TopicError::InvalidPointName { .. })
    ));
}

#[test]
fn filters_replace_ids_with_plus() {
    let p = prefix();
    assert_eq!(Topic::all_events_filter(&p), "sortie/v1/nodes/+/evt");
    assert_eq!(Topic::all_node_status_filter(), "nodes/+/status");
    assert_eq!(Topic::all_job_states_filter(), "jobs/+/state");
    assert_eq!(TopicKind::NodeCommands.filter(&p), "sortie/v1/nodes/+/cmd");
    assert_eq!(TopicKind::NodeTelemetry.filter(&p), "nodes/+/msg/+");
}

#[test]
fn table_is_in_kind_order_and_consistent() {
    for (index, kind) in TopicKind::ALL.into_iter().enumerate() {
        let spec = &TOPICS[index];
        assert_eq!(spec.kind, kind);
        assert_eq!(kind.spec(), spec);
        // Private topics are exactly the prefixed, sealed ones, between coordinator and agent.
        let prefixed = spec.pattern.starts_with("{prefix}/");
        assert_eq!(spec.is_private(), prefixed, "{}", spec.pattern);
        assert_eq!(
            prefixed,
            matches!(
                spec.direction,
                Direction::CoordinatorToAgent | Direction::AgentToCoordinator
            )
        );
        // Exactly one numeric id per topic.
        let ids = spec
            .pattern
            .split('/')
            .filter(|l| l.ends_with("_id}"))
            .count();
        assert_eq!(ids, 1, "{}", spec.pattern);
    }
    for topic in samples(1) {
        assert_eq!(topic.spec().kind, topic.kind());
        assert_eq!(topic.id(), 1);
    }
}

#[test]
fn markdown_table_lists_every_topic() {
    let table = markdown_table();
    assert_eq!(table.lines().count(), TOPICS.len() + 2);
    assert!(table.contains(
        "| `{prefix}/nodes/{node_id}/cmd` | coordinator → agent | 1 | no | binary envelope |"
    ));
    assert!(table.contains("| `nodes/{node_id}/status` | agent → watchers | 1 | yes | JSON |"));
}
