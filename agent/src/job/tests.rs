use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use sortie_shared::{Event, JobDispatch, JobRef, LogStream, Outcome, PlanFile};

use super::*;
use crate::testing::{context, link_down, outbox_until, BlobServer};

fn job(id: u64) -> JobRef {
    JobRef {
        id,
        plan_id: 40 + id,
        job_seq: 3,
    }
}

fn dispatch(id: u64, files: Vec<PlanFile>) -> JobDispatch {
    JobDispatch {
        job: job(id),
        files,
        extra: BTreeMap::new(),
        timeout_s: None,
        abort_on_link_loss_s: None,
    }
}

fn file(role: &str, name: &str) -> PlanFile {
    PlanFile {
        role: role.into(),
        blob_id: 1,
        name: name.into(),
        size: 0,
        sha256: String::new(),
    }
}

/// Runs a job to its end; returns its events (Finished last).
async fn run_to_end(ctx: &Arc<JobContext>, dispatch: JobDispatch) -> Vec<Event> {
    let id = dispatch.job.id;
    let (_stop, stop_rx) = watch::channel(None);
    run_job(Arc::clone(ctx), dispatch, stop_rx).await;
    let events = outbox_until(
        &ctx.journal,
        |e| matches!(e, Event::Finished { job, .. } if job.id == id),
    )
    .await;
    events
        .into_iter()
        .filter(|e| e.job().is_some_and(|j| j.id == id))
        .collect()
}

fn finished(events: &[Event]) -> (Outcome, Option<i32>, Option<String>) {
    match events.last() {
        Some(Event::Finished {
            outcome,
            exit_code,
            reason,
            ..
        }) => (*outcome, *exit_code, reason.clone()),
        other => panic!("last event is not Finished: {other:?}"),
    }
}

fn log_lines(events: &[Event]) -> Vec<(LogStream, String)> {
    let mut next = 0;
    let mut lines = Vec::new();
    for event in events {
        if let Event::LogBatch {
            first_line,
            lines: batch,
            ..
        } = event
        {
            assert_eq!(*first_line, next, "log lines are numbered without gaps");
            next += batch.len() as u64;
            lines.extend(batch.iter().map(|l| (l.stream, l.text.clone())));
        }
    }
    lines
}

fn setup(dir: &Path, server: &BlobServer) -> Arc<JobContext> {
    let (link_tx, link_rx) = link_down();
    std::mem::forget(link_tx); // keep the link "down" for the whole test
    Arc::new(context(dir, &server.base, link_rx))
}

#[test]
fn entry_file_is_script_then_file_then_the_only_one() {
    assert_eq!(
        entry_index(&[file("mission", "m"), file("script", "s")]),
        Some(1)
    );
    assert_eq!(
        entry_index(&[file("file", "f"), file("data", "d")]),
        Some(0)
    );
    assert_eq!(entry_index(&[file("data", "d")]), Some(0));
    assert_eq!(entry_index(&[file("data", "d"), file("more", "e")]), None);
    assert_eq!(entry_index(&[]), None);
}

#[test]
fn names_are_base_names_and_collisions_get_the_role() {
    let files = [
        file("script", "../../etc/run.sh"),
        file("mission", "a/b/data.txt"),
        file("photos", "data.txt"),
        file("odd", ".."),
        file("config", "extra.json"),
        file("evil", "C:\\x\\y.bin"),
    ];
    assert_eq!(
        local_names(&files),
        [
            "run.sh",
            "mission-data.txt",
            "photos-data.txt",
            "blob-1",
            "config-extra.json",
            "y.bin"
        ]
    );
}

#[test]
fn environment_names_the_job_and_its_extras() {
    let mut d = dispatch(9, vec![]);
    d.extra = BTreeMap::from([
        ("altitude-m".into(), "120".into()),
        ("Mode".into(), "fast".into()),
    ]);
    let env = job_env(4, &d, Path::new("/data/jobs/9/output"));
    let env: BTreeMap<_, _> = env.into_iter().collect();
    assert_eq!(env["SORTIE_JOB_ID"], "9");
    assert_eq!(env["SORTIE_PLAN_ID"], "49");
    assert_eq!(env["SORTIE_JOB_SEQ"], "3");
    assert_eq!(env["SORTIE_NODE_ID"], "4");
    assert_eq!(env["SORTIE_OUTPUT_DIR"], "/data/jobs/9/output");
    assert_eq!(env["SORTIE_EXTRA_ALTITUDE_M"], "120");
    assert_eq!(env["SORTIE_EXTRA_MODE"], "fast");
}

#[tokio::test]
async fn a_script_job_sees_its_env_and_files_and_uploads_outputs() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path(), &server);
    let script = br#"#!/bin/sh
echo "job=$SORTIE_JOB_ID plan=$SORTIE_PLAN_ID seq=$SORTIE_JOB_SEQ node=$SORTIE_NODE_ID"
echo "alt=$SORTIE_EXTRA_ALTITUDE_M cwd=$(pwd)"
cat mission.txt
cp extra.json "$SORTIE_OUTPUT_DIR/extra-copy.json"
echo oops >&2
exit 3
"#;
    let mut d = dispatch(
        1,
        vec![
            server.add(11, "script", "../../tmp/run.sh", script),
            server.add(12, "mission", "mission.txt", b"waypoint 1\n"),
        ],
    );
    d.extra = BTreeMap::from([("altitude-m".into(), "120".into())]);
    let events = run_to_end(&ctx, d).await;

    assert!(
        matches!(events[0], Event::Started { pid, .. } if pid > 1),
        "{events:?}"
    );
    assert_eq!(
        finished(&events),
        (Outcome::Failure, Some(3), Some("exit code 3".into()))
    );
    let work_dir = ctx.work_dir(1);
    assert!(work_dir.is_absolute());
    // Each stream keeps its order; the two pipes' relative order is not defined.
    let lines = log_lines(&events);
    let of = |stream| {
        lines
            .iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, t)| t.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of(LogStream::Stdout),
        [
            "job=1 plan=41 seq=3 node=1".to_owned(),
            format!("alt=120 cwd={}", work_dir.display()),
            "waypoint 1".to_owned(),
        ]
    );
    assert_eq!(of(LogStream::Stderr), ["oops"]);
    let extra: BTreeMap<String, String> =
        serde_json::from_slice(&std::fs::read(work_dir.join("extra.json")).unwrap()).unwrap();
    assert_eq!(extra["altitude-m"], "120");
    // The output was uploaded under its file name and reported before Finished.
    let output = events.iter().find_map(|e| match e {
        Event::Output { role, blob_id, .. } => Some((role.clone(), *blob_id)),
        _ => None,
    });
    assert_eq!(output, Some(("extra-copy.json".to_owned(), 1000)));
    let uploads = &server.blobs.lock().unwrap().uploads;
    assert_eq!(uploads[0].0, "extra-copy.json");
    assert_eq!(
        serde_json::from_slice::<BTreeMap<String, String>>(&uploads[0].2).unwrap(),
        extra
    );
}

#[tokio::test]
async fn a_file_without_an_interpreter_line_runs_with_sh() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path(), &server);
    let events = run_to_end(
        &ctx,
        dispatch(
            2,
            vec![server.add(21, "file", "plain", b"echo plain $((1+2))\n")],
        ),
    )
    .await;
    assert_eq!(finished(&events), (Outcome::Success, Some(0), None));
    assert_eq!(
        log_lines(&events),
        [(LogStream::Stdout, "plain 3".to_owned())]
    );
}

#[tokio::test]
async fn a_bad_download_is_an_error_naming_the_file() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path(), &server);
    let mut bad_sum = server.add(31, "script", "run.sh", b"echo hi\n");
    bad_sum.sha256 = hex::encode([7u8; 32]);
    let events = run_to_end(&ctx, dispatch(3, vec![bad_sum])).await;
    assert_eq!(events.len(), 1, "no Started: {events:?}");
    let (outcome, exit_code, reason) = finished(&events);
    assert_eq!((outcome, exit_code), (Outcome::Error, None));
    let reason = reason.unwrap();
    assert!(
        reason.contains("\"run.sh\"") && reason.contains("sha256 mismatch"),
        "{reason}"
    );
    // Nothing half-checked is left in the cache.
    assert_eq!(
        std::fs::read_dir(dir.path().join("cache")).unwrap().count(),
        0
    );

    let mut bad_size = server.add(32, "script", "run.sh", b"echo hi\n");
    bad_size.size = 3;
    let (_, _, reason) = finished(&run_to_end(&ctx, dispatch(4, vec![bad_size])).await);
    assert!(reason.unwrap().contains("size mismatch"));

    let mut missing = server.add(33, "script", "run.sh", b"x");
    missing.blob_id = 99;
    let (_, _, reason) = finished(&run_to_end(&ctx, dispatch(5, vec![missing])).await);
    assert!(reason.unwrap().contains("404"));

    let (outcome, _, reason) = finished(&run_to_end(&ctx, dispatch(6, vec![])).await);
    assert_eq!(
        (outcome, reason.as_deref()),
        (Outcome::Error, Some(workdir::NO_ENTRY))
    );
}

#[tokio::test]
async fn cached_files_are_reused_and_checked_again() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path(), &server);
    let script = server.add(41, "script", "run.sh", b"#!/bin/sh\necho cached\n");
    for id in [7, 8] {
        let events = run_to_end(&ctx, dispatch(id, vec![script.clone()])).await;
        assert_eq!(finished(&events).0, Outcome::Success);
    }
    assert_eq!(server.downloads(41), 1);
    // A job wrote through its hard link: the cache entry no longer matches and is fetched again.
    std::fs::write(ctx.work_dir(8).join("run.sh"), "#!/bin/sh\necho tampered\n").unwrap();
    let events = run_to_end(&ctx, dispatch(9, vec![script])).await;
    assert_eq!(
        log_lines(&events),
        [(LogStream::Stdout, "cached".to_owned())]
    );
    assert_eq!(server.downloads(41), 2);
}

#[tokio::test]
async fn a_timeout_runs_the_safe_state_command_then_stops_the_job() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path(), &server.base, link_down().1);
    ctx.safe_state_command = Some("echo motors off".into());
    let ctx = Arc::new(ctx);
    let mut d = dispatch(
        10,
        vec![server.add(
            51,
            "script",
            "run.sh",
            b"#!/bin/sh\necho up\nexec sleep 30\n",
        )],
    );
    d.timeout_s = Some(1);
    let events = run_to_end(&ctx, d).await;
    let (outcome, exit_code, reason) = finished(&events);
    assert_eq!(
        (outcome, exit_code, reason.as_deref()),
        (Outcome::Timeout, None, Some("timed out after 1 s"))
    );
    let lines: Vec<String> = log_lines(&events).into_iter().map(|(_, t)| t).collect();
    assert_eq!(lines[0], "up");
    assert_eq!(lines[1], "[sortie] stopping the job: timed out after 1 s");
    assert_eq!(lines[2], "[sortie] safe-state: motors off");
    assert!(
        lines[3].starts_with("[sortie] safe-state: exit code 0"),
        "{lines:?}"
    );
    assert!(lines[4].starts_with("[sortie] stopped: "), "{lines:?}");
}

#[tokio::test]
async fn a_cancel_runs_the_hardware_steps_then_the_command_and_logs_both() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = context(dir.path(), &server.base, link_down().1);
    // A simulated depot on manual time: the door's travel passes inside `expect` at once.
    let mut hal = sortie_hal::HalConfig::example_sim_depot();
    hal.outputs.get_mut("door").unwrap().initial = true;
    let hardware = sortie_hal::Hardware::open_sim_manual(&hal).unwrap();
    let hardware = crate::hardware::HardwareHandle::spawn(hardware).unwrap();
    ctx.hardware = Some(hardware.clone());
    ctx.safe_state = vec![
        sortie_hal::Step::Set {
            output: "door".into(),
            on: false,
        },
        sortie_hal::Step::Expect {
            line: "door_closed".into(),
            on: true,
            within_ms: 30_000,
        },
        sortie_hal::Step::Set {
            output: "lights".into(),
            on: true,
        },
    ];
    ctx.safe_state_command = Some("echo motors off".into());
    let ctx = Arc::new(ctx);
    let d = dispatch(
        11,
        vec![server.add(
            52,
            "script",
            "run.sh",
            b"#!/bin/sh\necho up\nexec sleep 30\n",
        )],
    );
    let (stop, stop_rx) = watch::channel(None);
    let job = tokio::spawn(run_job(Arc::clone(&ctx), d, stop_rx));
    outbox_until(&ctx.journal, |e| matches!(e, Event::LogBatch { .. })).await;
    stop.send_replace(Some(StopReason::Cancel("cancelled by alice".into())));
    job.await.unwrap();
    let events: Vec<Event> = outbox_until(&ctx.journal, |e| matches!(e, Event::Finished { .. }))
        .await
        .into_iter()
        .filter(|e| e.job().is_some_and(|j| j.id == 11))
        .collect();
    assert_eq!(finished(&events).0, Outcome::Cancelled);
    let lines: Vec<String> = log_lines(&events).into_iter().map(|(_, t)| t).collect();
    assert_eq!(lines[0], "up");
    assert_eq!(lines[1], "[sortie] stopping the job: cancelled by alice");
    assert_eq!(
        lines[2], "[sortie] safe-state: 1/3 set door off: ok",
        "{lines:?}"
    );
    assert!(
        lines[3].starts_with("[sortie] safe-state: 2/3 expect door_closed on within 30000 ms: ok"),
        "{lines:?}"
    );
    assert_eq!(
        lines[4], "[sortie] safe-state: 3/3 set lights on: ok",
        "{lines:?}"
    );
    assert!(
        lines[5].starts_with("[sortie] safe-state: steps done after "),
        "{lines:?}"
    );
    assert_eq!(lines[6], "[sortie] safe-state: motors off");
    assert!(lines[8].starts_with("[sortie] stopped: "), "{lines:?}");
    // The steps really drove the hardware.
    assert!(!hardware.get("door").await.unwrap());
    assert!(hardware.get("door_closed").await.unwrap());
}

#[tokio::test]
async fn losing_the_link_stops_a_job_that_asks_for_it() {
    let server = BlobServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let ctx = setup(dir.path(), &server);
    let mut d = dispatch(
        11,
        vec![server.add(61, "script", "run.sh", b"#!/bin/sh\nexec sleep 30\n")],
    );
    d.abort_on_link_loss_s = Some(1);
    let (outcome, _, reason) = finished(&run_to_end(&ctx, d).await);
    assert_eq!(outcome, Outcome::Error);
    assert_eq!(
        reason.as_deref(),
        Some("link to the coordinator lost for 1 s")
    );
}
