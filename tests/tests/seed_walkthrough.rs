//! The demo walkthrough a new user follows: health, tokens in each body form, nodes, blobs,
//! plans, jobs and the gosd aliases, against a `serve --demo` server.

use reqwest::blocking::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Value};
use sortie_tests::{
    http_client, send, sha256_hex, Api, Coordinator, Reply, ServeOptions, DEMO_CLIENT_ID,
    DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER,
};

fn is_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

#[track_caller]
fn check_token_reply(reply: &Reply) -> String {
    let body = reply.expect(200);
    let token = body["access_token"].as_str().expect("access_token");
    assert!(
        is_hex64(token),
        "access_token {token:?} is not 64 hex characters"
    );
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 7200);
    assert!(
        body["created_at"].is_i64(),
        "created_at is not an integer: {body}"
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    token.to_owned()
}

fn file(bytes: &[u8], name: &str) -> Part {
    Part::bytes(bytes.to_vec()).file_name(name.to_owned())
}

/// The id of a blob field in an upload answer, checking it is a string of digits.
#[track_caller]
fn blob_id(body: &Value, field: &str) -> u64 {
    let id = body[field]
        .as_str()
        .unwrap_or_else(|| panic!("{field} is not a string: {body}"));
    id.parse()
        .unwrap_or_else(|_| panic!("{field} is not a number: {body}"))
}

#[test]
fn health_and_tokens_in_every_body_form() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.api();
    let ok = api.get("/api/v2/ok").expect(200);
    assert!(ok["ok"].is_string(), "{ok}");

    let token_url = api.url("/oauth/token");
    let fields = [
        ("grant_type", "password"),
        ("username", DEMO_USER),
        ("password", DEMO_PASSWORD),
        ("client_id", DEMO_CLIENT_ID),
        ("client_secret", DEMO_CLIENT_SECRET),
    ];
    // As the walkthrough's `curl -F`.
    let form = fields
        .iter()
        .fold(Form::new(), |form, (k, v)| form.text(*k, *v));
    let multipart = check_token_reply(&send(http_client().post(&token_url).multipart(form)));
    let urlencoded = check_token_reply(&send(http_client().post(&token_url).form(&fields)));
    let as_json: serde_json::Map<String, Value> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let json_token = check_token_reply(&send(http_client().post(&token_url).json(&as_json)));
    assert!(multipart != urlencoded && urlencoded != json_token);

    for token in [multipart, urlencoded, json_token] {
        let me = api
            .clone()
            .with_token(&token)
            .get("/api/v1/user/")
            .expect(200);
        assert_eq!(me["username"], DEMO_USER);
    }
}

#[test]
fn nodes_in_the_seed_shape() {
    let server = Coordinator::start(ServeOptions::demo());
    let nodes = server.demo_api().get("/api/v1/nodes/").expect(200);
    let nodes = nodes.as_array().expect("a list of nodes");
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    for node in nodes {
        for key in ["id", "name", "description", "points", "type_name"] {
            assert!(node.get(key).is_some(), "node lacks {key}: {node}");
        }
        for point in node["points"].as_array().expect("points is a list") {
            for key in [
                "id",
                "name",
                "node_id",
                "point_type_id",
                "point_type_name",
                "params",
            ] {
                assert!(point.get(key).is_some(), "point lacks {key}: {point}");
            }
            assert_eq!(point["node_id"], node["id"]);
            assert!(point["params"].is_object());
        }
    }
    let drone = &nodes[0];
    assert_eq!(
        (drone["id"].as_u64(), drone["name"].as_str()),
        (Some(1), Some("drone-1"))
    );
    assert_eq!(drone["type_name"], "air");
    let camera = drone["points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["point_type_name"] == "livestream_flv")
        .unwrap_or_else(|| panic!("drone-1 has no livestream_flv point: {drone}"));
    assert_eq!(camera["point_type_id"], 2);
    assert_eq!(
        (nodes[1]["id"].as_u64(), nodes[1]["name"].as_str()),
        (Some(2), Some("depot-1"))
    );
    assert_eq!(nodes[1]["type_name"], "depot");
}

#[test]
fn blob_upload_download_replace_delete() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let script = b"#!/bin/sh\necho hello from $SORTIE_NODE_ID\n".to_vec();
    let config = b"speed = 5\n".to_vec();
    let form = Form::new()
        .part("c1", file(&script, "hello.sh"))
        .part("c2", file(&config, "config.toml"));
    let ids = api.post_form("/api/v2/blobs/", form).expect(200);
    assert_eq!(ids.as_object().unwrap().len(), 2, "{ids}");
    let (c1, c2) = (blob_id(&ids, "c1"), blob_id(&ids, "c2"));
    assert_ne!(c1, c2);

    let got = api.get(&format!("/api/v2/blobs/{c1}"));
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, script);
    assert_eq!(
        got.header("content-length"),
        Some(script.len().to_string().as_str())
    );
    let disposition = got
        .header("content-disposition")
        .expect("Content-Disposition");
    assert!(
        disposition.contains("filename=\"hello.sh\""),
        "{disposition}"
    );
    let etag = format!("\"{}\"", sha256_hex(&script));
    assert_eq!(got.header("etag"), Some(etag.as_str()));

    let range = send(
        api.request(Method::GET, &format!("/api/v2/blobs/{c1}"))
            .header("range", "bytes=1-3"),
    );
    assert_eq!(range.status, 206, "{}", range.text());
    assert_eq!(range.body, script[1..=3]);

    let cached = send(
        api.request(Method::GET, &format!("/api/v2/blobs/{c1}"))
            .header("if-none-match", &etag),
    );
    assert_eq!(cached.status, 304);
    assert!(cached.body.is_empty());

    // PUT with two files: the first is the new content; the id stays.
    let new_script = b"#!/bin/sh\necho replaced\n".to_vec();
    let form = Form::new()
        .part("file", file(&new_script, "replaced.sh"))
        .part("other", file(b"ignored", "ignored.txt"));
    let replaced = send(
        api.request(Method::PUT, &format!("/api/v2/blobs/{c1}"))
            .multipart(form),
    )
    .expect(200);
    assert_eq!(replaced, json!({"id": c1, "filename": "replaced.sh"}));
    let got = api.get(&format!("/api/v2/blobs/{c1}"));
    assert_eq!(got.body, new_script);
    let new_etag = format!("\"{}\"", sha256_hex(&new_script));
    assert_eq!(got.header("etag"), Some(new_etag.as_str()));

    api.delete(&format!("/api/v2/blobs/{c2}")).expect(200);
    api.get(&format!("/api/v2/blobs/{c2}")).expect_error(404);
    // The other blob is untouched.
    assert_eq!(api.get(&format!("/api/v2/blobs/{c1}")).body, new_script);
}

#[test]
fn plan_crud_with_json() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let ids = api
        .post_form(
            "/api/v2/blobs/",
            Form::new().part("script", file(b"echo hi\n", "hi.sh")),
        )
        .expect(200);
    let script = ids["script"].as_str().unwrap().to_owned();

    let input = json!({
        "name": "hello", "description": "demo", "node_id": 1,
        "files": {"script": script}, "extra": {"speed": "5"}
    });
    let plan = api.post_json("/api/v2/plans/", &input).expect(201);
    for key in ["name", "description", "node_id", "files", "extra"] {
        assert_eq!(plan[key], input[key], "field {key} of {plan}");
    }
    let id = plan["id"].as_u64().expect("a numeric plan id");
    assert!(plan["created_at"].is_string() && plan["updated_at"].is_string());

    let list = api.get("/api/v2/plans/").expect(200);
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["id"], id);
    assert_eq!(api.get(&format!("/api/v2/plans/{id}")).expect(200), plan);

    let changed = json!({
        "name": "hello-2", "description": "changed", "node_id": 2,
        "files": {}, "extra": {"speed": "7", "alt": "30"}
    });
    let updated = api
        .put_json(&format!("/api/v2/plans/{id}"), &changed)
        .expect(200);
    assert_eq!(updated["id"], id);
    for key in ["name", "description", "node_id", "files", "extra"] {
        assert_eq!(updated[key], changed[key], "field {key} of {updated}");
    }
    assert_eq!(api.get(&format!("/api/v2/plans/{id}")).expect(200), updated);

    api.delete(&format!("/api/v2/plans/{id}")).expect(200);
    api.get(&format!("/api/v2/plans/{id}")).expect_error(404);
    assert_eq!(api.get("/api/v2/plans/").expect(200), json!([]));
}

#[test]
fn plan_from_a_multipart_form() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let script = b"#!/bin/sh\necho from a form\n".to_vec();
    let form = Form::new()
        .text("name", "form-plan")
        .text("description", "made with curl -F")
        .text("node_id", "1")
        .part("script", file(&script, "run.sh"))
        .text("speed", "5");
    let plan = api.post_form("/api/v2/plans/", form).expect(201);
    assert_eq!(plan["name"], "form-plan");
    assert_eq!(plan["description"], "made with curl -F");
    assert_eq!(plan["node_id"], 1);
    assert_eq!(plan["extra"], json!({"speed": "5"}));
    let blob = plan["files"]["script"]
        .as_str()
        .unwrap_or_else(|| panic!("files.script is not a string: {plan}"));
    assert_eq!(api.get(&format!("/api/v2/blobs/{blob}")).body, script);
}

fn demo_plan(api: &Api) -> u64 {
    let plan = api
        .post_json("/api/v2/plans/", &json!({"name": "p", "node_id": 1}))
        .expect(201);
    plan["id"].as_u64().unwrap()
}

#[test]
fn jobs_running_and_cancel() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let plan = demo_plan(&api);
    let jobs = format!("/api/v2/plans/{plan}/jobs/");

    let job = api
        .post_json(&jobs, &json!({"extra": {"speed": "9"}}))
        .expect(201);
    for key in [
        "id",
        "job_id",
        "plan_id",
        "files",
        "extra",
        "created_at",
        "updated_at",
    ] {
        assert!(job.get(key).is_some(), "job lacks {key}: {job}");
    }
    assert_eq!(job["status"], "pending");
    assert_eq!(
        (job["job_id"].as_u64(), job["plan_id"].as_u64()),
        (Some(1), Some(plan))
    );
    assert_eq!(job["extra"], json!({"speed": "9"}));
    // Without a body at all, too.
    let second = send(api.request(Method::POST, &jobs)).expect(201);
    assert_eq!(second["job_id"], 2);

    let list = api.get(&jobs);
    let body = list.expect(200);
    assert_eq!(list.header("x-total-count"), Some("2"));
    let numbers: Vec<_> = body
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].clone())
        .collect();
    assert_eq!(numbers, [json!(2), json!(1)], "newest first");
    let page = api.get(&format!("{jobs}?page=1&per_page=1"));
    let page_body = page.expect(200);
    assert_eq!(page.header("x-total-count"), Some("2"));
    assert_eq!(page_body.as_array().map(Vec::len), Some(1));
    assert_eq!(page_body[0]["job_id"], 2);
    assert_eq!(api.get(&format!("{jobs}1")).expect(200)["id"], job["id"]);

    // The running job is the oldest unfinished one.
    let running = format!("/api/v2/plans/{plan}/running");
    let shown = api.get(&running).expect(200);
    assert_eq!(shown["job_id"], 1);
    assert_eq!(shown["job"]["job_id"], 1);
    let cancelled = send(api.request(Method::POST, &format!("{jobs}1/cancel"))).expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    send(api.request(Method::POST, &format!("{jobs}1/cancel"))).expect_error(409);
    let cancelled = send(api.request(Method::POST, &format!("{jobs}2/cancel"))).expect(200);
    assert_eq!(cancelled["status"], "cancelled");
    assert_eq!(api.get(&running).expect(200), json!({}));

    // POST /running starts a job only when none is unfinished.
    let started = send(api.request(Method::POST, &running)).expect(201);
    assert_eq!(
        (started["job_id"].as_u64(), started["status"].as_str()),
        (Some(3), Some("pending"))
    );
    send(api.request(Method::POST, &running)).expect_error(409);
    let stopped = api.delete(&running).expect(200);
    let stopped = stopped.as_array().expect("DELETE /running answers a list");
    assert_eq!(stopped.len(), 1);
    assert_eq!(
        (stopped[0]["job_id"].as_u64(), stopped[0]["status"].as_str()),
        (Some(3), Some("cancelled"))
    );
    assert_eq!(api.get(&running).expect(200), json!({}));
    assert_eq!(api.delete(&running).expect(200), json!([]));
}

#[test]
fn v1_aliases_and_paths_without_trailing_slash() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let me = api.get("/api/v1/user/").expect(200);
    assert_eq!(me["username"], "demo");
    assert_eq!(me["admin"], true);
    assert_eq!(api.get("/api/v1/user").expect(200)["username"], "demo");

    let plan = api
        .post_json("/api/v2/plans", &json!({"name": "no-slash", "node_id": 2}))
        .expect(201);
    let id = plan["id"].as_u64().unwrap();
    assert_eq!(
        api.get("/api/v2/plans")
            .expect(200)
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    let job = send(api.request(Method::POST, &format!("/api/v2/plans/{id}/jobs"))).expect(201);
    assert_eq!(job["job_id"], 1);
    assert_eq!(
        api.get(&format!("/api/v2/plans/{id}/jobs")).expect(200)[0]["id"],
        job["id"]
    );
    assert_eq!(
        api.get("/api/v1/nodes")
            .expect(200)
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    let uploaded = api
        .post_form("/api/v2/blobs", Form::new().part("f", file(b"x", "x.txt")))
        .expect(200);
    assert!(uploaded["f"].is_string());

    for path in [
        format!("/api/v1/plans/{id}/logs/"),
        format!("/api/v1/plans/{id}/plan_logs/"),
        format!("/api/v1/plans/{id}/logs"),
        format!("/api/v1/plans/{id}/plan_logs"),
    ] {
        let logs = api.get(&path);
        let body = logs.expect(200);
        assert_eq!(body.as_array().map(Vec::len), Some(1), "{path}: {body}");
        assert_eq!(body[0]["id"], job["id"], "{path}");
        assert_eq!(logs.header("x-total-count"), Some("1"), "{path}");
    }
}
