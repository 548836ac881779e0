//! `POST /oauth/token`: the resource-owner password grant of RFC 6749 §4.3, and the refresh
//! grant of §6, answering in gosd's shape.
//!
//! The request may be a urlencoded form (the RFC's form), a multipart form (what gosd's curl
//! examples send) or JSON. Client credentials come in the body or as HTTP Basic (§2.3.1).
//! Errors follow §5.2: `{"error":"invalid_grant","error_description":"..."}`.

use axum::extract::{FromRequest, Multipart, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::body::{body_kind, parse_json, read_small_body, BodyKind};
use super::AppState;
use crate::auth::{hash_password, issue_token, secret_digest, verify_password};
use crate::model::{TokenKind, User};

/// A token request. Fields as in RFC 6749 §4.3.2 and §6; `scope` and other fields are
/// ignored (every token carries its user's full rights).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct TokenRequest {
    /// `password` or `refresh_token`.
    pub grant_type: Option<String>,
    /// For the password grant.
    pub username: Option<String>,
    /// For the password grant.
    pub password: Option<String>,
    /// The client's id (or send HTTP Basic).
    pub client_id: Option<String>,
    /// The client's secret (or send HTTP Basic).
    pub client_secret: Option<String>,
    /// For the refresh grant.
    pub refresh_token: Option<String>,
}

/// A successful token response.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    /// 64 hex characters; send as `Authorization: Bearer <token>`.
    pub access_token: String,
    /// Always `bearer`.
    pub token_type: &'static str,
    /// Lifetime of the access token in seconds.
    pub expires_in: u64,
    /// Issued at, Unix seconds.
    pub created_at: i64,
    /// Single-use token for `grant_type=refresh_token`.
    pub refresh_token: String,
}

/// An RFC 6749 §5.2 error.
#[derive(Debug, Serialize, ToSchema)]
pub struct OAuthErrorBody {
    /// `invalid_request`, `invalid_client`, `invalid_grant` or `unsupported_grant_type`.
    pub error: &'static str,
    /// What went wrong.
    pub error_description: String,
    /// The same text, as every other Sortie error names it.
    pub message: String,
    /// The same text, under the name gosd clients read.
    pub error_message: String,
}

#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    description: String,
    basic_challenge: bool,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            code,
            description: description.into(),
            basic_challenge: false,
        }
    }

    fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    fn invalid_grant(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_grant", description)
    }

    fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = OAuthErrorBody {
            error: self.code,
            error_description: self.description.clone(),
            message: self.description.clone(),
            error_message: self.description,
        };
        let mut response = (self.status, no_store(), Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = if self.basic_challenge {
                "Basic realm=\"sortie\""
            } else {
                "Bearer realm=\"sortie\""
            };
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static(challenge),
            );
        }
        response
    }
}

fn no_store() -> [(header::HeaderName, &'static str); 2] {
    [
        (header::CACHE_CONTROL, "no-store"),
        (header::PRAGMA, "no-cache"),
    ]
}

/// Exchanges a username and password (or a refresh token) for a bearer token.
#[utoipa::path(post, path = "/oauth/token", tag = "auth",
    request_body(content(
        (TokenRequest = "application/x-www-form-urlencoded"),
        (TokenRequest = "multipart/form-data"),
        (TokenRequest = "application/json"))),
    responses(
        (status = 200, description = "A new token", body = TokenResponse),
        (status = 400, description = "Bad request or wrong credentials (invalid_grant)", body = OAuthErrorBody),
        (status = 401, description = "Unknown client or wrong client secret (invalid_client)", body = OAuthErrorBody),
        (status = 415, description = "Not a form or JSON body", body = OAuthErrorBody)))]
pub async fn token(State(state): State<AppState>, request: Request) -> Response {
    match issue(&state, request).await {
        Ok(body) => (no_store(), Json(body)).into_response(),
        Err(e) => {
            tracing::info!(error = e.code, reason = %e.description, "token request refused");
            e.into_response()
        }
    }
}

async fn issue(state: &AppState, request: Request) -> Result<TokenResponse, OAuthError> {
    let basic = basic_credentials(request.headers())?;
    let mut form = read_token_request(state, request).await?;
    if let Some((id, secret)) = basic {
        form.client_id = Some(id);
        form.client_secret = Some(secret);
    }
    let grant_type = form
        .grant_type
        .as_deref()
        .filter(|g| !g.is_empty())
        .ok_or_else(|| OAuthError::invalid_request("grant_type is required"))?;
    let client_id = match grant_type {
        "password" | "refresh_token" => check_client(state, &form)?,
        other => {
            return Err(OAuthError::new(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                format!("grant_type {other:?} is not supported: use password or refresh_token"),
            ))
        }
    };
    let user = match grant_type {
        "password" => password_grant(state, &form).await?,
        _ => refresh_grant(state, &form, &client_id)?,
    };
    let config = &state.config;
    let internal = |e: crate::store::StoreError| {
        tracing::error!(error = %e, "storing a token");
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "could not store the token",
        )
    };
    let access = issue_token(
        &state.store,
        user.id,
        TokenKind::Access,
        Some(&client_id),
        config.token_ttl_secs,
    )
    .map_err(internal)?;
    let refresh = issue_token(
        &state.store,
        user.id,
        TokenKind::Refresh,
        Some(&client_id),
        config.refresh_token_ttl_secs,
    )
    .map_err(internal)?;
    state.store.flush().await.map_err(internal)?;
    tracing::info!(user = %user.username, client = %client_id, grant_type, "token issued");
    Ok(TokenResponse {
        access_token: access.token,
        token_type: "bearer",
        expires_in: access.expires_in,
        created_at: access.created_at,
        refresh_token: refresh.token,
    })
}

/// Client credentials from an `Authorization: Basic` header, if one is sent.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().unwrap_or_default();
    let Some(encoded) = value
        .split_once(' ')
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("basic"))
        .map(|(_, rest)| rest.trim())
    else {
        return Ok(None);
    };
    let bad = || {
        let mut e = OAuthError::invalid_client("malformed HTTP Basic client credentials");
        e.basic_challenge = true;
        e
    };
    let decoded = {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| bad())?
    };
    let text = String::from_utf8(decoded).map_err(|_| bad())?;
    let (id, secret) = text.split_once(':').ok_or_else(bad)?;
    let unescape = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    Ok(Some((unescape(id), unescape(secret))))
}

async fn read_token_request(
    state: &AppState,
    request: Request,
) -> Result<TokenRequest, OAuthError> {
    let unsupported = || {
        OAuthError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "invalid_request",
            "send the token request as application/x-www-form-urlencoded, multipart/form-data or application/json",
        )
    };
    let kind = body_kind(request.headers()).map_err(|_| unsupported())?;
    match kind {
        BodyKind::Empty => Err(OAuthError::invalid_request(
            "empty body: send grant_type, username, password, client_id and client_secret",
        )),
        BodyKind::Json => {
            let bytes = read_small_body(request.into_body())
                .await
                .map_err(|e| OAuthError::invalid_request(e.message))?;
            parse_json(&bytes).map_err(|e| OAuthError::invalid_request(e.message))
        }
        BodyKind::UrlEncoded => {
            let bytes = read_small_body(request.into_body())
                .await
                .map_err(|e| OAuthError::invalid_request(e.message))?;
            serde_urlencoded::from_bytes(&bytes)
                .map_err(|e| OAuthError::invalid_request(format!("malformed form: {e}")))
        }
        BodyKind::Multipart => {
            let mut multipart = Multipart::from_request(request, state)
                .await
                .map_err(|e| OAuthError::invalid_request(e.body_text()))?;
            let mut fields = serde_json::Map::new();
            while let Some(field) = multipart.next_field().await.map_err(|e| {
                OAuthError::invalid_request(format!("multipart body: {}", e.body_text()))
            })? {
                let name = field.name().unwrap_or_default().to_owned();
                if field.file_name().is_some() {
                    return Err(OAuthError::invalid_request(format!(
                        "field {name:?} is a file; the token request takes text fields only"
                    )));
                }
                let text = field.text().await.map_err(|e| {
                    OAuthError::invalid_request(format!("multipart body: {}", e.body_text()))
                })?;
                if text.len() > 4096 {
                    return Err(OAuthError::invalid_request(format!(
                        "field {name:?} is too long"
                    )));
                }
                fields.insert(name, serde_json::Value::String(text));
            }
            serde_json::from_value(serde_json::Value::Object(fields))
                .map_err(|e| OAuthError::invalid_request(e.to_string()))
        }
    }
}

/// Authenticates the client; returns its id.
fn check_client(state: &AppState, form: &TokenRequest) -> Result<String, OAuthError> {
    let (Some(id), Some(secret)) = (form.client_id.as_deref(), form.client_secret.as_deref())
    else {
        return Err(OAuthError::invalid_client(
            "client_id and client_secret are required (register one with `sortie-coordinator client add`)",
        ));
    };
    let client = state.store.client(id).map_err(|e| {
        tracing::error!(error = %e, "reading a client");
        OAuthError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "could not read clients",
        )
    })?;
    match client {
        Some(client) if client.secret_sha256 == hex::encode(secret_digest(secret)) => {
            Ok(client.client_id)
        }
        _ => Err(OAuthError::invalid_client(
            "unknown client or wrong client secret",
        )),
    }
}

async fn password_grant(state: &AppState, form: &TokenRequest) -> Result<User, OAuthError> {
    let (Some(username), Some(password)) = (form.username.as_deref(), form.password.as_deref())
    else {
        return Err(OAuthError::invalid_request(
            "the password grant needs username and password",
        ));
    };
    let user = state.store.user_by_name(username).ok().flatten();
    let password = password.to_owned();
    // Verify against a throwaway hash for unknown users too, so timing does not tell which
    // usernames exist.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| {
            DUMMY_HASH
                .get_or_init(|| hash_password("not a password"))
                .clone()
        });
    let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
        .await
        .unwrap_or(false);
    match user {
        Some(user) if matches => Ok(user),
        _ => Err(OAuthError::invalid_grant("wrong username or password")),
    }
}

static DUMMY_HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn refresh_grant(
    state: &AppState,
    form: &TokenRequest,
    client_id: &str,
) -> Result<User, OAuthError> {
    let token = form.refresh_token.as_deref().ok_or_else(|| {
        OAuthError::invalid_request("the refresh_token grant needs refresh_token")
    })?;
    let invalid = || OAuthError::invalid_grant("unknown, used or expired refresh token");
    // Taking the record makes the refresh token single-use.
    let record = state
        .store
        .take_token(&secret_digest(token))
        .ok()
        .flatten()
        .ok_or_else(invalid)?;
    let fresh = record.kind == TokenKind::Refresh
        && record.expires_at > chrono::Utc::now().timestamp()
        && record.client_id.as_deref() == Some(client_id);
    if !fresh {
        return Err(invalid());
    }
    state
        .store
        .user(record.user_id)
        .ok()
        .flatten()
        .ok_or_else(invalid)
}
