//! Plans and jobs through the API, and the processes jobs leave on this machine.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::blocking::multipart::{Form, Part};
use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::{send, wait_until, Api};

/// Final job states.
pub const FINAL_STATES: [&str; 5] = ["success", "failure", "error", "cancelled", "timeout"];

/// Uploads `script` as `job.sh` and creates a plan for `node_id` that runs it, with `extra`.
/// Returns the plan id.
pub fn script_plan(api: &Api, node_id: u64, script: &str, extra: &[(&str, &str)]) -> u64 {
    let form = Form::new().part(
        "script",
        Part::bytes(script.as_bytes().to_vec()).file_name("job.sh"),
    );
    let blobs = api.post_form("/api/v2/blobs/", form).expect(200);
    let extra: Map<String, Value> = extra
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let plan = api
        .post_json(
            "/api/v2/plans/",
            &json!({
                "name": format!("e2e-{}", unique_marker()),
                "node_id": node_id,
                "files": {"script": blobs["script"]},
                "extra": extra,
            }),
        )
        .expect(201);
    plan["id"].as_u64().expect("plan id")
}

/// One job: its plan, its number in the plan, its global id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobHandle {
    /// The plan.
    pub plan_id: u64,
    /// The run number within the plan (the API's `job_id`).
    pub seq: u64,
    /// The global id (the API's `id`, the protocol's `JobRef::id`).
    pub id: u64,
}

impl JobHandle {
    /// Starts a run of `plan_id` with per-job `extra` (may be empty).
    pub fn create(api: &Api, plan_id: u64, extra: &[(&str, &str)]) -> JobHandle {
        let extra: Map<String, Value> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let job = api
            .post_json(
                &format!("/api/v2/plans/{plan_id}/jobs/"),
                &json!({ "extra": extra }),
            )
            .expect(201);
        JobHandle {
            plan_id,
            seq: job["job_id"].as_u64().expect("job_id"),
            id: job["id"].as_u64().expect("id"),
        }
    }

    /// `/api/v2/plans/{plan}/jobs/{seq}`.
    pub fn path(&self) -> String {
        format!("/api/v2/plans/{}/jobs/{}", self.plan_id, self.seq)
    }

    /// The job as the API shows it.
    pub fn get(&self, api: &Api) -> Value {
        api.get(&self.path()).expect(200)
    }

    /// Its status.
    pub fn status(&self, api: &Api) -> String {
        self.get(api)["status"]
            .as_str()
            .expect("status is a string")
            .to_owned()
    }

    /// Its whole log so far.
    pub fn log(&self, api: &Api) -> String {
        let reply = api.get(&format!("{}/log", self.path()));
        assert_eq!(reply.status.as_u16(), 200, "log: {}", reply.text());
        reply.text()
    }

    /// Its log, following it until the job ends (`?follow=true`): blocks until then.
    pub fn follow_log(&self, api: &Api) -> String {
        let reply = send(api.request(Method::GET, &format!("{}/log?follow=true", self.path())));
        assert_eq!(reply.status.as_u16(), 200, "log: {}", reply.text());
        reply.text()
    }

    /// `POST .../cancel`; returns the job it answers with.
    pub fn cancel(&self, api: &Api) -> Value {
        send(api.request(Method::POST, &format!("{}/cancel", self.path()))).expect(200)
    }

    /// Waits (bounded) until the job is in `status` and returns it.
    ///
    /// # Panics
    /// If it reaches another final state, or `timeout` passes; the message has the job.
    #[track_caller]
    pub fn wait_for(&self, api: &Api, status: &str, timeout: Duration) -> Value {
        let started = Instant::now();
        let mut last = Value::Null;
        let reached = wait_until(timeout, || {
            last = self.get(api);
            let now = last["status"].as_str().unwrap_or_default();
            assert!(
                now == status || !FINAL_STATES.contains(&now),
                "job {} of plan {} ended {now}, not {status}: {last}",
                self.seq,
                self.plan_id
            );
            now == status
        });
        assert!(
            reached,
            "job {} of plan {} is not {status} after {:?}: {last}",
            self.seq,
            self.plan_id,
            started.elapsed()
        );
        last
    }

    /// Waits (bounded) until its log contains `text`.
    ///
    /// # Panics
    /// If it does not within `timeout`; the message has the log and the job.
    #[track_caller]
    pub fn wait_log(&self, api: &Api, text: &str, timeout: Duration) {
        if !wait_until(timeout, || self.log(api).contains(text)) {
            panic!(
                "the log of job {} never showed {text:?} within {timeout:?}:\n{}\njob: {}",
                self.seq,
                self.log(api),
                self.get(api)
            );
        }
    }
}

/// Waits (bounded) until node `node_id` has sent `count` more heartbeats, seen as changes of
/// its `last_seen`: a negative check ("this never happens") can then rely on the agent having
/// been heard from, and having had its chances, that many times.
///
/// # Panics
/// If that does not happen within `timeout`.
#[track_caller]
pub fn wait_heartbeats(api: &Api, node_id: u64, count: usize, timeout: Duration) {
    let last_seen =
        || api.get(&format!("/api/v1/nodes/{node_id}")).expect(200)["last_seen"].clone();
    let mut seen = last_seen();
    let mut changes = 0;
    let done = wait_until(timeout, || {
        let now = last_seen();
        if now != seen {
            seen = now;
            changes += 1;
        }
        changes >= count
    });
    assert!(
        done,
        "node {node_id} sent {changes} of {count} heartbeats within {timeout:?}"
    );
}

/// The node's `status` (`online` or `offline`).
pub fn node_status(api: &Api, node_id: u64) -> String {
    api.get(&format!("/api/v1/nodes/{node_id}")).expect(200)["status"]
        .as_str()
        .expect("status is a string")
        .to_owned()
}

/// A string no other test or run uses, for marking files and processes.
pub fn unique_marker() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    format!(
        "sortie-mark-{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A process found by [`processes_with_marker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Its id.
    pub pid: u32,
    /// Its command line, arguments joined by spaces.
    pub cmdline: String,
}

/// Live (not zombie) processes whose command line or environment contains `marker` — what
/// `pgrep -f` sees, plus the environment every child inherits, so a job's grandchildren that
/// changed their command line are found too. Linux `/proc` only.
pub fn processes_with_marker(marker: &str) -> Vec<ProcessInfo> {
    let me = std::process::id();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let dir = entry.path();
        // `pid (comm) S ...`: the state follows the last `)`. Gone or zombie: not running.
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next());
        if matches!(state, None | Some('Z' | 'X')) {
            continue;
        }
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let environ = std::fs::read(dir.join("environ")).unwrap_or_default();
        let needle = marker.as_bytes();
        let has = |bytes: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
        if has(&cmdline) || has(&environ) {
            let cmdline = String::from_utf8_lossy(&cmdline)
                .split('\0')
                .filter(|a| !a.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            found.push(ProcessInfo { pid, cmdline });
        }
    }
    found
}

/// Sends SIGKILL to each process (best effort: some may be gone already).
pub fn kill_processes(processes: &[ProcessInfo]) {
    for process in processes {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &process.pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Waits (bounded) until no live process carries `marker`; returns how long that took.
///
/// # Panics
/// If some remain after `timeout` (they are then killed, and listed in the message).
#[track_caller]
pub fn wait_processes_gone(marker: &str, timeout: Duration) -> Duration {
    let started = Instant::now();
    if wait_until(timeout, || processes_with_marker(marker).is_empty()) {
        return started.elapsed();
    }
    let left = processes_with_marker(marker);
    kill_processes(&left);
    panic!("processes marked {marker} still run after {timeout:?}: {left:?}");
}
