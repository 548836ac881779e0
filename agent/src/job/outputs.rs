//! Uploading a job's outputs: every regular file directly in `output/` becomes a blob and an
//! `Output{role: <file name>}` event. A failed upload is logged to the job's stderr and does
//! not change its outcome.

use std::path::Path;

use sortie_shared::{Event, JobRef};

use super::logs::JobLog;
use super::JobContext;

pub(super) async fn upload_outputs(ctx: &JobContext, job: JobRef, dir: &Path, log: &mut JobLog) {
    let mut files = Vec::new();
    match tokio::fs::read_dir(dir).await {
        Ok(mut entries) => loop {
            match entries.next_entry().await {
                Ok(Some(entry)) => {
                    // file_type() does not follow symlinks: a link out of the work dir is skipped.
                    if entry.file_type().await.is_ok_and(|t| t.is_file()) {
                        files.push(entry.file_name().to_string_lossy().into_owned());
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log.note(format!("listing outputs failed: {e}")).await;
                    break;
                }
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            log.note(format!("listing outputs failed: {e}")).await;
            return;
        }
    }
    files.sort();
    for name in files {
        match ctx.blobs.upload(&dir.join(&name), &name).await {
            Ok(blob_id) => {
                tracing::info!(file = %name, blob_id, "output uploaded");
                let event = Event::Output {
                    job,
                    role: name,
                    blob_id,
                };
                if let Err(e) = ctx.journal.append(vec![event]).await {
                    tracing::error!(error = %e, "recording an output");
                }
            }
            Err(e) => {
                tracing::warn!(file = %name, error = %e, "output upload failed");
                log.note(format!("upload of output {name:?} failed: {e}"))
                    .await;
            }
        }
    }
}
