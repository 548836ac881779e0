//! `/api/v2/blobs/` (and the same under `/api/v1/blobs/`): stored files.
//!
//! Uploads stream to disk; downloads are served from the file with Range support, an ETag of
//! the content's SHA-256, and the original file name.

use std::collections::BTreeMap;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;
use utoipa::ToSchema;

use super::body::{body_kind, read_form, BodyKind, Form};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::{AppPath, AppState, BlobActor, CurrentUser};
use crate::model::Blob;
use crate::store::NewBlobContent;

/// The answer to a replace: gosd's shape.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplacedBlob {
    /// The blob's id (unchanged).
    pub id: u64,
    /// The new file name.
    pub filename: String,
}

/// Reads a multipart upload, refusing other bodies.
pub(super) async fn read_upload(state: &AppState, request: Request) -> ApiResult<Form> {
    match body_kind(request.headers())? {
        BodyKind::Multipart => read_form(request, state).await,
        _ => Err(ApiError::unsupported_media_type(
            "upload files as multipart/form-data (curl -F field=@file)",
        )),
    }
}

/// Stores each staged file of `form` as a blob; returns field → blob id. If one fails, the
/// blobs already stored for this request are removed again.
pub(super) fn store_files(
    state: &AppState,
    form_files: Vec<super::body::UploadedFile>,
) -> ApiResult<BTreeMap<String, String>> {
    let mut stored: Vec<(String, Blob)> = Vec::new();
    for file in form_files {
        if stored.iter().any(|(field, _)| *field == file.field) {
            discard_blobs(state, stored.iter().map(|(_, b)| b.id));
            return Err(ApiError::bad_request(format!(
                "file field {:?} appears more than once",
                file.field
            )));
        }
        match state.store.create_blob(file.content) {
            Ok(blob) => stored.push((file.field, blob)),
            Err(e) => {
                discard_blobs(state, stored.iter().map(|(_, b)| b.id));
                return Err(e.into());
            }
        }
    }
    Ok(stored
        .into_iter()
        .map(|(field, blob)| (field, blob.id.to_string()))
        .collect())
}

/// Deletes blobs created for a request that then failed.
pub(super) fn discard_blobs(state: &AppState, ids: impl IntoIterator<Item = u64>) {
    for id in ids {
        if let Err(e) = state.store.delete_blob(id) {
            tracing::warn!(blob_id = id, error = %e, "could not discard blob of a failed request");
        }
    }
}

/// Uploads files: each file field becomes a blob. Text fields are ignored.
#[utoipa::path(post, path = "/api/v2/blobs/", tag = "blobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "Any number of file fields"),
    responses(
        (status = 200, description = "Field name → new blob id (as a string), e.g. {\"c1\":\"8\",\"c2\":\"9\"}", body = BTreeMap<String, String>),
        (status = 400, description = "No file field, or a malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = ErrorBody)))]
pub async fn upload_blobs(
    actor: BlobActor,
    State(state): State<AppState>,
    request: Request,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    let form = read_upload(&state, request).await?;
    if form.files.is_empty() {
        return Err(ApiError::bad_request(
            "no file part: send files as multipart file fields (curl -F name=@path)",
        ));
    }
    let ids = store_files(&state, form.files)?;
    state.store.flush().await?;
    tracing::info!(by = %actor.name(), blobs = ?ids, "blobs uploaded");
    // gosd answers 200 here (not 201); clients check for it.
    Ok(Json(ids))
}

/// Downloads a blob. Supports `Range` and `If-None-Match`.
#[utoipa::path(get, path = "/api/v2/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    responses(
        (status = 200, description = "The content, with Content-Disposition, ETag and Content-Length", content_type = "application/octet-stream"),
        (status = 206, description = "The requested range"),
        (status = 304, description = "Unchanged (If-None-Match)"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 416, description = "Unsatisfiable range")))]
pub async fn download_blob(
    _: BlobActor,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
    request: Request,
) -> ApiResult<Response> {
    let (blob, path) = state
        .store
        .blob(id)?
        .ok_or_else(|| ApiError::not_found(format!("blob {id} not found")))?;
    let etag = format!("\"{}\"", blob.sha256);
    let etag_matches = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if etag_matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag)]).into_response());
    }
    let mut response = ServeFile::new(&path)
        .oneshot(request)
        .await
        .map_err(ApiError::internal)?
        .into_response();
    if response.status() == StatusCode::NOT_FOUND {
        // The record exists but the file is gone: the content was replaced while we looked.
        return Err(ApiError::not_found(format!(
            "blob {id} changed while being read; retry"
        )));
    }
    let headers = response.headers_mut();
    headers.insert(header::ETAG, header_value(&etag));
    headers.insert(header::CONTENT_TYPE, header_value(&blob.content_type));
    headers.insert(
        header::CONTENT_DISPOSITION,
        header_value(&content_disposition(&blob.filename)),
    );
    headers.remove(header::LAST_MODIFIED);
    Ok(response)
}

fn header_value(text: &str) -> HeaderValue {
    HeaderValue::from_str(text)
        .unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"))
}

/// Bytes that RFC 5987's `attr-char` does not allow, and so are percent-encoded.
const RFC5987_ESCAPED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment; filename="<ascii>"; filename*=UTF-8''<percent-encoded>` (RFC 6266).
fn content_disposition(filename: &str) -> String {
    let ascii: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = percent_encoding::utf8_percent_encode(filename, RFC5987_ESCAPED);
    format!("attachment; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

/// Replaces a blob's content; its id stays. With several file fields, the first is taken.
#[utoipa::path(put, path = "/api/v2/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    request_body(content_type = "multipart/form-data", description = "One file field (any name)"),
    responses(
        (status = 200, description = "The blob's id and new file name", body = ReplacedBlob),
        (status = 400, description = "No file field, or a malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 413, description = "Larger than the upload limit", body = ErrorBody),
        (status = 415, description = "Not multipart/form-data", body = ErrorBody)))]
pub async fn replace_blob(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
    request: Request,
) -> ApiResult<Json<ReplacedBlob>> {
    if state.store.blob(id)?.is_none() {
        return Err(ApiError::not_found(format!("blob {id} not found")));
    }
    let form = read_upload(&state, request).await?;
    let content: NewBlobContent = form
        .files
        .into_iter()
        .next()
        .map(|f| f.content)
        .ok_or_else(|| {
            ApiError::bad_request("no file part: send the new content as a multipart file field")
        })?;
    let blob = state.store.replace_blob(id, content)?;
    state.store.flush().await?;
    tracing::info!(blob_id = id, by = %user.username, "blob replaced");
    Ok(Json(ReplacedBlob {
        id: blob.id,
        filename: blob.filename,
    }))
}

/// The same as PUT (gosd accepted both).
#[utoipa::path(patch, path = "/api/v2/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    request_body(content_type = "multipart/form-data", description = "One file field (any name)"),
    responses(
        (status = 200, description = "The blob's id and new file name", body = ReplacedBlob),
        (status = 404, description = "No such blob", body = ErrorBody)))]
pub async fn patch_blob(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
    request: Request,
) -> ApiResult<Json<ReplacedBlob>> {
    replace_blob(user, state, id, request).await
}

/// Deletes a blob; refused while a plan or job uses it.
#[utoipa::path(delete, path = "/api/v2/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    responses(
        (status = 200, description = "The deleted blob's record", body = Blob),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 409, description = "A plan or job uses the blob", body = ErrorBody)))]
pub async fn delete_blob(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(id): AppPath<u64>,
) -> ApiResult<Json<Blob>> {
    let blob = state.store.delete_blob(id)?;
    state.store.flush().await?;
    tracing::info!(blob_id = id, by = %user.username, "blob deleted");
    Ok(Json(blob))
}

// gosd served blobs under /api/v1 too (and skipped authentication there; we do not).

/// v1 alias of `POST /api/v2/blobs/`.
#[utoipa::path(post, path = "/api/v1/blobs/", tag = "blobs", security(("bearer" = [])),
    request_body(content_type = "multipart/form-data", description = "Any number of file fields"),
    responses((status = 200, description = "Field name → new blob id", body = BTreeMap<String, String>)))]
pub async fn upload_blobs_v1(
    user: BlobActor,
    state: State<AppState>,
    request: Request,
) -> ApiResult<Json<BTreeMap<String, String>>> {
    upload_blobs(user, state, request).await
}

/// v1 alias of `GET /api/v2/blobs/{id}`.
#[utoipa::path(get, path = "/api/v1/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    responses((status = 200, description = "The content", content_type = "application/octet-stream"),
        (status = 404, description = "No such blob", body = ErrorBody)))]
pub async fn download_blob_v1(
    user: BlobActor,
    state: State<AppState>,
    id: AppPath<u64>,
    request: Request,
) -> ApiResult<Response> {
    download_blob(user, state, id, request).await
}

/// v1 alias of `PUT /api/v2/blobs/{id}`.
#[utoipa::path(put, path = "/api/v1/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    request_body(content_type = "multipart/form-data", description = "One file field (any name)"),
    responses((status = 200, description = "The blob's id and new file name", body = ReplacedBlob),
        (status = 404, description = "No such blob", body = ErrorBody)))]
pub async fn replace_blob_v1(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
    request: Request,
) -> ApiResult<Json<ReplacedBlob>> {
    replace_blob(user, state, id, request).await
}

/// v1 alias of `DELETE /api/v2/blobs/{id}`.
#[utoipa::path(delete, path = "/api/v1/blobs/{id}", tag = "blobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Blob id")),
    responses((status = 200, description = "The deleted blob's record", body = Blob),
        (status = 404, description = "No such blob", body = ErrorBody),
        (status = 409, description = "A plan or job uses the blob", body = ErrorBody)))]
pub async fn delete_blob_v1(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
) -> ApiResult<Json<Blob>> {
    delete_blob(user, state, id).await
}
