//! Authentication and authorization: missing and malformed tokens, the token endpoint's
//! refusals, the refresh grant, token expiry, and what a non-admin may do.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sortie_tests::{
    admin, http_client, login, send, wait_until, Api, Coordinator, Reply, ServeOptions,
    DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER,
};

fn token_request(server: &Coordinator, fields: &[(&str, &str)]) -> Reply {
    send(
        http_client()
            .post(server.api().url("/oauth/token"))
            .form(fields),
    )
}

fn password_grant(server: &Coordinator, password: &str, secret: &str) -> Reply {
    token_request(
        server,
        &[
            ("grant_type", "password"),
            ("username", DEMO_USER),
            ("password", password),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", secret),
        ],
    )
}

#[test]
fn requests_without_a_valid_token_are_refused() {
    let server = Coordinator::start(ServeOptions::demo());
    let token = sortie_tests::demo_token(server.base_url());
    let api = server.api();
    let plans = api.url("/api/v2/plans/");

    let missing = api.get("/api/v2/plans/").expect_error(401);
    assert_eq!(missing["error"], "unauthorized");
    let unknown = send(http_client().get(&plans).bearer_auth("0".repeat(64))).expect_error(401);
    assert!(
        unknown["message"].as_str().unwrap().contains("unknown"),
        "{unknown}"
    );
    // gosd clients sometimes send the bare token; it has no scheme, so it is malformed.
    send(http_client().get(&plans).header("authorization", &token)).expect_error(401);
    send(
        http_client()
            .get(&plans)
            .header("authorization", "Basic abc"),
    )
    .expect_error(401);

    let ok = send(
        http_client()
            .get(&plans)
            .header("authorization", format!("Token {token}")),
    );
    assert_eq!(ok.expect(200), json!([]));
    let ok = send(
        http_client()
            .get(&plans)
            .header("authorization", format!("bearer {token}")),
    );
    assert_eq!(ok.expect(200), json!([]));
}

#[test]
fn the_token_endpoint_refuses_bad_credentials_and_grants() {
    let server = Coordinator::start(ServeOptions::demo());
    let body = password_grant(&server, "not-the-password", DEMO_CLIENT_SECRET).expect_error(400);
    assert_eq!(body["error"], "invalid_grant");
    let unknown_user = token_request(
        &server,
        &[
            ("grant_type", "password"),
            ("username", "nobody"),
            ("password", DEMO_PASSWORD),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
    );
    assert_eq!(unknown_user.expect_error(400)["error"], "invalid_grant");

    let body = password_grant(&server, DEMO_PASSWORD, "wrong-secret").expect_error(401);
    assert_eq!(body["error"], "invalid_client");
    let body = token_request(
        &server,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", DEMO_CLIENT_ID),
            ("client_secret", DEMO_CLIENT_SECRET),
        ],
    )
    .expect_error(400);
    assert_eq!(body["error"], "unsupported_grant_type");
    let empty = send(http_client().post(server.api().url("/oauth/token")));
    assert_eq!(empty.expect_error(400)["error"], "invalid_request");
}

#[test]
fn a_refresh_token_works_once() {
    let server = Coordinator::start(ServeOptions::demo());
    let first = password_grant(&server, DEMO_PASSWORD, DEMO_CLIENT_SECRET).expect(200);
    let refresh = first["refresh_token"]
        .as_str()
        .expect("a refresh_token")
        .to_owned();
    let refresh_grant = || {
        token_request(
            &server,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", DEMO_CLIENT_ID),
                ("client_secret", DEMO_CLIENT_SECRET),
            ],
        )
    };
    let second = refresh_grant().expect(200);
    let access = second["access_token"].as_str().unwrap();
    assert_ne!(access, first["access_token"].as_str().unwrap());
    assert_ne!(second["refresh_token"], first["refresh_token"]);
    let me = server
        .api()
        .with_token(access)
        .get("/api/v1/user/")
        .expect(200);
    assert_eq!(me["username"], DEMO_USER);

    assert_eq!(refresh_grant().expect_error(400)["error"], "invalid_grant");
    // A refresh token is not an access token.
    let second_refresh = second["refresh_token"].as_str().unwrap();
    server
        .api()
        .with_token(second_refresh)
        .get("/api/v1/user/")
        .expect_error(401);
}

#[test]
fn an_expired_token_is_refused_with_a_reason() {
    let server = Coordinator::start(ServeOptions::demo().token_ttl(1));
    let api = server.demo_api();
    let mut last = None;
    let expired = wait_until(Duration::from_secs(10), || {
        let reply = api.get("/api/v1/user/");
        let done = reply.status == 401;
        last = Some(reply);
        done
    });
    let last = last.expect("at least one request");
    assert!(
        expired,
        "the 1 s token still works after 10 s: {}",
        last.text()
    );
    let body = last.expect_error(401);
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "the message does not say why: {body}"
    );
}

#[test]
fn a_non_admin_reads_nodes_but_cannot_change_them() {
    let data = tempfile::tempdir().unwrap();
    let added = admin(
        data.path(),
        &["user", "add", "bob", "--password-stdin"],
        Some("bobs-password\n"),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );
    let client = admin(data.path(), &["client", "add", "--name", "bob-cli"], None);
    assert!(
        client.status.success(),
        "{}",
        String::from_utf8_lossy(&client.stderr)
    );
    let client = String::from_utf8(client.stdout).unwrap();
    let field = |key: &str| {
        client
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in {client:?}"))
            .to_owned()
    };
    let (client_id, secret) = (field("client_id="), field("client_secret="));

    let server = Coordinator::start(ServeOptions::demo().data_dir(data.path()));
    let bob = Api::new(server.base_url()).with_token(&login(
        server.base_url(),
        "bob",
        "bobs-password",
        &client_id,
        &secret,
    ));
    assert_eq!(bob.get("/api/v1/user/").expect(200)["admin"], false);
    let nodes = bob.get("/api/v1/nodes/").expect(200);
    assert_eq!(nodes.as_array().map(Vec::len), Some(2));

    let node = json!({"name": "mast-1", "type_name": "mast", "points": []});
    let refused = bob.post_json("/api/v1/nodes/", &node).expect_error(403);
    assert_eq!(refused["error"], "forbidden");
    send(bob.request(Method::DELETE, "/api/v1/nodes/2")).expect_error(403);
    bob.put_json("/api/v1/nodes/2", &node).expect_error(403);
    // Nothing changed; an admin may.
    assert_eq!(bob.get("/api/v1/nodes/").expect(200), nodes);
    let created: Value = server
        .demo_api()
        .post_json("/api/v1/nodes/", &node)
        .expect(201);
    assert_eq!(created["name"], "mast-1");
    // Plans are everyone's.
    bob.post_json("/api/v2/plans/", &json!({"name": "bob's", "node_id": 1}))
        .expect(201);
}
