//! A blocking HTTP client for the API, and whole responses to assert on.

use std::io::Read;
use std::time::Duration;

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::{DEMO_CLIENT_ID, DEMO_CLIENT_SECRET, DEMO_PASSWORD, DEMO_USER};

/// A blocking HTTP client that ignores proxy settings (everything here is loopback) and waits
/// up to two minutes per request.
pub fn http_client() -> Client {
    Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("building an HTTP client")
}

/// Logs in with the password grant (urlencoded form) and returns the access token.
///
/// # Panics
/// If the server refuses.
pub fn login(base: &str, user: &str, password: &str, client_id: &str, secret: &str) -> String {
    let reply = Reply::from(
        http_client()
            .post(format!("{base}/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", user),
                ("password", password),
                ("client_id", client_id),
                ("client_secret", secret),
            ])
            .send()
            .expect("POST /oauth/token"),
    );
    assert_eq!(
        reply.status,
        StatusCode::OK,
        "login as {user}: {}",
        reply.text()
    );
    reply.json()["access_token"]
        .as_str()
        .expect("access_token is a string")
        .to_owned()
}

/// A token of the demo user through the demo client.
pub fn demo_token(base: &str) -> String {
    login(
        base,
        DEMO_USER,
        DEMO_PASSWORD,
        DEMO_CLIENT_ID,
        DEMO_CLIENT_SECRET,
    )
}

/// A client for one server's API: paths are relative to the base URL (`/api/v2/plans/`), and
/// the token, if any, is sent as `Authorization: Bearer <token>`.
#[derive(Debug, Clone)]
pub struct Api {
    client: Client,
    base: String,
    token: Option<String>,
}

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:41234/gosd`), without a token.
    pub fn new(base: &str) -> Api {
        Api {
            client: http_client(),
            base: base.trim_end_matches('/').to_owned(),
            token: None,
        }
    }

    /// The same client, sending `token`.
    pub fn with_token(mut self, token: &str) -> Api {
        self.token = Some(token.to_owned());
        self
    }

    /// The token it sends, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The full URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A request to `path`, with the token.
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        let builder = self.client.request(method, self.url(path));
        match &self.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// `GET path`, sent.
    pub fn get(&self, path: &str) -> Reply {
        send(self.request(Method::GET, path))
    }

    /// `DELETE path`, sent.
    pub fn delete(&self, path: &str) -> Reply {
        send(self.request(Method::DELETE, path))
    }

    /// `POST path` with a JSON body, sent.
    pub fn post_json(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::POST, path).json(body))
    }

    /// `PUT path` with a JSON body, sent.
    pub fn put_json(&self, path: &str, body: &Value) -> Reply {
        send(self.request(Method::PUT, path).json(body))
    }

    /// `POST path` with a multipart form, sent.
    pub fn post_form(&self, path: &str, form: reqwest::blocking::multipart::Form) -> Reply {
        send(self.request(Method::POST, path).multipart(form))
    }
}

/// Sends a request and reads the whole answer.
///
/// # Panics
/// If the request fails at the transport level.
pub fn send(request: RequestBuilder) -> Reply {
    Reply::from(request.send().expect("sending the request"))
}

/// A whole HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    /// The status.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl From<Response> for Reply {
    fn from(mut response: Response) -> Reply {
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        response.read_to_end(&mut body).expect("reading the body");
        Reply {
            status,
            headers,
            body,
        }
    }
}

impl Reply {
    /// The body as text (lossy).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    ///
    /// # Panics
    /// If it is not JSON.
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON ({e}): {}", self.status, self.text()))
    }

    /// A header as text, if present.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status and returns the body as JSON.
    #[track_caller]
    pub fn expect(&self, status: u16) -> Value {
        assert_eq!(
            self.status.as_u16(),
            status,
            "unexpected status; body: {}",
            self.text()
        );
        self.json()
    }

    /// Asserts the status and that the body is a Sortie error (`{"error":..,"message":..}`,
    /// both strings); returns the body.
    #[track_caller]
    pub fn expect_error(&self, status: u16) -> Value {
        let body = self.expect(status);
        assert!(body["error"].is_string(), "no \"error\" string in {body}");
        assert!(
            body["message"].is_string(),
            "no \"message\" string in {body}"
        );
        body
    }
}
