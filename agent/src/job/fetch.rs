//! Plan files: downloaded once into `data_dir/cache/<sha256>`, checked, then linked into each
//! work directory that needs them.
//!
//! A cached file is checked again (size and SHA-256) before every reuse: a job may have
//! written to its hard link, and a corrupted cache entry is simply downloaded again.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use sortie_shared::PlanFile;

use super::{JobContext, PARTIAL_PREFIX};
use crate::blobs::{file_digest, BlobError};

/// Makes `dest` a verified copy of `file`.
pub(super) async fn fetch_into(
    ctx: &JobContext,
    file: &PlanFile,
    dest: &Path,
) -> Result<(), BlobError> {
    let sha256 = file.sha256.to_ascii_lowercase();
    if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BlobError::Plan(format!(
            "the plan's sha256 {:?} is not 64 hex digits",
            file.sha256
        )));
    }
    let cache_dir = ctx.data_dir.join("cache");
    tokio::fs::create_dir_all(&cache_dir).await?;
    let cached = cache_dir.join(&sha256);
    if !cached_is_valid(&cached, file.size, &sha256).await? {
        download(ctx, file, &cache_dir, &cached, &sha256).await?;
    } else {
        tracing::debug!(blob_id = file.blob_id, "plan file from the cache");
    }
    link_or_copy(cached, dest.to_owned()).await
}

/// True if the cache holds exactly this content. A bad entry is removed.
async fn cached_is_valid(path: &Path, size: u64, sha256: &str) -> Result<bool, BlobError> {
    let path = path.to_owned();
    let sha256 = sha256.to_owned();
    let valid = tokio::task::spawn_blocking(move || -> std::io::Result<bool> {
        match file_digest(&path) {
            Ok((digest, len)) if len == size && digest == sha256 => {
                // Mark it used, for the cache's retention.
                std::fs::File::options()
                    .append(true)
                    .open(&path)?
                    .set_modified(SystemTime::now())?;
                Ok(true)
            }
            Ok(_) => {
                tracing::warn!(path = %path.display(), "cached plan file is corrupt; downloading it again");
                std::fs::remove_file(&path)?;
                Ok(false)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(valid)
}

async fn download(
    ctx: &JobContext,
    file: &PlanFile,
    cache_dir: &Path,
    cached: &Path,
    sha256: &str,
) -> Result<(), BlobError> {
    // Removed on drop, so a failed or cancelled download leaves nothing behind.
    let partial = tempfile::Builder::new()
        .prefix(PARTIAL_PREFIX)
        .tempfile_in(cache_dir)?
        .into_temp_path();
    tracing::info!(
        blob_id = file.blob_id,
        size = file.size,
        "downloading a plan file"
    );
    ctx.blobs
        .download(file.blob_id, &partial, file.size, sha256)
        .await?;
    partial
        .persist(cached)
        .map_err(|e| BlobError::Io(e.error))?;
    Ok(())
}

async fn link_or_copy(from: PathBuf, to: PathBuf) -> Result<(), BlobError> {
    tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        match std::fs::remove_file(&to) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        if std::fs::hard_link(&from, &to).is_err() {
            std::fs::copy(&from, &to)?;
        }
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)??;
    Ok(())
}
