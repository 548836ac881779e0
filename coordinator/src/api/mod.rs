//! The gosd REST API over axum.
//!
//! [`router`] builds the whole HTTP surface from an [`AppState`], so tests can drive it with
//! `oneshot` and the server can serve it. Routes are registered through utoipa-axum, which
//! records each one in the OpenAPI document as it is routed: the document served at
//! `/api/openapi.json` cannot list a route that does not exist or miss one that does.
//!
//! # Layout
//! - `error.rs`: [`ApiError`], the one error type, and its JSON body.
//! - `body.rs`: JSON with a small cap, multipart streamed to disk, file name sanitizing.
//! - `oauth.rs`: `POST /oauth/token` (password and refresh grants).
//! - `nodes.rs`, `blobs.rs`, `plans.rs`, `jobs.rs`, `misc.rs`: one resource each.
//! - `openapi.rs`: the document's header and security scheme.

mod blobs;
mod body;
pub mod error;
mod jobs;
mod logs;
mod misc;
mod nodes;
mod oauth;
mod openapi;
mod plans;
mod points;

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use tower_http::cors::{Any, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use error::{ApiError, ApiResult};

use crate::auth::{authenticate, parse_authorization, AuthFailure};
use crate::model::User;
use crate::mqtt::RelayHandle;
use crate::points::Points;
use crate::store::Store;

/// Settings the handlers need.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where the API is mounted, e.g. `/gosd` (empty for the root).
    pub base_path: String,
    /// Largest accepted upload, in bytes.
    pub max_upload_bytes: u64,
    /// Lifetime of access tokens, in seconds.
    pub token_ttl_secs: u64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// What `GET /api/v1/nodes/{id}/agent-config` tells agents.
    pub agent_endpoints: crate::agent_config::AgentEndpoints,
}

/// What every handler can reach. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The persistent state.
    pub store: Store,
    /// Settings.
    pub config: Arc<ApiConfig>,
    /// The MQTT relay: dispatches and cancels go through it; live events come from it.
    pub relay: RelayHandle,
    /// Live telemetry and video of the nodes' points.
    pub points: Points,
}

/// The authenticated user of a request (`Authorization: Bearer <token>`), or a 401.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub User);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let user = authenticate(&state.store, bearer_token(parts)?)??;
        Ok(CurrentUser(user))
    }
}

/// The token of the request's `Authorization` header.
fn bearer_token(parts: &Parts) -> Result<&str, AuthFailure> {
    bearer_from_headers(&parts.headers)
}

/// The token of an `Authorization` header.
fn bearer_from_headers(headers: &axum::http::HeaderMap) -> Result<&str, AuthFailure> {
    let value = headers
        .get(header::AUTHORIZATION)
        .ok_or(AuthFailure::Missing)?
        .to_str()
        .map_err(|_| AuthFailure::Malformed)?;
    parse_authorization(value)
}

/// Who may read and upload blobs: a user, or a node's agent with its node token (it downloads
/// plan files and uploads outputs, nothing else).
#[derive(Debug, Clone)]
pub enum BlobActor {
    /// A logged-in user.
    User(User),
    /// A node's agent.
    Node(u64),
}

impl BlobActor {
    /// A name for logs.
    pub fn name(&self) -> String {
        match self {
            BlobActor::User(user) => user.username.clone(),
            BlobActor::Node(id) => format!("node-{id}"),
        }
    }
}

impl FromRequestParts<AppState> for BlobActor {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let token = bearer_token(parts)?;
        if let Some(node_id) = crate::auth::authenticate_node(&state.store, token)? {
            return Ok(BlobActor::Node(node_id));
        }
        Ok(BlobActor::User(authenticate(&state.store, token)??))
    }
}

/// An authenticated admin, or a 401/403.
#[derive(Debug, Clone)]
pub struct AdminUser(pub User);

impl FromRequestParts<AppState> for AdminUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> ApiResult<Self> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, state).await?;
        if !user.admin {
            return Err(ApiError::forbidden(format!(
                "user {:?} is not an admin; only admins may change nodes",
                user.username
            )));
        }
        Ok(AdminUser(user))
    }
}

/// A path extractor whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct AppPath<T>(pub T);

/// A query extractor whose rejections are [`ApiError`]s.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct AppQuery<T>(pub T);

/// The whole HTTP surface: the API under `config.base_path`, with CORS, security headers and a
/// log line per request.
pub fn router(state: AppState) -> Router {
    let (api, openapi) = api_routes().split_for_parts();
    let openapi_json: Arc<str> = {
        let mut doc = openapi;
        doc.servers = Some(vec![utoipa::openapi::Server::new(
            if state.config.base_path.is_empty() {
                "/"
            } else {
                &state.config.base_path
            },
        )]);
        doc.to_json()
            .expect("the OpenAPI document serializes")
            .into()
    };
    let body_limit = state.config.max_upload_bytes + body::MULTIPART_SLACK;
    let api = api
        .merge(trailing_slash_aliases())
        .route(
            "/api/openapi.json",
            get(move || async move {
                (
                    [(header::CONTENT_TYPE, "application/json")],
                    openapi_json.to_string(),
                )
            }),
        )
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(body_limit as usize))
        .with_state(state.clone());
    let app = match state.config.base_path.as_str() {
        "" | "/" => api,
        base => Router::new().nest(base, api).fallback(not_found),
    };
    app.layer(axum::middleware::from_fn(log_request))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_FRAME_OPTIONS,
            HeaderValue::from_static("DENY"),
        ))
        .layer(
            // As gosd: any origin, so browser consoles on other hosts work. Tokens travel in a
            // header, not cookies, so this opens nothing to cross-site requests.
            CorsLayer::new()
                .allow_origin(Any)
                .allow_methods([
                    Method::GET,
                    Method::POST,
                    Method::PUT,
                    Method::PATCH,
                    Method::DELETE,
                    Method::OPTIONS,
                ])
                .allow_headers([
                    header::AUTHORIZATION,
                    header::CONTENT_TYPE,
                    header::RANGE,
                    header::IF_NONE_MATCH,
                ])
                .expose_headers(Any)
                .max_age(std::time::Duration::from_secs(3600)),
        )
}

/// Every documented route. The OpenAPI document is built from exactly these.
fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(misc::ok))
        .routes(routes!(oauth::token))
        .routes(routes!(misc::current_user))
        .routes(routes!(nodes::list_nodes, nodes::create_node))
        .routes(routes!(
            nodes::get_node,
            nodes::update_node,
            nodes::delete_node
        ))
        .routes(routes!(nodes::agent_config))
        .routes(routes!(points::get_point))
        .routes(routes!(points::point_events))
        .routes(routes!(points::live_flv))
        .routes(routes!(points::share_point))
        .routes(routes!(blobs::upload_blobs))
        .routes(routes!(
            blobs::download_blob,
            blobs::replace_blob,
            blobs::patch_blob,
            blobs::delete_blob
        ))
        .routes(routes!(blobs::upload_blobs_v1))
        .routes(routes!(
            blobs::download_blob_v1,
            blobs::replace_blob_v1,
            blobs::delete_blob_v1
        ))
        .routes(routes!(plans::list_plans, plans::create_plan))
        .routes(routes!(
            plans::get_plan,
            plans::update_plan,
            plans::delete_plan
        ))
        .routes(routes!(jobs::list_jobs, jobs::create_job))
        .routes(routes!(jobs::get_job))
        .routes(routes!(jobs::cancel_plan_jobs))
        .routes(routes!(jobs::cancel_jobs_running))
        .routes(routes!(jobs::cancel_job))
        .routes(routes!(jobs::retry_job))
        .routes(routes!(logs::job_log))
        .routes(routes!(
            jobs::get_running,
            jobs::start_running,
            jobs::cancel_running
        ))
        .routes(routes!(jobs::list_plan_logs_v1))
        .routes(routes!(jobs::list_plan_logs_alias_v1))
}

/// gosd answered 405 for a collection path without its trailing slash; we serve both.
fn trailing_slash_aliases() -> Router<AppState> {
    use axum::routing::{get, post};
    Router::new()
        .route("/api/v1/user", get(misc::current_user))
        .route(
            "/api/v1/nodes",
            get(nodes::list_nodes).post(nodes::create_node),
        )
        .route("/api/v2/blobs", post(blobs::upload_blobs))
        .route("/api/v1/blobs", post(blobs::upload_blobs_v1))
        .route(
            "/api/v2/plans",
            get(plans::list_plans).post(plans::create_plan),
        )
        .route(
            "/api/v2/plans/{id}/jobs",
            get(jobs::list_jobs).post(jobs::create_job),
        )
        .route("/api/v1/plans/{id}/logs", get(jobs::list_plan_logs_v1))
        .route(
            "/api/v1/plans/{id}/plan_logs",
            get(jobs::list_plan_logs_alias_v1),
        )
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}

/// One log line per request: method, path, status, latency.
async fn log_request(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let status = response.status().as_u16();
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(%method, %path, status, latency_ms, "request");
    } else {
        tracing::info!(%method, %path, status, latency_ms, "request");
    }
    response
}

/// A JSON response with status 201.
pub(crate) fn created<T: serde::Serialize>(value: T) -> Response {
    (StatusCode::CREATED, axum::Json(value)).into_response()
}
