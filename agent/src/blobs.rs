//! The coordinator's blob API, as the agent uses it: download a plan file, upload an output.
//!
//! ```text
//!  GET  {coordinator_url}/api/v2/blobs/{id}   Authorization: Bearer {api_token}  → bytes
//!  POST {coordinator_url}/api/v2/blobs/       multipart, one file field per file → {"<field>":"<id>"}
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Why a download or an upload failed. The message is meant for the job's record.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The request failed (connection, timeout, status).
    #[error("{0}")]
    Http(String),
    /// The body is not the promised size.
    #[error("size mismatch: expected {expected} bytes, got {got}{more}", more = if *.more { " or more" } else { "" })]
    Size {
        /// From the plan.
        expected: u64,
        /// Received.
        got: u64,
        /// Whether the download was cut off for being too long.
        more: bool,
    },
    /// The content is not the promised content.
    #[error("sha256 mismatch: expected {expected}, got {got}")]
    Checksum {
        /// From the plan.
        expected: String,
        /// Of what arrived.
        got: String,
    },
    /// Writing or reading the local file.
    #[error("local file: {0}")]
    Io(#[from] std::io::Error),
    /// The plan's description of the file cannot be right.
    #[error("{0}")]
    Plan(String),
    /// The upload's answer did not name a blob for our field.
    #[error("unexpected upload answer: {0}")]
    Answer(String),
}

impl From<reqwest::Error> for BlobError {
    fn from(e: reqwest::Error) -> Self {
        // reqwest's message includes the URL, which holds no secret (the token is a header).
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        BlobError::Http(text)
    }
}

/// An HTTP client for the coordinator's blob API. Cheap to clone.
#[derive(Clone)]
pub struct BlobClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl std::fmt::Debug for BlobClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobClient")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl BlobClient {
    /// A client for the coordinator at `base` (base path included, no trailing slash).
    pub fn new(base: &str, token: &str) -> Result<Self, BlobError> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            // Between reads, not in total: plan files and outputs may be large.
            .read_timeout(Duration::from_secs(60))
            .user_agent(concat!("sortie-agent/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(BlobClient {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        })
    }

    /// Downloads blob `id` into `dest` (a new file), checking that it is `size` bytes with
    /// SHA-256 `sha256` (lower-case hex). On any failure `dest` may hold partial content; the
    /// caller writes to a temporary file.
    pub async fn download(
        &self,
        id: u64,
        dest: &Path,
        size: u64,
        sha256: &str,
    ) -> Result<(), BlobError> {
        let response = self
            .http
            .get(format!("{}/api/v2/blobs/{id}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await?
            .error_for_status()?;
        let mut file = tokio::fs::File::create(dest).await?;
        let mut hasher = Sha256::new();
        let mut got = 0u64;
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            got += chunk.len() as u64;
            if got > size {
                return Err(BlobError::Size {
                    expected: size,
                    got,
                    more: true,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        if got != size {
            return Err(BlobError::Size {
                expected: size,
                got,
                more: false,
            });
        }
        let digest = hex::encode(hasher.finalize());
        if !digest.eq_ignore_ascii_case(sha256) {
            return Err(BlobError::Checksum {
                expected: sha256.to_owned(),
                got: digest,
            });
        }
        Ok(())
    }

    /// Uploads `path` as a multipart file field named `field`; returns the new blob's id.
    pub async fn upload(&self, path: &Path, field: &str) -> Result<u64, BlobError> {
        let file = tokio::fs::File::open(path).await?;
        let len = file.metadata().await?.len();
        let body = reqwest::Body::wrap_stream(tokio_util::io::ReaderStream::new(file));
        let part = reqwest::multipart::Part::stream_with_length(body, len)
            .file_name(field.to_owned())
            .mime_str("application/octet-stream")?;
        let form = reqwest::multipart::Form::new().part(field.to_owned(), part);
        let answer: BTreeMap<String, String> = self
            .http
            .post(format!("{}/api/v2/blobs/", self.base))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        answer
            .get(field)
            .and_then(|id| id.parse().ok())
            .ok_or_else(|| BlobError::Answer(format!("{answer:?}")))
    }
}

/// SHA-256 and length of a local file, lower-case hex. Blocking.
pub fn file_digest(path: &Path) -> std::io::Result<(String, u64)> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let len = std::io::copy(&mut file, &mut hasher)?;
    Ok((hex::encode(hasher.finalize()), len))
}
