//! Requests the server must refuse, and refuse well: a JSON body with `error` and `message`,
//! the right status, nothing left behind, and a server that keeps working afterwards.

use std::path::Path;

use reqwest::blocking::multipart::{Form, Part};
use reqwest::Method;
use serde_json::json;
use sortie_tests::{http_client, send, Api, Coordinator, ServeOptions};

fn upload(api: &Api, field: &str, bytes: &[u8], name: &str) -> String {
    let part = Part::bytes(bytes.to_vec()).file_name(name.to_owned());
    let ids = api
        .post_form("/api/v2/blobs/", Form::new().part(field.to_owned(), part))
        .expect(200);
    ids[field].as_str().expect("a blob id string").to_owned()
}

fn entries(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn invalid_plans_name_the_field() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let body = api
        .post_json("/api/v2/plans/", &json!({"name": "p", "node_id": 99}))
        .expect_error(422);
    assert!(
        body["message"].as_str().unwrap().contains("node_id"),
        "{body}"
    );
    let body = api
        .post_json(
            "/api/v2/plans/",
            &json!({"name": "p", "node_id": 1, "files": {"script": "4242"}}),
        )
        .expect_error(422);
    assert!(
        body["message"].as_str().unwrap().contains("files.script"),
        "{body}"
    );
    let body = api
        .post_json("/api/v2/plans/", &json!({"name": "p", "node_id": "one"}))
        .expect_error(422);
    assert!(
        body["message"].as_str().unwrap().contains("node_id"),
        "{body}"
    );

    let malformed = send(
        api.request(Method::POST, "/api/v2/plans/")
            .header("content-type", "application/json")
            .body("{\"name\": \"p\", "),
    );
    malformed.expect_error(400);
    let text = send(
        api.request(Method::POST, "/api/v2/plans/")
            .header("content-type", "text/plain")
            .body("name=p"),
    );
    assert_eq!(text.expect_error(415)["error"], "unsupported_media_type");
    let blob_as_json = api.post_json("/api/v2/blobs/", &json!({"file": "content"}));
    blob_as_json.expect_error(415);
    // Nothing was stored by any of them.
    assert_eq!(api.get("/api/v2/plans/").expect(200), json!([]));
}

#[test]
fn malformed_multipart_is_a_400_and_leaves_nothing() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let raw = |content_type: &str, body: &'static str| {
        send(
            api.request(Method::POST, "/api/v2/blobs/")
                .header("content-type", content_type)
                .body(body),
        )
    };
    let part = "--real\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhello\r\n--real--\r\n";
    raw("multipart/form-data; boundary=bogus", part).expect_error(400);
    raw("multipart/form-data", part).expect_error(400);
    let truncated = "--real\r\nContent-Disposition: form-data; name=\"f\"; filename=\"a.txt\"\r\n\r\nhello, and then noth";
    raw("multipart/form-data; boundary=real", truncated).expect_error(400);
    let bad_headers = "--real\r\nthis is not a header\r\n\r\nhello\r\n--real--\r\n";
    raw("multipart/form-data; boundary=real", bad_headers).expect_error(400);
    // Plans take multipart too.
    send(
        api.request(Method::POST, "/api/v2/plans/")
            .header("content-type", "multipart/form-data; boundary=real")
            .body(truncated),
    )
    .expect_error(400);

    assert!(entries(&server.data_dir().join("blobs/tmp")).is_empty());
    api.get("/api/v2/ok").expect(200);
    let id = upload(&api, "f", b"still works", "ok.txt");
    assert_eq!(api.get(&format!("/api/v2/blobs/{id}")).body, b"still works");
}

#[test]
fn bad_paths_and_methods_get_json_errors() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    for path in [
        "/api/v2/plans/abc",
        "/api/v2/blobs/-1",
        "/api/v2/plans/1/jobs/x",
        "/api/v1/nodes/1.5",
    ] {
        let body = api.get(path).expect_error(400);
        assert_eq!(body["error"], "bad_request", "{path}");
    }
    assert_eq!(
        api.get("/api/v2/nope").expect_error(404)["error"],
        "not_found"
    );
    // Outside the base path, too.
    let outside = send(http_client().get(server.base_url().replace("/gosd", "/elsewhere")));
    outside.expect_error(404);
    let wrong = api.delete("/api/v2/plans/").expect_error(405);
    assert_eq!(wrong["error"], "method_not_allowed");
    send(api.request(Method::PATCH, "/api/v2/plans/1/running")).expect_error(405);
    assert_eq!(
        api.get("/api/v2/plans/7").expect_error(404)["error"],
        "not_found"
    );
}

#[test]
fn a_hostile_file_name_stays_inside_the_blob_dir() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let marker = b"sortie traversal marker 7f3a\n";
    // As `curl -F 'f=@x;filename=../../etc/passwd'` sends it: the name unencoded.
    let form = Form::new()
        .percent_encode_noop()
        .part(
            "f",
            Part::bytes(marker.to_vec()).file_name("../../etc/passwd"),
        )
        .part(
            "g",
            Part::bytes(marker.to_vec()).file_name("..\\..\\boot.ini"),
        );
    let ids = api.post_form("/api/v2/blobs/", form).expect(200);
    let got = api.get(&format!("/api/v2/blobs/{}", ids["f"].as_str().unwrap()));
    assert_eq!(got.body, marker);
    let disposition = got.header("content-disposition").unwrap();
    assert!(disposition.contains("filename=\"passwd\""), "{disposition}");
    let got = api.get(&format!("/api/v2/blobs/{}", ids["g"].as_str().unwrap()));
    assert!(got
        .header("content-disposition")
        .unwrap()
        .contains("filename=\"boot.ini\""));

    // Every file the server wrote is inside its scratch dir, under a name it chose.
    let blobs = server.data_dir().join("blobs");
    for name in entries(&blobs).into_iter().filter(|n| n != "tmp") {
        assert!(
            name.len() == 32 && name.bytes().all(|b| b.is_ascii_hexdigit()),
            "blob file {name:?} is not a random name"
        );
    }
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type().unwrap().is_dir() {
                walk(&entry.path(), found);
            } else if name == "passwd" || name == "boot.ini" {
                found.push(entry.path().display().to_string());
            }
        }
    }
    let mut found = Vec::new();
    walk(server.scratch_dir(), &mut found);
    assert!(found.is_empty(), "files named by the client: {found:?}");
    let cwd = server.scratch_dir().join("work");
    for base in [
        cwd.clone(),
        server.data_dir().to_owned(),
        blobs.clone(),
        blobs.join("tmp"),
    ] {
        let target = base.join("../../etc/passwd");
        let content = std::fs::read(&target).unwrap_or_default();
        assert!(
            !content.windows(marker.len()).any(|w| w == marker),
            "the upload escaped to {}",
            target.display()
        );
    }
}

#[test]
fn a_blob_in_use_cannot_be_deleted() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.demo_api();
    let id = upload(&api, "script", b"echo in use\n", "use.sh");
    let plan = api
        .post_json(
            "/api/v2/plans/",
            &json!({"name": "p", "node_id": 1, "files": {"script": id}}),
        )
        .expect(201);
    let body = api.delete(&format!("/api/v2/blobs/{id}")).expect_error(409);
    assert_eq!(body["error"], "conflict");
    assert_eq!(
        api.get(&format!("/api/v2/blobs/{id}")).body,
        b"echo in use\n"
    );
    // Once the plan is gone, the blob may go.
    api.delete(&format!("/api/v2/plans/{}", plan["id"]))
        .expect(200);
    api.delete(&format!("/api/v2/blobs/{id}")).expect(200);
}

#[test]
fn cors_lets_any_origin_in() {
    let server = Coordinator::start(ServeOptions::demo());
    let api = server.api();
    let preflight = send(
        http_client()
            .request(Method::OPTIONS, api.url("/api/v2/plans/"))
            .header("origin", "http://console.example")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "authorization, content-type",
            ),
    );
    assert!(
        preflight.status.is_success(),
        "preflight: {} {}",
        preflight.status,
        preflight.text()
    );
    assert_eq!(preflight.header("access-control-allow-origin"), Some("*"));
    let methods = preflight
        .header("access-control-allow-methods")
        .unwrap_or_default();
    assert!(methods.contains("POST"), "allowed methods: {methods:?}");

    let with_origin = |path: &str| {
        send(
            http_client()
                .get(api.url(path))
                .header("origin", "http://console.example"),
        )
    };
    let ok = with_origin("/api/v2/ok");
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("access-control-allow-origin"), Some("*"));
    // Errors carry it too, or a browser console could not read why it failed.
    let refused = with_origin("/api/v2/plans/");
    assert_eq!(refused.status, 401);
    assert_eq!(refused.header("access-control-allow-origin"), Some("*"));
}
