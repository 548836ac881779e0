//! Reading request bodies: JSON with a small cap, multipart streamed to disk.
//!
//! Design: the router's body limit is sized for uploads (1 GiB by default), so nothing here may
//! buffer a body whole except JSON, which is read with its own 1 MiB cap.

use std::collections::BTreeMap;

use axum::body::Body;
use axum::extract::{FromRequest, Multipart, Request};
use axum::http::{header, HeaderMap, StatusCode};
use serde::de::DeserializeOwned;

use super::error::{body_error, ApiError, ApiResult};
use super::AppState;
use crate::store::{NewBlobContent, StagedFile};

/// Largest JSON body accepted.
pub const JSON_LIMIT: usize = 1024 * 1024;
/// Largest text part of a multipart form.
const TEXT_PART_LIMIT: usize = 64 * 1024;
/// Most parts in one multipart form.
const MAX_PARTS: usize = 1000;

/// The form a request body comes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyKind {
    /// No body at all.
    Empty,
    /// `application/json` (or `+json`).
    Json,
    /// `multipart/form-data`.
    Multipart,
    /// `application/x-www-form-urlencoded`.
    UrlEncoded,
}

/// Classifies a body by its Content-Type, treating a missing type on an empty body as empty.
pub fn body_kind(headers: &HeaderMap) -> ApiResult<BodyKind> {
    let length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let Some(content_type) = headers.get(header::CONTENT_TYPE) else {
        return match length {
            Some(0) => Ok(BodyKind::Empty),
            None if !headers.contains_key(header::TRANSFER_ENCODING) => Ok(BodyKind::Empty),
            _ => Err(ApiError::unsupported_media_type(
                "missing Content-Type: send application/json or multipart/form-data",
            )),
        };
    };
    let mime = content_type
        .to_str()
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/json" => Ok(BodyKind::Json),
        m if m.starts_with("application/") && m.ends_with("+json") => Ok(BodyKind::Json),
        "multipart/form-data" => Ok(BodyKind::Multipart),
        "application/x-www-form-urlencoded" => Ok(BodyKind::UrlEncoded),
        other => Err(ApiError::unsupported_media_type(format!(
            "Content-Type {other:?} is not accepted here: send application/json or multipart/form-data"
        ))),
    }
}

/// Reads a whole body of at most [`JSON_LIMIT`] bytes.
pub async fn read_small_body(body: Body) -> ApiResult<bytes::Bytes> {
    axum::body::to_bytes(body, JSON_LIMIT).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::too_large(format!("the body is larger than {JSON_LIMIT} bytes"))
        } else {
            body_error(StatusCode::BAD_REQUEST, format!("reading the body: {e}"))
        }
    })
}

/// Parses JSON, naming the offending field on a type error (422) and the position on a syntax
/// error (400).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::invalid_field(&field, inner)
        } else {
            ApiError::bad_request(format!("malformed JSON: {inner}"))
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad_request(format!("malformed JSON: {e}")))?;
    Ok(value)
}

/// A JSON body, read with the small cap; rejections are [`ApiError`]s.
#[derive(Debug)]
pub struct AppJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for AppJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _state: &S) -> ApiResult<Self> {
        match body_kind(req.headers())? {
            BodyKind::Json => {}
            BodyKind::Empty => return Err(ApiError::bad_request("expected a JSON body")),
            _ => {
                return Err(ApiError::unsupported_media_type(
                    "expected a JSON body with 'Content-Type: application/json'",
                ))
            }
        }
        let bytes = read_small_body(req.into_body()).await?;
        parse_json(&bytes).map(AppJson)
    }
}

/// A file part of a multipart form, already on disk.
#[derive(Debug)]
pub struct UploadedFile {
    /// The form field it came in.
    pub field: String,
    /// Its content, ready to become a blob.
    pub content: NewBlobContent,
}

/// A multipart form: text parts in order, file parts staged on disk.
#[derive(Debug, Default)]
pub struct Form {
    /// Text parts, field → value (a later part of the same name wins).
    pub texts: BTreeMap<String, String>,
    /// File parts, in order.
    pub files: Vec<UploadedFile>,
}

/// Rejects a body whose declared length is already over the upload limit, before reading it.
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> ApiResult<()> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    match declared {
        Some(n) if n > limit + MULTIPART_SLACK => Err(ApiError::too_large(format!(
            "the upload is {n} bytes; the limit is {limit} bytes"
        ))),
        _ => Ok(()),
    }
}

/// Room for multipart boundaries and part headers on top of the file-size limit.
pub const MULTIPART_SLACK: u64 = 1024 * 1024;

/// Reads a multipart form, streaming each file part to a staged file (never whole in memory).
pub async fn read_form(req: Request, state: &AppState) -> ApiResult<Form> {
    let limit = state.config.max_upload_bytes;
    check_declared_length(req.headers(), limit)?;
    let mut multipart = Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("multipart body: {}", e.body_text())))?;
    let mut form = Form::default();
    let mut parts = 0;
    while let Some(mut field) = multipart.next_field().await? {
        parts += 1;
        if parts > MAX_PARTS {
            return Err(ApiError::too_large(format!("more than {MAX_PARTS} parts")));
        }
        let name = field.name().unwrap_or_default().to_owned();
        if name.is_empty() {
            return Err(ApiError::bad_request("a multipart part has no field name"));
        }
        match field.file_name().map(str::to_owned) {
            Some(raw_filename) => {
                let filename = sanitize_filename(&raw_filename, &name);
                let content_type = field
                    .content_type()
                    .filter(|t| *t != "application/octet-stream")
                    .map(str::to_owned)
                    .unwrap_or_else(|| {
                        mime_guess::from_path(&filename)
                            .first_or_octet_stream()
                            .to_string()
                    });
                let staged = stage_part(&mut field, state, limit, &name).await?;
                form.files.push(UploadedFile {
                    field: name,
                    content: NewBlobContent {
                        filename,
                        content_type,
                        staged,
                    },
                });
            }
            None => {
                let mut text = Vec::new();
                while let Some(chunk) = field.chunk().await? {
                    text.extend_from_slice(&chunk);
                    if text.len() > TEXT_PART_LIMIT {
                        return Err(ApiError::too_large(format!(
                            "text part {name:?} is larger than {TEXT_PART_LIMIT} bytes"
                        )));
                    }
                }
                let text = String::from_utf8(text).map_err(|_| {
                    ApiError::bad_request(format!("text part {name:?} is not UTF-8"))
                })?;
                form.texts.insert(name, text);
            }
        }
    }
    Ok(form)
}

async fn stage_part(
    field: &mut axum::extract::multipart::Field<'_>,
    state: &AppState,
    limit: u64,
    name: &str,
) -> ApiResult<StagedFile> {
    use crate::store::StageError;
    let stream = std::pin::pin!(field);
    match state.store.files.stage(stream, limit).await {
        Ok(staged) => Ok(staged),
        Err(StageError::TooLarge { limit }) => Err(ApiError::too_large(format!(
            "file part {name:?} is larger than the limit of {limit} bytes"
        ))),
        Err(StageError::Source(e)) if e.contains("limit") => Err(ApiError::too_large(format!(
            "the upload is larger than the limit of {limit} bytes"
        ))),
        Err(StageError::Source(e)) => Err(ApiError::bad_request(format!(
            "multipart body, part {name:?}: {e}"
        ))),
        Err(StageError::Io(e)) => Err(ApiError::internal(e)),
    }
}

/// Makes a client's file name safe to store and show: no directories, no control characters,
/// no leading dots, at most 255 bytes. Falls back to `fallback` if nothing is left.
pub fn sanitize_filename(raw: &str, fallback: &str) -> String {
    let base = raw.rsplit(['/', '\\']).next().unwrap_or_default();
    let cleaned: String = base.chars().filter(|c| !c.is_control()).collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let mut name = String::new();
    for c in cleaned.chars() {
        if name.len() + c.len_utf8() > 255 {
            break;
        }
        name.push(c);
    }
    if name.is_empty() {
        let fallback: String = fallback
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || "-_".contains(*c))
            .take(64)
            .collect();
        if fallback.is_empty() {
            "file".to_owned()
        } else {
            fallback
        }
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::sanitize_filename;

    #[test]
    fn filenames_lose_directories_and_control_characters() {
        assert_eq!(sanitize_filename("../../etc/passwd", "f"), "passwd");
        assert_eq!(sanitize_filename("..\\..\\boot.ini", "f"), "boot.ini");
        assert_eq!(sanitize_filename("..", "file"), "file");
        assert_eq!(sanitize_filename("/", "c1"), "c1");
        assert_eq!(sanitize_filename("a\u{0}b\nc.txt", "f"), "abc.txt");
        assert_eq!(sanitize_filename(".bashrc", "f"), "bashrc");
        assert_eq!(sanitize_filename("plan ü.lua", "f"), "plan ü.lua");
        assert_eq!(sanitize_filename(&"x".repeat(300), "f").len(), 255);
    }
}
