//! Router tests: the real router and a real sled store in a temp dir, driven with `oneshot`.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use serde_json::{json, Value};
use sortie_coordinator::api::{router, ApiConfig, AppState};
use sortie_coordinator::auth::{hash_password, issue_token};
use sortie_coordinator::model::TokenKind;
use sortie_coordinator::store::Store;
use tower::ServiceExt;

struct TestApp {
    router: Router,
    store: Store,
    admin_token: String,
    user_token: String,
    _dir: tempfile::TempDir,
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: bytes::Bytes,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts an error reply: the status and a JSON body with `error` and `message`.
    fn assert_error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(
            self.status,
            status,
            "body: {}",
            String::from_utf8_lossy(&self.body)
        );
        let body = self.json();
        assert_eq!(body["error"], code, "body: {body}");
        let message = body["message"]
            .as_str()
            .expect("message is a string")
            .to_owned();
        assert_eq!(body["error_message"], message.as_str());
        message
    }
}

impl TestApp {
    fn new() -> TestApp {
        Self::with_limit(1 << 30)
    }

    fn with_limit(max_upload_bytes: u64) -> TestApp {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        sortie_coordinator::demo::seed(&store).unwrap();
        let bob = store
            .create_user("bob", hash_password("bobbobbob"), false)
            .unwrap();
        let demo = store.user_by_name("demo").unwrap().unwrap();
        let admin_token = issue_token(&store, demo.id, TokenKind::Access, None, 3600)
            .unwrap()
            .token;
        let user_token = issue_token(&store, bob.id, TokenKind::Access, None, 3600)
            .unwrap()
            .token;
        let relay = sortie_coordinator::mqtt::RelayHandle::detached();
        let state = AppState {
            points: sortie_coordinator::points::Points::new(
                relay.clone(),
                sortie_coordinator::points::ShareKey::derive("test"),
            ),
            relay,
            store: store.clone(),
            config: Arc::new(ApiConfig {
                base_path: "/gosd".into(),
                max_upload_bytes,
                token_ttl_secs: 7200,
                refresh_token_ttl_secs: 3600,
                agent_endpoints: sortie_coordinator::agent_config::AgentEndpoints {
                    mqtt: sortie_coordinator::config::MqttEndpoint::parse("mqtt://127.0.0.1:1883")
                        .unwrap(),
                    mqtt_prefix: "sortie/v1".into(),
                    coordinator_url: "http://127.0.0.1:8000/gosd".into(),
                },
            }),
        };
        TestApp {
            router: router(state),
            store,
            admin_token,
            user_token,
            _dir: dir,
        }
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body,
        }
    }

    fn request(&self, method: Method, path: &str) -> axum::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(format!("/gosd{path}"))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.admin_token),
            )
    }

    async fn get(&self, path: &str) -> Reply {
        self.send(self.request(Method::GET, path).body(Body::empty()).unwrap())
            .await
    }

    async fn json(&self, method: Method, path: &str, body: Value) -> Reply {
        self.send(
            self.request(method, path)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    async fn multipart(
        &self,
        method: Method,
        path: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> Reply {
        let (content_type, body) = multipart_body(parts);
        self.send(
            self.request(method, path)
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body))
                .unwrap(),
        )
        .await
    }

    async fn empty(&self, method: Method, path: &str) -> Reply {
        self.send(self.request(method, path).body(Body::empty()).unwrap())
            .await
    }

    async fn upload(&self, name: &str, content: &[u8]) -> u64 {
        let reply = self
            .multipart(
                Method::POST,
                "/api/v2/blobs/",
                &[("file", Some(name), content)],
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        reply.json()["file"].as_str().unwrap().parse().unwrap()
    }

    async fn plan(&self, files: Value) -> Value {
        let reply = self
            .json(
                Method::POST,
                "/api/v2/plans/",
                json!({"name": "p", "node_id": 1, "files": files}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.json());
        reply.json()
    }
}

/// A multipart body: (field, Some(filename) for a file part, content).
fn multipart_body(parts: &[(&str, Option<&str>, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "XsortieBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, filename, content) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match filename {
            Some(f) => body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"{f}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
            ),
            None => body.extend_from_slice(format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes()),
        }
        body.extend_from_slice(content);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

#[tokio::test]
async fn ok_needs_no_token_and_everything_else_does() {
    let app = TestApp::new();
    let reply = app
        .send(Request::get("/gosd/api/v2/ok").body(Body::empty()).unwrap())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.json()["ok"].is_string());

    for path in [
        "/api/v1/nodes/",
        "/api/v2/plans/",
        "/api/v2/blobs/1",
        "/api/v1/blobs/1",
        "/api/v1/user/",
    ] {
        let reply = app
            .send(
                Request::get(format!("/gosd{path}"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
        assert!(reply.headers.contains_key(header::WWW_AUTHENTICATE));
    }
    for auth in [
        "Bearer 0000",
        "deadbeef",
        "Basic abc",
        &app.admin_token.clone(),
    ] {
        let reply = app
            .send(
                Request::get("/gosd/api/v1/nodes/")
                    .header(header::AUTHORIZATION, auth)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        reply.assert_error(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    // gosd accepted `Token <token>` too.
    let reply = app
        .send(
            Request::get("/gosd/api/v1/nodes/")
                .header(header::AUTHORIZATION, format!("Token {}", app.admin_token))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
}

#[tokio::test]
async fn nodes_have_the_seed_shape_and_only_admins_change_them() {
    let app = TestApp::new();
    let nodes = app.get("/api/v1/nodes/").await.json();
    let drone = &nodes[0];
    assert_eq!(drone["id"], 1);
    assert_eq!(drone["name"], "drone-1");
    assert_eq!(drone["type_name"], "air");
    assert!(drone["description"].is_string());
    let camera = &drone["points"][0];
    for key in [
        "id",
        "name",
        "node_id",
        "point_type_id",
        "point_type_name",
        "params",
    ] {
        assert!(camera.get(key).is_some(), "point lacks {key}");
    }
    assert_eq!(camera["point_type_name"], "livestream_flv");
    assert_eq!(camera["point_type_id"], 2);
    assert_eq!(app.get("/api/v1/nodes/2").await.json()["name"], "depot-1");
    app.get("/api/v1/nodes/99")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let input = json!({"name": "mast-1", "type_name": "mast", "points": [{"name": "wx", "point_type_name": "weather"}]});
    let as_bob = app
        .send(
            Request::post("/gosd/api/v1/nodes/")
                .header(header::AUTHORIZATION, format!("Bearer {}", app.user_token))
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(input.to_string()))
                .unwrap(),
        )
        .await;
    as_bob.assert_error(StatusCode::FORBIDDEN, "forbidden");
    let created = app
        .json(Method::POST, "/api/v1/nodes/", input.clone())
        .await;
    assert_eq!(created.status, StatusCode::CREATED);
    let id = created.json()["id"].as_u64().unwrap();
    app.json(Method::POST, "/api/v1/nodes/", input)
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    let bad = app
        .json(
            Method::POST,
            "/api/v1/nodes/",
            json!({"name": "x", "type_name": "boat"}),
        )
        .await;
    assert!(bad
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
        .contains("type_name"));
    let missing = app
        .json(Method::POST, "/api/v1/nodes/", json!({"name": "x"}))
        .await;
    assert!(missing
        .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field")
        .contains("type_name"));

    let renamed = app
        .json(Method::PUT, &format!("/api/v1/nodes/{id}"), json!({"name": "mast-2", "type_name": "mast", "points": [{"name": "wx", "point_type_name": "weather"}]}))
        .await;
    assert_eq!(renamed.status, StatusCode::OK);
    assert_eq!(renamed.json()["name"], "mast-2");
    // A node with a plan cannot be deleted; without one it can.
    app.plan(json!({})).await;
    app.empty(Method::DELETE, "/api/v1/nodes/1")
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        app.empty(Method::DELETE, &format!("/api/v1/nodes/{id}"))
            .await
            .status,
        StatusCode::OK
    );
    app.get(&format!("/api/v1/nodes/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn blobs_upload_download_replace_delete() {
    let app = TestApp::new();
    let reply = app
        .multipart(
            Method::POST,
            "/api/v2/blobs/",
            &[
                ("c1", Some("a.txt"), b"first"),
                ("c2", Some("b.lua"), b"second"),
                ("note", None, b"x"),
            ],
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let ids = reply.json();
    assert_eq!(
        ids.as_object().unwrap().len(),
        2,
        "text parts are not blobs: {ids}"
    );
    let c1 = ids["c1"].as_str().expect("blob ids are strings");

    let download = app.get(&format!("/api/v2/blobs/{c1}")).await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(&download.body[..], b"first");
    assert_eq!(download.headers[header::CONTENT_LENGTH], "5");
    let disposition = download.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap();
    assert!(
        disposition.contains("filename*=UTF-8''a.txt"),
        "{disposition}"
    );
    let etag = download.headers[header::ETAG].to_str().unwrap().to_owned();
    assert_eq!(
        etag,
        format!("\"{}\"", hex::encode(sha2::Sha256::digest(b"first")))
    );

    let ranged = app
        .send(
            app.request(Method::GET, &format!("/api/v2/blobs/{c1}"))
                .header(header::RANGE, "bytes=1-3")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(ranged.status, StatusCode::PARTIAL_CONTENT);
    assert_eq!(&ranged.body[..], b"irs");
    let cached = app
        .send(
            app.request(Method::GET, &format!("/api/v2/blobs/{c1}"))
                .header(header::IF_NONE_MATCH, &etag)
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(cached.status, StatusCode::NOT_MODIFIED);
    assert_eq!(
        app.get(&format!("/api/v1/blobs/{c1}")).await.body,
        download.body
    );

    let replaced = app
        .multipart(
            Method::PUT,
            &format!("/api/v2/blobs/{c1}"),
            &[
                ("c", Some("new.txt"), b"replaced"),
                ("d", Some("other.txt"), b"x"),
            ],
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(
        replaced.json(),
        json!({"id": c1.parse::<u64>().unwrap(), "filename": "new.txt"})
    );
    assert_eq!(
        &app.get(&format!("/api/v2/blobs/{c1}")).await.body[..],
        b"replaced"
    );

    let deleted = app
        .empty(Method::DELETE, &format!("/api/v2/blobs/{c1}"))
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json()["filename"], "new.txt");
    app.get(&format!("/api/v2/blobs/{c1}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.empty(Method::DELETE, &format!("/api/v2/blobs/{c1}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.multipart(Method::PUT, "/api/v2/blobs/999", &[("c", Some("x"), b"x")])
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
}

use sha2::Digest;

#[tokio::test]
async fn blob_errors() {
    let app = TestApp::with_limit(1024);
    app.json(Method::POST, "/api/v2/blobs/", json!({}))
        .await
        .assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    app.multipart(Method::POST, "/api/v2/blobs/", &[("note", None, b"x")])
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.multipart(
        Method::POST,
        "/api/v2/blobs/",
        &[("big", Some("big.bin"), &[7u8; 2048])],
    )
    .await
    .assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    let id = app.upload("a.txt", b"a").await;
    app.multipart(
        Method::PUT,
        &format!("/api/v2/blobs/{id}"),
        &[("x", None, b"y")],
    )
    .await
    .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    // A truncated multipart body.
    let (content_type, body) = multipart_body(&[("f", Some("f.txt"), b"content")]);
    let truncated = app
        .send(
            app.request(Method::POST, "/api/v2/blobs/")
                .header(header::CONTENT_TYPE, content_type)
                .body(Body::from(body[..body.len() - 20].to_vec()))
                .unwrap(),
        )
        .await;
    truncated.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    // A multipart content type without a boundary.
    let no_boundary = app
        .send(
            app.request(Method::POST, "/api/v2/blobs/")
                .header(header::CONTENT_TYPE, "multipart/form-data")
                .body(Body::from("junk"))
                .unwrap(),
        )
        .await;
    no_boundary.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    // Nothing half-written is left behind, and the store still works.
    let tmp = app._dir.path().join("blobs/tmp");
    assert_eq!(std::fs::read_dir(tmp).unwrap().count(), 0);
    assert_eq!(
        app.get(&format!("/api/v2/blobs/{id}")).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn path_traversal_filenames_stay_inside_the_store() {
    let app = TestApp::new();
    let id = app.upload("../../../etc/passwd", b"root:x").await;
    let (blob, path) = app.store.blob(id).unwrap().unwrap();
    assert_eq!(blob.filename, "passwd");
    assert!(path.starts_with(app._dir.path().join("blobs")));
    let download = app.get(&format!("/api/v2/blobs/{id}")).await;
    assert!(download.headers[header::CONTENT_DISPOSITION]
        .to_str()
        .unwrap()
        .contains("filename=\"passwd\""));
}

#[tokio::test]
async fn plans_crud_json_and_multipart() {
    let app = TestApp::new();
    assert_eq!(
        app.get("/api/v2/plans/").await.json(),
        json!([]),
        "empty list is [], not null"
    );
    let blob = app.upload("run.sh", b"#!/bin/sh\necho hi\n").await;
    let plan = app
        .json(Method::POST, "/api/v2/plans/", json!({"name": "233", "description": "test", "node_id": 1, "files": {"file": blob.to_string()}, "extra": {"key1": "value1"}}))
        .await;
    assert_eq!(plan.status, StatusCode::CREATED);
    let plan = plan.json();
    assert_eq!(plan["name"], "233");
    assert_eq!(plan["files"]["file"], blob.to_string());
    assert_eq!(plan["extra"]["key1"], "value1");
    let id = plan["id"].as_u64().unwrap();
    assert_eq!(app.get(&format!("/api/v2/plans/{id}")).await.json(), plan);
    assert_eq!(
        app.get("/api/v2/plans").await.json()[0]["id"],
        id,
        "no trailing slash works too"
    );

    let updated = app
        .json(
            Method::PUT,
            &format!("/api/v2/plans/{id}"),
            json!({"name": "renamed", "node_id": 2, "files": null, "extra": null}),
        )
        .await;
    assert_eq!(updated.status, StatusCode::OK);
    assert_eq!(updated.json()["files"], json!({}));
    // The blob is free again once no plan uses it.
    assert_eq!(
        app.empty(Method::DELETE, &format!("/api/v2/blobs/{blob}"))
            .await
            .status,
        StatusCode::OK
    );

    let form = app
        .multipart(
            Method::POST,
            "/api/v2/plans/",
            &[
                ("name", None, b"p-lua"),
                ("description", None, b"waits"),
                ("node_id", None, b"1"),
                ("lua", Some("wait.lua"), b"print(1)"),
                ("speed", None, b"5"),
            ],
        )
        .await;
    assert_eq!(form.status, StatusCode::CREATED);
    let form = form.json();
    assert_eq!(form["extra"], json!({"speed": "5"}));
    let lua: u64 = form["files"]["lua"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        &app.get(&format!("/api/v2/blobs/{lua}")).await.body[..],
        b"print(1)"
    );

    let deleted = app
        .empty(Method::DELETE, &format!("/api/v2/plans/{id}"))
        .await;
    assert_eq!(deleted.status, StatusCode::OK);
    assert_eq!(deleted.json()["name"], "renamed");
    app.empty(Method::DELETE, &format!("/api/v2/plans/{id}"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.json(
        Method::PUT,
        "/api/v2/plans/9999",
        json!({"name": "x", "node_id": 1}),
    )
    .await
    .assert_error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn plan_input_errors_name_the_field() {
    let app = TestApp::new();
    let cases = [
        (json!({"name": "x", "node_id": 42}), "node_id"),
        (
            json!({"name": "x", "node_id": 1, "files": {"script": "777"}}),
            "files.script",
        ),
        (
            json!({"name": "x", "node_id": 1, "files": {"script": "abc"}}),
            "files.script",
        ),
        (json!({"name": "", "node_id": 1}), "name"),
        (json!({"name": "x", "node_id": "one"}), "node_id"),
        (
            json!({"name": "x", "node_id": 1, "extra": {"k": 5}}),
            "extra.k",
        ),
        (json!({"node_id": 1}), "name"),
    ];
    for (body, field) in cases {
        let reply = app.json(Method::POST, "/api/v2/plans/", body.clone()).await;
        let message = reply.assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
        assert!(message.contains(field), "{body} → {message}");
    }
    let malformed = app
        .send(
            app.request(Method::POST, "/api/v2/plans/")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from("not json"))
                .unwrap(),
        )
        .await;
    malformed.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let text = app
        .send(
            app.request(Method::POST, "/api/v2/plans/")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("x"))
                .unwrap(),
        )
        .await;
    text.assert_error(StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type");
    let none = app.empty(Method::POST, "/api/v2/plans/").await;
    none.assert_error(StatusCode::BAD_REQUEST, "bad_request");
    let huge = app
        .send(
            app.request(Method::POST, "/api/v2/plans/")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(vec![b' '; 2 << 20]))
                .unwrap(),
        )
        .await;
    huge.assert_error(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large");
    // A refused multipart plan leaves no blob behind.
    let before = app.store.blob_count();
    app.multipart(
        Method::POST,
        "/api/v2/plans/",
        &[
            ("name", None, b"x"),
            ("node_id", None, b"99"),
            ("f", Some("f"), b"x"),
        ],
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
    assert_eq!(app.store.blob_count(), before);
    assert_eq!(app.get("/api/v2/plans/").await.json(), json!([]));
    app.get("/api/v2/plans/abc")
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
}

#[tokio::test]
async fn jobs_run_list_cancel_and_running() {
    let app = TestApp::new();
    let plan = app.plan(json!({})).await;
    let id = plan["id"].as_u64().unwrap();
    let job = app
        .empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/"))
        .await;
    assert_eq!(job.status, StatusCode::CREATED);
    let job = job.json();
    for key in [
        "id",
        "job_id",
        "plan_id",
        "files",
        "extra",
        "created_at",
        "updated_at",
        "status",
    ] {
        assert!(job.get(key).is_some(), "job lacks {key}");
    }
    assert_eq!(
        (job["job_id"].as_u64(), job["plan_id"].as_u64()),
        (Some(1), Some(id))
    );
    assert_eq!(job["status"], "pending");
    let second = app
        .json(
            Method::POST,
            &format!("/api/v2/plans/{id}/jobs/"),
            json!({"extra": {"speed": "9"}}),
        )
        .await
        .json();
    assert_eq!(second["job_id"], 2);
    assert_eq!(second["extra"], json!({"speed": "9"}));
    let third = app
        .multipart(
            Method::POST,
            &format!("/api/v2/plans/{id}/jobs/"),
            &[("foo", None, b"bar"), ("f", Some("hello.txt"), b"hi")],
        )
        .await
        .json();
    assert_eq!(third["extra"], json!({"foo": "bar"}));
    assert!(third["files"]["f"].is_string());

    let list = app.get(&format!("/api/v2/plans/{id}/jobs/")).await;
    assert_eq!(
        list.status,
        StatusCode::OK,
        "a GET answers 200 (gosd said 201)"
    );
    assert_eq!(list.headers["x-total-count"], "3");
    let seqs: Vec<u64> = list
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["job_id"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs, [3, 2, 1]);
    assert_eq!(
        list.json()[0]["plan_id"],
        id,
        "plan_id is the plan (gosd said 0)"
    );
    let page = app
        .get(&format!("/api/v2/plans/{id}/jobs/?page=2&per_page=2"))
        .await
        .json();
    assert_eq!(page.as_array().unwrap().len(), 1);
    app.get(&format!("/api/v2/plans/{id}/jobs/?per_page=0"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    app.get(&format!("/api/v2/plans/{id}/jobs/?page=x"))
        .await
        .assert_error(StatusCode::BAD_REQUEST, "bad_request");
    assert_eq!(
        app.get(&format!("/api/v1/plans/{id}/logs/")).await.json(),
        list.json()
    );
    assert_eq!(
        app.get(&format!("/api/v1/plans/{id}/plan_logs/"))
            .await
            .json(),
        list.json()
    );
    assert_eq!(
        app.get(&format!("/api/v2/plans/{id}/jobs/2")).await.json()["extra"]["speed"],
        "9"
    );

    let running = app.get(&format!("/api/v2/plans/{id}/running")).await.json();
    assert_eq!(running["job_id"], 1);
    assert_eq!(running["job"]["job_id"], 1);
    app.empty(Method::POST, &format!("/api/v2/plans/{id}/running"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    app.empty(Method::DELETE, &format!("/api/v2/plans/{id}"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");

    let cancelled = app
        .empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/1/cancel"))
        .await;
    assert_eq!(cancelled.status, StatusCode::OK);
    assert_eq!(cancelled.json()["status"], "cancelled");
    assert_eq!(cancelled.json()["reason"], "cancelled by demo");
    app.empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/1/cancel"))
        .await
        .assert_error(StatusCode::CONFLICT, "conflict");
    app.empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/99/cancel"))
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");

    let stopped = app
        .empty(Method::DELETE, &format!("/api/v2/plans/{id}/running"))
        .await
        .json();
    assert_eq!(stopped.as_array().unwrap().len(), 2);
    assert_eq!(
        app.get(&format!("/api/v2/plans/{id}/running")).await.json(),
        json!({})
    );
    assert_eq!(
        app.empty(Method::DELETE, &format!("/api/v2/plans/{id}/running"))
            .await
            .json(),
        json!([])
    );
    let started = app
        .empty(Method::POST, &format!("/api/v2/plans/{id}/running"))
        .await;
    assert_eq!(started.status, StatusCode::CREATED);
    assert_eq!(started.json()["job_id"], 4);

    app.empty(Method::POST, "/api/v2/plans/9999/jobs/")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.get("/api/v2/plans/9999/jobs/")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.json(
        Method::POST,
        &format!("/api/v2/plans/{id}/jobs/"),
        json!({"files": {"x": "4242"}}),
    )
    .await
    .assert_error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_field");
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json_errors_and_cors_is_open() {
    let app = TestApp::new();
    app.get("/api/v2/nope")
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.send(Request::get("/elsewhere").body(Body::empty()).unwrap())
        .await
        .assert_error(StatusCode::NOT_FOUND, "not_found");
    app.empty(Method::PATCH, "/api/v2/plans/")
        .await
        .assert_error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    let preflight = app
        .send(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/gosd/api/v2/plans/")
                .header(header::ORIGIN, "http://console.example")
                .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
                .header(
                    header::ACCESS_CONTROL_REQUEST_HEADERS,
                    "authorization,content-type",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert!(preflight.status.is_success());
    assert_eq!(preflight.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    let allowed = preflight.headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(allowed.contains("authorization"));
    let plain = app
        .send(
            app.request(Method::GET, "/api/v1/nodes/")
                .header(header::ORIGIN, "http://console.example")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(plain.headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], "*");
    assert_eq!(plain.headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
}

#[tokio::test]
async fn current_user_has_gosds_shape() {
    let app = TestApp::new();
    let user = app.get("/api/v1/user/").await.json();
    assert_eq!(user["username"], "demo");
    assert_eq!(user["group"]["name"], "demo");
    assert!(user["extra"].is_object());
}

/// The OpenAPI document lists exactly what the router serves: every documented operation is
/// routed, and the records the API returns carry only documented fields.
#[tokio::test]
async fn openapi_document_matches_the_router() {
    let app = TestApp::new();
    let reply = app
        .send(
            Request::get("/gosd/api/openapi.json")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let doc = reply.json();
    assert_eq!(doc["servers"][0]["url"], "/gosd");
    let paths = doc["paths"].as_object().unwrap();
    let mut operations = 0;
    for (path, item) in paths {
        for method in item.as_object().unwrap().keys() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            operations += 1;
            let concrete = path.replace("{id}", "999999").replace("{job_id}", "999999");
            let reply = app
                .send(
                    app.request(method.clone(), &concrete)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await;
            assert_ne!(
                reply.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {path} is documented but not routed"
            );
            if reply.status == StatusCode::NOT_FOUND {
                let message = reply.json()["message"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(
                    !message.starts_with("no route"),
                    "{method} {path} is documented but not routed"
                );
            }
        }
    }
    assert!(operations >= 30, "only {operations} operations documented");
    for route in [
        "/api/v2/ok",
        "/oauth/token",
        "/api/v1/nodes/",
        "/api/v2/blobs/",
        "/api/v2/plans/{id}/jobs/{job_id}/cancel",
        "/api/v2/plans/{id}/running",
    ] {
        assert!(paths.contains_key(route), "{route} is not documented");
    }

    // Every field of a real record is a documented property of its schema.
    let schemas = &doc["components"]["schemas"];
    let plan = app.plan(json!({})).await;
    let job = app
        .empty(Method::POST, &format!("/api/v2/plans/{}/jobs/", plan["id"]))
        .await
        .json();
    let node = app.get("/api/v1/nodes/1").await.json();
    let blob_id = app.upload("x.txt", b"x").await;
    let blob = app
        .empty(Method::DELETE, &format!("/api/v2/blobs/{blob_id}"))
        .await
        .json();
    for (schema, record) in [
        ("Plan", &plan),
        ("Job", &job),
        ("Node", &node),
        ("Point", &node["points"][0]),
        ("Blob", &blob),
    ] {
        let properties = schemas[schema]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("no schema {schema}"));
        for key in record.as_object().unwrap().keys() {
            assert!(
                properties.contains_key(key),
                "{schema}.{key} is returned but not documented"
            );
        }
        for required in schemas[schema]["required"].as_array().into_iter().flatten() {
            assert!(
                record.get(required.as_str().unwrap()).is_some(),
                "{schema}.{required} is required but missing"
            );
        }
    }
}

#[tokio::test]
async fn seed_style_plan_wide_cancel_routes() {
    let app = TestApp::new();
    let id = app.plan(json!({})).await["id"].as_u64().unwrap();
    app.empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/"))
        .await;
    // The seed's example: POST .../jobs/cancel, without a job number.
    let stopped = app
        .empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/cancel"))
        .await;
    assert_eq!(stopped.status, StatusCode::OK);
    assert_eq!(stopped.json()[0]["status"], "cancelled");
    app.empty(Method::POST, &format!("/api/v2/plans/{id}/jobs/"))
        .await;
    let stopped = app
        .empty(Method::DELETE, &format!("/api/v2/plans/{id}/jobs/running"))
        .await;
    assert_eq!(stopped.json()[0]["job_id"], 2);
    // Job number routes still work beside them.
    assert_eq!(
        app.get(&format!("/api/v2/plans/{id}/jobs/2")).await.json()["status"],
        "cancelled"
    );
}
