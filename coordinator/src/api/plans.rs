//! `/api/v2/plans/`: what to run, on which node, with which files and settings.
//!
//! As in gosd, create and replace take JSON or a multipart form: the text parts `name`,
//! `description` and `node_id` set those fields, file parts become blobs listed in `files` under
//! their field name, and any other text part lands in `extra`.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::response::Response;
use axum::Json;
use serde::{Deserialize, Deserializer};
use utoipa::ToSchema;

use super::blobs::{discard_blobs, store_files};
use super::body::{body_kind, parse_json, read_form, read_small_body, BodyKind};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::{created, AppPath, AppState, CurrentUser};
use crate::model::{Plan, StringMap};
use crate::store::PlanSpec;

/// A plan as a client sends it (JSON).
#[derive(Debug, Deserialize, ToSchema)]
pub struct PlanInput {
    /// Name.
    pub name: String,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The node that runs it.
    pub node_id: u64,
    /// Role → blob id (a string, as gosd; a number is accepted too).
    #[serde(default, deserialize_with = "blob_id_map")]
    #[schema(value_type = BTreeMap<String, String>)]
    pub files: StringMap,
    /// Setting → value.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub extra: StringMap,
}

/// Reads a `files` map whose values are blob ids as strings or numbers; `null` is empty.
pub(super) fn blob_id_map<'de, D: Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum BlobId {
        Text(String),
        Number(u64),
    }
    let map: Option<BTreeMap<String, BlobId>> = Option::deserialize(d)?;
    Ok(map
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                BlobId::Text(s) => s,
                BlobId::Number(n) => n.to_string(),
            };
            (k, v)
        })
        .collect())
}

/// Reads a string map where `null` means empty (gosd clients send `"extra": null`).
pub(super) fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<StringMap, D::Error> {
    Ok(Option::<StringMap>::deserialize(d)?.unwrap_or_default())
}

/// Reads a plan from a JSON or multipart body. Blobs made from file parts are stored; their
/// ids are returned too, so the caller can remove them if the plan is then refused.
async fn read_plan(state: &AppState, request: Request) -> ApiResult<(PlanSpec, Vec<u64>)> {
    match body_kind(request.headers())? {
        BodyKind::Json => {
            let input: PlanInput = parse_json(&read_small_body(request.into_body()).await?)?;
            let spec = PlanSpec {
                name: input.name,
                description: input.description,
                node_id: input.node_id,
                files: input.files,
                extra: input.extra,
            };
            Ok((spec, Vec::new()))
        }
        BodyKind::Multipart => {
            let mut form = read_form(request, state).await?;
            let name = form
                .texts
                .remove("name")
                .ok_or_else(|| ApiError::invalid_field("name", "missing"))?;
            let node_id = form
                .texts
                .remove("node_id")
                .ok_or_else(|| ApiError::invalid_field("node_id", "missing"))?;
            let node_id = node_id.trim().parse::<u64>().map_err(|_| {
                ApiError::invalid_field("node_id", format!("{node_id:?} is not a node id"))
            })?;
            let description = form.texts.remove("description").unwrap_or_default();
            let files = store_files(state, form.files)?;
            let new_blobs = files.values().filter_map(|id| id.parse().ok()).collect();
            let spec = PlanSpec {
                name,
                description,
                node_id,
                files,
                extra: form.texts,
            };
            Ok((spec, new_blobs))
        }
        BodyKind::Empty => Err(ApiError::bad_request(
            "expected a plan as JSON or multipart/form-data",
        )),
        BodyKind::UrlEncoded => Err(ApiError::unsupported_media_type(
            "send the plan as application/json or multipart/form-data",
        )),
    }
}

/// Every plan, by id.
#[utoipa::path(get, path = "/api/v2/plans/", tag = "plans", security(("bearer" = [])),
    responses(
        (status = 200, description = "All plans (an empty list if none)", body = Vec<Plan>),
        (status = 401, description = "No valid token", body = ErrorBody)))]
pub async fn list_plans(
    _: CurrentUser,
    State(state): State<AppState>,
) -> ApiResult<Json<Vec<Plan>>> {
    Ok(Json(state.store.list_plans()?))
}

/// Creates a plan. Its node and blobs must exist.
#[utoipa::path(post, path = "/api/v2/plans/", tag = "plans", security(("bearer" = [])),
    request_body(content(
        (PlanInput = "application/json"),
        (PlanInput = "multipart/form-data"))),
    responses(
        (status = 201, description = "The new plan", body = Plan),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "A file is larger than the upload limit", body = ErrorBody),
        (status = 415, description = "Not JSON or multipart", body = ErrorBody),
        (status = 422, description = "A field is invalid (names the field: node_id, files.<role>, ...)", body = ErrorBody)))]
pub async fn create_plan(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Response> {
    let (spec, new_blobs) = read_plan(&state, request).await?;
    let plan = state.store.create_plan(&spec).inspect_err(|_| {
        discard_blobs(&state, new_blobs);
    })?;
    state.store.flush().await?;
    tracing::info!(plan_id = plan.id, by = %user.username, "plan created");
    Ok(created(plan))
}

/// One plan.
#[utoipa::path(get, path = "/api/v2/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The plan", body = Plan),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn get_plan(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> ApiResult<Json<Plan>> {
    state
        .store
        .plan(id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("plan {id} not found")))
}

/// Replaces a plan's fields.
#[utoipa::path(put, path = "/api/v2/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    request_body(content(
        (PlanInput = "application/json"),
        (PlanInput = "multipart/form-data"))),
    responses(
        (status = 200, description = "The updated plan", body = Plan),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 415, description = "Not JSON or multipart", body = ErrorBody),
        (status = 422, description = "A field is invalid", body = ErrorBody)))]
pub async fn update_plan(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
    request: Request,
) -> ApiResult<Json<Plan>> {
    if state.store.plan(id)?.is_none() {
        return Err(ApiError::not_found(format!("plan {id} not found")));
    }
    let (spec, new_blobs) = read_plan(&state, request).await?;
    let plan = state.store.update_plan(id, &spec).inspect_err(|_| {
        discard_blobs(&state, new_blobs);
    })?;
    state.store.flush().await?;
    tracing::info!(plan_id = id, by = %user.username, "plan updated");
    Ok(Json(plan))
}

/// Deletes a plan and its job history; refused while a job of it is unfinished.
#[utoipa::path(delete, path = "/api/v2/plans/{id}", tag = "plans", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The deleted plan", body = Plan),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "A job of the plan is unfinished", body = ErrorBody)))]
pub async fn delete_plan(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> ApiResult<Json<Plan>> {
    let plan = state.store.delete_plan(id)?;
    state.store.flush().await?;
    tracing::info!(plan_id = id, by = %user.username, "plan deleted");
    Ok(Json(plan))
}
