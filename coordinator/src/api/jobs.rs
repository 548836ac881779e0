//! `/api/v2/plans/{id}/jobs/`: runs of a plan, their cancel, and gosd's `running` view.

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use sortie_shared::JobEvent;
use utoipa::{IntoParams, ToSchema};

use super::blobs::{discard_blobs, store_files};
use super::body::{body_kind, parse_json, read_form, read_small_body, BodyKind};
use super::error::{ApiError, ApiResult, ErrorBody};
use super::plans::{blob_id_map, null_as_empty};
use super::{created, AppPath, AppQuery, AppState, CurrentUser};
use crate::model::{Job, StringMap};
use crate::mqtt::RelayRequest;
use crate::store::{JobInputs, JobUpdate};

/// Per-job inputs (JSON). Both maps override the plan's for this run.
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct JobInput {
    /// Setting → value.
    #[serde(default, deserialize_with = "null_as_empty")]
    pub extra: StringMap,
    /// Role → blob id.
    #[serde(default, deserialize_with = "blob_id_map")]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub files: StringMap,
}

/// Paging of a job list. Without either parameter, every job is listed.
#[derive(Debug, Deserialize, IntoParams)]
pub struct JobListQuery {
    /// Page number, from 1.
    pub page: Option<u64>,
    /// Jobs per page, 1 to 1000 (default 50 when `page` is given).
    pub per_page: Option<u64>,
}

/// gosd's nested `job` object in the `running` view.
#[derive(Debug, Serialize, ToSchema)]
pub struct GosdJobRef {
    /// The per-plan sequence number.
    pub job_id: u64,
    /// The job's own files.
    pub files: StringMap,
    /// The job's own extra.
    pub extra: StringMap,
}

/// The plan's running job: the job itself plus gosd's nested `job` object.
#[derive(Debug, Serialize, ToSchema)]
pub struct RunningJob {
    /// The job.
    #[serde(flatten)]
    pub job: Job,
    /// gosd's reference to the same job.
    #[serde(rename = "job")]
    pub gosd: GosdJobRef,
}

type JobPath = AppPath<(u64, u64)>;

async fn read_job_inputs(state: &AppState, request: Request) -> ApiResult<(JobInputs, Vec<u64>)> {
    match body_kind(request.headers())? {
        BodyKind::Empty => Ok((JobInputs::default(), Vec::new())),
        BodyKind::Json => {
            let bytes = read_small_body(request.into_body()).await?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok((JobInputs::default(), Vec::new()));
            }
            let input: JobInput = parse_json(&bytes)?;
            Ok((
                JobInputs {
                    files: input.files,
                    extra: input.extra,
                },
                Vec::new(),
            ))
        }
        BodyKind::Multipart => {
            let form = read_form(request, state).await?;
            let files = store_files(state, form.files)?;
            let new_blobs = files.values().filter_map(|id| id.parse().ok()).collect();
            Ok((
                JobInputs {
                    files,
                    extra: form.texts,
                },
                new_blobs,
            ))
        }
        BodyKind::UrlEncoded => Err(ApiError::unsupported_media_type(
            "send job inputs as application/json or multipart/form-data",
        )),
    }
}

async fn create(
    state: &AppState,
    user: &str,
    plan_id: u64,
    request: Request,
    only_if_idle: bool,
) -> ApiResult<Response> {
    if state.store.plan(plan_id)?.is_none() {
        return Err(ApiError::not_found(format!("plan {plan_id} not found")));
    }
    let (inputs, new_blobs) = read_job_inputs(state, request).await?;
    let job = state
        .store
        .create_job(plan_id, &inputs, only_if_idle)
        .inspect_err(|_| discard_blobs(state, new_blobs))?;
    state.store.flush().await?;
    tracing::info!(
        plan_id,
        job_id = job.job_id,
        id = job.id,
        by = user,
        "job created"
    );
    state
        .relay
        .send(RelayRequest::JobCreated(job.clone()))
        .await;
    Ok(created(job))
}

/// Starts a run of the plan: the job is stored as `pending` and handed to the node.
#[utoipa::path(post, path = "/api/v2/plans/{id}/jobs/", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    request_body(description = "Optional inputs: JSON {\"extra\":{...},\"files\":{...}} or a multipart form (text parts → extra, file parts → files)",
        content((JobInput = "application/json"), (JobInput = "multipart/form-data"))),
    responses(
        (status = 201, description = "The new job", body = Job),
        (status = 400, description = "Malformed body", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 415, description = "Not JSON or multipart", body = ErrorBody),
        (status = 422, description = "An input is invalid", body = ErrorBody)))]
pub async fn create_job(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(plan_id): AppPath<u64>,
    request: Request,
) -> ApiResult<Response> {
    create(&state, &user.username, plan_id, request, false).await
}

/// The plan's jobs, newest first. Sends `X-Total-Count`.
#[utoipa::path(get, path = "/api/v2/plans/{id}/jobs/", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), JobListQuery),
    responses(
        (status = 200, description = "The jobs, newest first", body = Vec<Job>),
        (status = 400, description = "Bad paging parameters", body = ErrorBody),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn list_jobs(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath(plan_id): AppPath<u64>,
    AppQuery(query): AppQuery<JobListQuery>,
) -> ApiResult<Response> {
    if state.store.plan(plan_id)?.is_none() {
        return Err(ApiError::not_found(format!("plan {plan_id} not found")));
    }
    let page = match (query.page, query.per_page) {
        (None, None) => None,
        (page, per_page) => {
            let page = page.unwrap_or(1);
            let per_page = per_page.unwrap_or(50);
            if page == 0 {
                return Err(ApiError::bad_request("page counts from 1"));
            }
            if !(1..=1000).contains(&per_page) {
                return Err(ApiError::bad_request("per_page must be between 1 and 1000"));
            }
            Some((page, per_page))
        }
    };
    let listed = state.store.list_jobs(plan_id, page)?;
    let total = HeaderValue::from(listed.total);
    Ok((
        [(HeaderName::from_static("x-total-count"), total)],
        Json(listed.jobs),
    )
        .into_response())
}

/// One job, by its per-plan number.
#[utoipa::path(get, path = "/api/v2/plans/{id}/jobs/{job_id}", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), ("job_id" = u64, Path, description = "Job number within the plan")),
    responses(
        (status = 200, description = "The job", body = Job),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody)))]
pub async fn get_job(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath((plan_id, job_id)): JobPath,
) -> ApiResult<Json<Job>> {
    state
        .store
        .job(plan_id, job_id)?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("job {job_id} of plan {plan_id} not found")))
}

async fn cancel(state: &AppState, user: &str, plan_id: u64, job_id: u64) -> ApiResult<Job> {
    let reason = format!("cancelled by {user}");
    let job = state.store.transition_job(
        plan_id,
        job_id,
        JobEvent::Cancel,
        &JobUpdate::reason(reason.clone()),
    )?;
    tracing::warn!(plan_id, job_id, by = user, status = %job.status, "job cancel requested");
    // Design: the cancel goes out before the state is flushed; an emergency stop must not wait
    // for the disk. If the coordinator dies now, the job is still `canceling` after restart and
    // the cancel is sent again when the node is heard from.
    state
        .relay
        .send(RelayRequest::Cancel {
            job: job.clone(),
            reason,
        })
        .await;
    Ok(job)
}

/// Emergency stop of one job. A pending job is cancelled at once; a dispatched or running one
/// becomes `canceling` until its node confirms.
#[utoipa::path(post, path = "/api/v2/plans/{id}/jobs/{job_id}/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), ("job_id" = u64, Path, description = "Job number within the plan")),
    responses(
        (status = 200, description = "The job, now canceling or cancelled", body = Job),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 409, description = "The job already ended", body = ErrorBody)))]
pub async fn cancel_job(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath((plan_id, job_id)): JobPath,
) -> ApiResult<Json<Job>> {
    let job = cancel(&state, &user.username, plan_id, job_id).await?;
    state.store.flush().await?;
    Ok(Json(job))
}

/// The plan's running job (its oldest unfinished one), or `{}` when idle.
#[utoipa::path(get, path = "/api/v2/plans/{id}/running", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The running job, or {} when idle", body = RunningJob),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn get_running(
    _: CurrentUser,
    State(state): State<AppState>,
    AppPath(plan_id): AppPath<u64>,
) -> ApiResult<Response> {
    if state.store.plan(plan_id)?.is_none() {
        return Err(ApiError::not_found(format!("plan {plan_id} not found")));
    }
    let running = state.store.active_jobs(plan_id)?.into_iter().next();
    Ok(match running {
        Some(job) => Json(RunningJob {
            gosd: GosdJobRef {
                job_id: job.job_id,
                files: job.files.clone(),
                extra: job.extra.clone(),
            },
            job,
        })
        .into_response(),
        None => Json(serde_json::json!({})).into_response(),
    })
}

/// Starts a run of the plan unless one is unfinished (then 409).
#[utoipa::path(post, path = "/api/v2/plans/{id}/running", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    request_body(description = "Optional inputs, as for POST .../jobs/",
        content((JobInput = "application/json"), (JobInput = "multipart/form-data"))),
    responses(
        (status = 201, description = "The new job", body = Job),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody),
        (status = 409, description = "The plan already has an unfinished job", body = ErrorBody)))]
pub async fn start_running(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(plan_id): AppPath<u64>,
    request: Request,
) -> ApiResult<Response> {
    create(&state, &user.username, plan_id, request, true).await
}

/// Emergency stop of every unfinished job of the plan. Idempotent: when nothing runs, the
/// list is empty.
#[utoipa::path(delete, path = "/api/v2/plans/{id}/running", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The jobs that were stopped", body = Vec<Job>),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn cancel_running(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath(plan_id): AppPath<u64>,
) -> ApiResult<Json<Vec<Job>>> {
    if state.store.plan(plan_id)?.is_none() {
        return Err(ApiError::not_found(format!("plan {plan_id} not found")));
    }
    let mut stopped = Vec::new();
    for job in state.store.active_jobs(plan_id)? {
        // A job already canceling has had its cancel sent; list it, do not send it again.
        if job.status == sortie_shared::JobState::Canceling {
            stopped.push(job);
            continue;
        }
        match cancel(&state, &user.username, plan_id, job.job_id).await {
            Ok(job) => stopped.push(job),
            // It ended between listing and cancelling: nothing to stop.
            Err(e) if e.status == axum::http::StatusCode::CONFLICT => {}
            Err(e) => return Err(e),
        }
    }
    state.store.flush().await?;
    Ok(Json(stopped))
}

/// gosd v1 alias of the job list.
#[utoipa::path(get, path = "/api/v1/plans/{id}/logs/", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), JobListQuery),
    responses((status = 200, description = "The jobs, newest first", body = Vec<Job>),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn list_plan_logs_v1(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
    query: AppQuery<JobListQuery>,
) -> ApiResult<Response> {
    list_jobs(user, state, id, query).await
}

/// gosd v1 alias of the job list.
#[utoipa::path(get, path = "/api/v1/plans/{id}/plan_logs/", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), JobListQuery),
    responses((status = 200, description = "The jobs, newest first", body = Vec<Job>),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn list_plan_logs_alias_v1(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
    query: AppQuery<JobListQuery>,
) -> ApiResult<Response> {
    list_jobs(user, state, id, query).await
}

/// gosd's plan-wide cancel, as the seed's example sends it (`POST .../jobs/cancel`, no job
/// number): stops every unfinished job of the plan, like `DELETE .../running`.
#[utoipa::path(post, path = "/api/v2/plans/{id}/jobs/cancel", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The jobs that were stopped", body = Vec<Job>),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn cancel_plan_jobs(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
) -> ApiResult<Json<Vec<Job>>> {
    cancel_running(user, state, id).await
}

/// gosd's older alias of `DELETE .../running`.
#[utoipa::path(delete, path = "/api/v2/plans/{id}/jobs/running", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id")),
    responses(
        (status = 200, description = "The jobs that were stopped", body = Vec<Job>),
        (status = 404, description = "No such plan", body = ErrorBody)))]
pub async fn cancel_jobs_running(
    user: CurrentUser,
    state: State<AppState>,
    id: AppPath<u64>,
) -> ApiResult<Json<Vec<Job>>> {
    cancel_running(user, state, id).await
}

/// Runs the job again: a new job of the same plan with the same inputs (its outputs are not
/// inputs of the new run).
#[utoipa::path(post, path = "/api/v2/plans/{id}/jobs/{job_id}/retry", tag = "jobs", security(("bearer" = [])),
    params(("id" = u64, Path, description = "Plan id"), ("job_id" = u64, Path, description = "Job number within the plan")),
    responses(
        (status = 201, description = "The new job", body = Job),
        (status = 401, description = "No valid token", body = ErrorBody),
        (status = 404, description = "No such job", body = ErrorBody),
        (status = 422, description = "An input blob no longer exists", body = ErrorBody)))]
pub async fn retry_job(
    CurrentUser(user): CurrentUser,
    State(state): State<AppState>,
    AppPath((plan_id, job_id)): JobPath,
) -> ApiResult<Response> {
    let old = state
        .store
        .job(plan_id, job_id)?
        .ok_or_else(|| ApiError::not_found(format!("job {job_id} of plan {plan_id} not found")))?;
    let mut files = old.files.clone();
    files.retain(|role, _| !old.outputs.contains(role));
    let inputs = JobInputs {
        files,
        extra: old.extra.clone(),
    };
    let job = state.store.create_job(plan_id, &inputs, false)?;
    state.store.flush().await?;
    tracing::info!(plan_id, job_id = job.job_id, retry_of = job_id, by = %user.username, "job retried");
    state
        .relay
        .send(RelayRequest::JobCreated(job.clone()))
        .await;
    Ok(created(job))
}
