//! `GET /api/v2/plans/{id}/jobs/{job_id}/log`: a job's output as text, optionally following it
//! live until the job ends.

use std::convert::Infallible;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::{AppPath, AppQuery, AppState, CurrentUser};
use crate::mqtt::LiveEvent;
use crate::store::StoredLogLine;

/// Which part of the log, and whether to follow it.
#[derive(Debug, Deserialize, IntoParams)]
pub struct LogQuery {
    /// Only the last N lines so far.
    pub tail: Option<u64>,
    /// Keep the response open and stream new lines until the job ends.
    #[serde(default)]
    pub follow: bool,
}

/// Lines read from the store per step, so a long log is streamed, not buffered.
const PAGE: usize = 1000;

/// A job's log as plain text, one line per output line; with `follow=true` the response stays
/// open and streams new lines until the job reaches a final state.
#[utoipa::path(get, path = "/api/v2/plans/{id}/jobs/{job_id}/log", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), ("job_id" = u64, Path, description = "Job number within the plan"), LogQuery),
    responses(
        (status = 200, description = "The log (text/plain; streamed with follow=true)", content_type = "text/plain"),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn job_log(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath((plan_id, job_id)): AppPath<(u64, u64)>,
    AppQuery(query): AppQuery<LogQuery>,
) -> ApiResult<Response> {
    // Subscribe before reading what is stored, so no line falls between the two.
    let mut live = state.relay.subscribe();
    let job = state
        .store
        .job(plan_id, job_id)?
        .ok_or_else(|| ApiError::not_found(format!("job {job_id} of plan {plan_id} not found")))?;
    let store = state.store.clone();
    let total = store.log_len(job.id)?;
    let mut next = query.tail.map_or(0, |n| total.saturating_sub(n));
    let follow = query.follow && job.status.is_active();
    let stream = async_stream(move |tx| async move {
        // What is stored, page by page.
        loop {
            let lines = match store.logs(job.id, next, PAGE) {
                Ok(lines) => lines,
                Err(e) => return tracing::warn!(error = %e, "reading a log"),
            };
            let Some(last) = lines.last() else { break };
            next = last.line + 1;
            if tx.send(render(&lines)).await.is_err() {
                return;
            }
        }
        if !follow {
            return;
        }
        loop {
            match live.recv().await {
                Ok(LiveEvent::Log { job_id, lines }) if job_id == job.id => {
                    let fresh: Vec<StoredLogLine> =
                        lines.iter().filter(|l| l.line >= next).cloned().collect();
                    if let Some(last) = fresh.last() {
                        next = last.line + 1;
                        if tx.send(render(&fresh)).await.is_err() {
                            return;
                        }
                    }
                }
                Ok(LiveEvent::Job(changed))
                    if changed.id == job.id && changed.status.is_terminal() =>
                {
                    // Lines that raced the final state are in the store by now.
                    if let Ok(rest) = store.logs(job.id, next, usize::MAX) {
                        if !rest.is_empty() {
                            let _ = tx.send(render(&rest)).await;
                        }
                    }
                    return;
                }
                Ok(_) => {}
                Err(RecvError::Lagged(_)) => {
                    // Too slow for the live feed: catch up from the store.
                    if let Ok(missed) = store.logs(job.id, next, usize::MAX) {
                        if let Some(last) = missed.last() {
                            next = last.line + 1;
                            if tx.send(render(&missed)).await.is_err() {
                                return;
                            }
                        }
                    }
                }
                Err(RecvError::Closed) => return,
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

fn render(lines: &[StoredLogLine]) -> Bytes {
    let mut text = String::new();
    for line in lines {
        text.push_str(&line.text);
        text.push('\n');
    }
    Bytes::from(text)
}

/// A stream fed by a task through a small channel: the task stops when the client goes away.
fn async_stream<F, Fut>(produce: F) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>>
where
    F: FnOnce(tokio::sync::mpsc::Sender<Bytes>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(produce(tx));
    futures_util::stream::unfold(
        rx,
        |mut rx| async move { rx.recv().await.map(|b| (Ok(b), rx)) },
    )
}
