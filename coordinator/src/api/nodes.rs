//! `/api/v1/nodes/`: devices and their points. Anyone with a token reads; admins change.

use axum::extract::State;
use axum::response::Response;
use axum::Json;
use serde::Deserialize;
use utoipa::ToSchema;

use super::body::AppJson;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::points::with_live_urls;
use super::{created, AdminUser, AppPath, AppState, CurrentUser};
use crate::model::Node;
use crate::store::{NodeSpec, PointSpec};

/// A node as a client sends it to create or replace one.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NodeInput {
    /// Unique name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// `air`, `depot` or `mast`.
    pub type_name: String,
    /// Its points; on update, a point keeps its id if its name is unchanged.
    #[serde(default)]
    pub points: Vec<PointInput>,
}

/// A point as a client sends it.
#[derive(Debug, Deserialize, ToSchema)]
pub struct PointInput {
    /// Name, unique within the node.
    pub name: String,
    /// `livestream_flv`, `drone-status`, `depot-status`, `weather` or a custom type.
    pub point_type_name: String,
    /// Type-specific parameters.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub params: serde_json::Map<String, serde_json::Value>,
}

impl From<NodeInput> for NodeSpec {
    fn from(input: NodeInput) -> Self {
        NodeSpec {
            name: input.name,
            description: input.description,
            type_name: input.type_name,
            points: input
                .points
                .into_iter()
                .map(|p| PointSpec {
                    name: p.name,
                    point_type_name: p.point_type_name,
                    params: p.params,
                })
                .collect(),
        }
    }
}

/// Every node, by id.
#[utoipa::path(get, path = "/api/v1/nodes/", tag = "nodes", security(("bearer" = [])),
    responses(
        (status = 200, description = "All nodes", body = Vec<Node>),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn list_nodes(
    _: CurrentUser,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Node>>> {
    let base = &state.config.agent_endpoints.coordinator_url;
    Ok(Json(
        state
            .store
            .list_nodes()?
            .into_iter()
            .map(|node| with_live_urls(node, base))
            .collect(),
    ))
}

/// Creates a node (admins only).
#[utoipa::path(post, path = "/api/v1/nodes/", tag = "nodes", security(("bearer" = [])),
    request_body = NodeInput,
    responses(
        (status = 201, description = "The new node", body = Node),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody)))]
pub async fn create_node(
    AdminUser(user): AdminUser,
    State(state): State<AppState>,
    AppJson(input): AppJson<NodeInput>,
) -> ApiResult<Response> {
    let node = state.store.create_node(&input.into())?;
    state.store.flush().await?;
    tracing::info!(node_id = node.id, name = %node.name, by = %user.username, "node created");
    Ok(created(with_live_urls(
        node,
        &state.config.agent_endpoints.coordinator_url,
    )))
}

/// One node.
#[utoipa::path(get, path = "/api/v1/nodes/{id}", tag = "nodes", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id")),
    responses(
        (status = 200, description = "The node", body = Node),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody)))]
pub async fn get_node(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> ApiResult<Json<Node>> {
    state
        .store
        .node(id)?
        .map(|node| {
            Json(with_live_urls(
                node,
                &state.config.agent_endpoints.coordinator_url,
            ))
        })
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))
}

/// Replaces a node's name, description, type and points (admins only).
#[utoipa::path(put, path = "/api/v1/nodes/{id}", tag = "nodes", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id")),
    request_body = NodeInput,
    responses(
        (status = 200, description = "The updated node", body = Node),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "The name is taken", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody)))]
pub async fn update_node(
    AdminUser(user): AdminUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
    AppJson(input): AppJson<NodeInput>,
) -> ApiResult<Json<Node>> {
    let node = state.store.update_node(id, &input.into())?;
    state.store.flush().await?;
    tracing::info!(node_id = id, by = %user.username, "node updated");
    Ok(Json(with_live_urls(
        node,
        &state.config.agent_endpoints.coordinator_url,
    )))
}

/// Deletes a node (admins only); refused while plans target it.
#[utoipa::path(delete, path = "/api/v1/nodes/{id}", tag = "nodes", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id")),
    responses(
        (status = 200, description = "The deleted node", body = Node),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 409, description = "Plans still target the node", body = ErrorBody)))]
pub async fn delete_node(
    AdminUser(user): AdminUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> ApiResult<Json<Node>> {
    let node = state.store.delete_node(id)?;
    state.store.flush().await?;
    tracing::info!(node_id = id, by = %user.username, "node deleted");
    Ok(Json(node))
}

/// The node's agent configuration file (TOML, with the node's credentials; admins only).
/// Creates the credentials on first use.
#[utoipa::path(get, path = "/api/v1/nodes/{id}/agent-config", tag = "nodes", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Node id")),
    responses(
        (status = 200, description = "The agent's config.toml", content_type = "application/toml"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 403, description = "Not an admin", body = ErrorBody),
        (status = 404, description = "No such node", body = ErrorBody)))]
pub async fn agent_config(
    AdminUser(user): AdminUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> ApiResult<Response> {
    use axum::response::IntoResponse;
    let node = state
        .store
        .node(id)?
        .ok_or_else(|| ApiError::not_found(format!("node {id} not found")))?;
    let secrets = state.store.node_secrets(id)?;
    state.store.flush().await?;
    tracing::info!(node_id = id, by = %user.username, "agent config handed out");
    let text = crate::agent_config::render(
        &secrets,
        &node,
        &state.config.agent_endpoints,
        crate::agent_config::AgentHardware::for_node(&node),
    );
    Ok((
        [
            (
                axum::http::header::CONTENT_TYPE,
                "application/toml; charset=utf-8",
            ),
            (axum::http::header::CACHE_CONTROL, "no-store"),
        ],
        text,
    )
        .into_response())
}
