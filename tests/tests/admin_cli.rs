//! The admin subcommands: users, clients, nodes and tokens made on the command line work
//! against the API, and the commands refuse a data dir a running server holds.

use std::process::Output;

use sortie_tests::{admin, login, Api, Coordinator, ServeOptions};

#[track_caller]
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "exit {}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

fn value<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|line| line.strip_prefix(key))
        .unwrap_or_else(|| panic!("no line starting with {key:?} in {text:?}"))
}

#[test]
fn users_clients_nodes_and_tokens_from_the_command_line() {
    let data = tempfile::tempdir().unwrap();
    let dir = data.path();
    // Seed the demo fleet, then stop: the admin commands need the data dir to themselves.
    let mut server = Coordinator::start(ServeOptions::demo().data_dir(dir));

    let refused = admin(
        dir,
        &["user", "add", "carol", "--password-stdin"],
        Some("carols-password\n"),
    );
    assert!(
        !refused.status.success(),
        "user add succeeded on a data dir a server holds"
    );
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains(&dir.display().to_string()) && stderr.contains("data dir"),
        "the error does not name the data dir: {stderr}"
    );
    assert!(server.stop().success());

    let out = succeeded(&admin(
        dir,
        &["user", "add", "alice", "--password-stdin"],
        Some("alices-password\n"),
    ));
    assert!(out.contains("alice"), "{out}");
    let short = admin(
        dir,
        &["user", "add", "shorty", "--password-stdin"],
        Some("short\n"),
    );
    assert!(
        !short.status.success(),
        "a 5-character password was accepted"
    );
    let users = succeeded(&admin(dir, &["user", "ls"], None));
    assert!(
        users.contains("alice") && users.contains("demo") && !users.contains("shorty"),
        "{users}"
    );

    let client = succeeded(&admin(dir, &["client", "add", "--name", "cli"], None));
    let client_id = value(&client, "client_id=").to_owned();
    let secret = value(&client, "client_secret=").to_owned();
    assert!(!client_id.is_empty() && secret.len() >= 32, "{client}");

    succeeded(&admin(
        dir,
        &[
            "node",
            "add",
            "--name",
            "x",
            "--type",
            "depot",
            "--point",
            "depot-status:status",
        ],
        None,
    ));
    let nodes = succeeded(&admin(dir, &["node", "ls"], None));
    let line = nodes
        .lines()
        .find(|l| l.split_whitespace().nth(1) == Some("x"))
        .unwrap_or_else(|| panic!("node x is not listed: {nodes}"));
    assert!(
        line.contains("depot") && line.contains("depot-status:status"),
        "{line}"
    );

    let token = succeeded(&admin(dir, &["token", "issue", "demo"], None));
    let token = token.trim();
    assert!(
        token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit()),
        "not a token: {token:?}"
    );

    let server = server.restart();
    let demo = Api::new(server.base_url()).with_token(token);
    assert_eq!(demo.get("/api/v1/user/").expect(200)["username"], "demo");
    let nodes = demo.get("/api/v1/nodes/").expect(200);
    let x = nodes
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["name"] == "x")
        .unwrap_or_else(|| panic!("node x is not served: {nodes}"));
    assert_eq!(x["type_name"], "depot");
    assert_eq!(x["points"][0]["point_type_name"], "depot-status");
    assert_eq!(x["points"][0]["name"], "status");

    let alice_token = login(
        server.base_url(),
        "alice",
        "alices-password",
        &client_id,
        &secret,
    );
    let alice = Api::new(server.base_url()).with_token(&alice_token);
    let me = alice.get("/api/v1/user/").expect(200);
    assert_eq!(
        (me["username"].as_str(), me["admin"].as_bool()),
        (Some("alice"), Some(false))
    );
}
