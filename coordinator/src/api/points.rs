//! `/api/v1/nodes/{id}/points/{point}`: a point's latest value, its live Server-Sent Events,
//! its video as HTTP-FLV, and share links for players that cannot send a header.
//!
//! `{point}` is the point's id or its name (`/nodes/1/points/camera/live.flv`).

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::{bearer_from_headers, AppPath, AppQuery, AppState, CurrentUser};
use crate::auth::authenticate;
use crate::model::{Node, NodeStatus, Point, Timestamp};
use crate::points::{run_viewer, SourceHealth};

/// The point type that carries video.
pub const VIDEO_POINT_TYPE: &str = "livestream_flv";

/// Longest share link lifetime: one day.
const MAX_SHARE_TTL_S: u64 = 24 * 3600;

/// Default share link lifetime: ten minutes.
const DEFAULT_SHARE_TTL_S: u64 = 600;

/// A point with its live state.
#[derive(Debug, Serialize, ToSchema)]
pub struct PointView {
    /// Globally unique point id.
    pub id: u64,
    /// Name, unique within the node.
    pub name: String,
    /// The node it belongs to.
    pub node_id: u64,
    /// Numeric id of the point type.
    pub point_type_id: u64,
    /// The point type.
    pub point_type_name: String,
    /// Type-specific parameters (for video, `url` is the HTTP-FLV address).
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// The latest telemetry value (`null` for video, or before the first sample).
    #[schema(value_type = Object, nullable = true)]
    pub value: Option<serde_json::Value>,
    /// When the latest value was sampled on the device.
    #[schema(value_type = Option<String>)]
    pub at: Option<Timestamp>,
    /// The device's last report about the point's source.
    pub source: Option<SourceHealth>,
    /// Viewers of the video now (video points only).
    pub viewers: Option<usize>,
}

/// Who may read a point: a bearer token, or a share token in the query.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ViewerQuery {
    /// A share token from `POST .../share` (instead of an `Authorization` header).
    pub token: Option<String>,
}

/// How long a share link lives.
#[derive(Debug, Deserialize, IntoParams)]
pub struct ShareQuery {
    /// Lifetime in seconds, 1 to 86400 [default: 600].
    pub ttl_s: Option<u64>,
}

/// A share link.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShareView {
    /// The token, for `?token=`.
    pub token: String,
    /// The point's address with the token (the video for video points, else the event stream).
    pub url: String,
    /// When the token stops working.
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
}

/// The node and its point `key` (an id or a name), or 404.
fn find_point(state: &AppState, node_id: u64, key: &str) -> ApiResult<(Node, Point)> {
    let node = state
        .store
        .node(node_id)?
        .ok_or_else(|| ApiError::not_found(format!("node {node_id} not found")))?;
    let by_id = key.parse::<u64>().ok();
    let found = node
        .points
        .iter()
        .find(|p| Some(p.id) == by_id)
        .or_else(|| node.points.iter().find(|p| p.name == key))
        .cloned();
    match found {
        Some(point) => Ok((node, point)),
        None => {
            let known: Vec<String> = node
                .points
                .iter()
                .map(|p| format!("{} ({})", p.id, p.name))
                .collect();
            Err(ApiError::not_found(format!(
                "node {node_id} has no point {key:?} (its points: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )))
        }
    }
}

/// Checks the bearer token, or else the share token for this point.
fn authorize_viewer(
    state: &AppState,
    headers: &HeaderMap,
    token: Option<&str>,
    node_id: u64,
    point_id: u64,
) -> ApiResult<()> {
    match (headers.contains_key(header::AUTHORIZATION), token) {
        (false, Some(token)) => {
            let now = chrono::Utc::now().timestamp();
            state
                .points
                .share_key()
                .check(token, node_id, point_id, now)
                .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))
        }
        _ => {
            authenticate(&state.store, bearer_from_headers(headers)?)??;
            Ok(())
        }
    }
}

/// The HTTP-FLV address of a video point.
pub fn live_url(base_url: &str, node_id: u64, point_id: u64) -> String {
    format!("{base_url}/api/v1/nodes/{node_id}/points/{point_id}/live.flv")
}

/// Fills `params.url` of video points with their HTTP-FLV address (unless set), so consoles
/// that play `params.url` work.
pub fn with_live_urls(mut node: Node, base_url: &str) -> Node {
    for point in &mut node.points {
        if point.point_type_name == VIDEO_POINT_TYPE && !point.params.contains_key("url") {
            point.params.insert(
                "url".into(),
                serde_json::Value::String(live_url(base_url, node.id, point.id)),
            );
        }
    }
    node
}

/// One point with its latest value and source health.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/points/{point}", tag = "points", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id"), ("point" = String, Path, description = "Point id or name")),
    responses(
        (status = 200, description = "The point and its latest value", body = PointView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such node or point", body = ErrorBody)))]
pub async fn get_point(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath((node_id, key)): AppPath<(u64, String)>,
) -> ApiResult<Json<PointView>> {
    let (node, point) = find_point(&state, node_id, &key)?;
    let node = with_live_urls(node, &state.config.agent_endpoints.coordinator_url);
    let point = node
        .points
        .into_iter()
        .find(|p| p.id == point.id)
        .unwrap_or(point);
    let sample = state.points.sample(node_id, &point.name);
    let viewers = (point.point_type_name == VIDEO_POINT_TYPE).then(|| {
        state
            .points
            .existing_hub(node_id, &point.name)
            .map_or(0, |hub| hub.stats().viewers)
    });
    Ok(Json(PointView {
        id: point.id,
        node_id,
        point_type_id: point.point_type_id,
        source: state.points.health(node_id, &point.name),
        value: sample.as_ref().map(|s| s.value.clone()),
        at: sample.as_ref().map(|s| Timestamp(s.at)),
        name: point.name,
        point_type_name: point.point_type_name,
        params: point.params,
        viewers,
    }))
}

/// The point's values as Server-Sent Events: the latest at once (if any), then each new one
/// (`event: value`, `data: {"at":…,"value":…}`). Slow readers skip to the latest value.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/points/{point}/events", tag = "points", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id"), ("point" = String, Path, description = "Point id or name"), ViewerQuery),
    responses(
        (status = 200, description = "An event stream (text/event-stream)", content_type = "text/event-stream"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such node or point", body = ErrorBody)))]
pub async fn point_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppPath((node_id, key)): AppPath<(u64, String)>,
    AppQuery(query): AppQuery<ViewerQuery>,
) -> ApiResult<Response> {
    let (_, point) = find_point(&state, node_id, &key)?;
    authorize_viewer(&state, &headers, query.token.as_deref(), node_id, point.id)?;
    let mut values = state.points.watch_sample(node_id, &point.name);
    values.mark_changed();
    let stream = futures_util::stream::unfold(values, |mut values| async move {
        values.changed().await.ok()?;
        let sample = values.borrow_and_update().clone();
        let event = match sample {
            Some(sample) => Event::default()
                .event("value")
                .json_data(serde_json::json!({
                    "at": Timestamp(sample.at),
                    "value": sample.value,
                })),
            None => Ok(Event::default().comment("no value yet")),
        };
        Some((
            event.map_err(|e| -> Infallible { unreachable!("a JSON value serializes: {e}") }),
            values,
        ))
    });
    Ok(Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

/// The point's live video as HTTP-FLV (chunked): the FLV header, metadata and sequence
/// headers, the current group of pictures from its keyframe, then live. The device is asked to
/// stream while anyone watches. Players that cannot send headers use `?token=` from
/// `POST .../share`.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/points/{point}/live.flv", tag = "points", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id"), ("point" = String, Path, description = "Point id or name"), ViewerQuery),
    responses(
        (status = 200, description = "The live stream (video/x-flv)", content_type = "video/x-flv"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such node or point, or the point is not video", body = ErrorBody),
        (status = 503, description = "The node is offline", body = ErrorBody)))]
pub async fn live_flv(
    State(state): State<AppState>,
    headers: HeaderMap,
    AppPath((node_id, key)): AppPath<(u64, String)>,
    AppQuery(query): AppQuery<ViewerQuery>,
) -> ApiResult<Response> {
    let (node, point) = find_point(&state, node_id, &key)?;
    authorize_viewer(&state, &headers, query.token.as_deref(), node_id, point.id)?;
    if point.point_type_name != VIDEO_POINT_TYPE {
        return Err(ApiError::not_found(format!(
            "point {} of node {node_id} is {}, not {VIDEO_POINT_TYPE}: it has no video",
            point.name, point.point_type_name
        )));
    }
    let streaming = state
        .points
        .existing_hub(node_id, &point.name)
        .is_some_and(|hub| hub.stats().tags_in > 0);
    if node.status != NodeStatus::Online && !streaming {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "node_offline",
            format!("node {node_id} is offline: no video until its agent connects"),
        ));
    }
    let viewer = state.points.watch_video(node_id, &point.name).await;
    // A small channel: a slow client holds its viewer task back, which then lags behind the
    // hub and skips ahead, instead of buffering video here.
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(8);
    tokio::spawn(run_viewer(viewer, tx));
    let body = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|bytes| (Ok::<_, Infallible>(bytes), rx))
    });
    Ok((
        [
            (header::CONTENT_TYPE, "video/x-flv"),
            (header::CACHE_CONTROL, "no-cache, no-store"),
        ],
        Body::from_stream(body),
    )
        .into_response())
}

/// A short-lived link to the point for players and people without an account: the token
/// opens this point's video (or its events) and nothing else.
#[utoipa::path(post, path = "/api/v1/nodes/{id}/points/{point}/share", tag = "points", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id"), ("point" = String, Path, description = "Point id or name"), ShareQuery),
    responses(
        (status = 201, description = "The share link", body = ShareView),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such node or point", body = ErrorBody),
        (status = 422, description = "ttl_s out of range", body = ErrorBody)))]
pub async fn share_point(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath((node_id, key)): AppPath<(u64, String)>,
    AppQuery(query): AppQuery<ShareQuery>,
) -> ApiResult<Response> {
    let (_, point) = find_point(&state, node_id, &key)?;
    let ttl = query.ttl_s.unwrap_or(DEFAULT_SHARE_TTL_S);
    if ttl == 0 || ttl > MAX_SHARE_TTL_S {
        return Err(ApiError::invalid_field(
            "ttl_s",
            format!("must be between 1 and {MAX_SHARE_TTL_S} seconds, not {ttl}"),
        ));
    }
    let expires = chrono::Utc::now() + chrono::Duration::seconds(ttl as i64);
    let token = state
        .points
        .share_key()
        .issue(node_id, point.id, expires.timestamp());
    let base = &state.config.agent_endpoints.coordinator_url;
    let url = if point.point_type_name == VIDEO_POINT_TYPE {
        format!("{}?token={token}", live_url(base, node_id, point.id))
    } else {
        format!(
            "{base}/api/v1/nodes/{node_id}/points/{}/events?token={token}",
            point.id
        )
    };
    tracing::info!(node_id, point = %point.name, by = %user.username, ttl_s = ttl, "point shared");
    Ok((
        StatusCode::CREATED,
        Json(ShareView {
            token,
            url,
            expires_at: Timestamp(expires),
        }),
    )
        .into_response())
}
