//! Many clients at once: ids stay unique and per-plan job numbers stay gap-free.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Barrier;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use sortie_tests::{Api, Coordinator, Reply, ServeOptions};

const THREADS: usize = 50;
const PLANS_PER_THREAD: usize = 4;
const JOBS_PER_PLAN: usize = 4;
/// Far longer than any request here needs; a request that takes longer means a stuck server.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(20);

/// POSTs `body` (JSON, or nothing) and waits at most [`REQUEST_TIMEOUT`] for the answer.
fn post(api: &Api, path: &str, body: Option<Value>) -> Reply {
    let request = api.request(Method::POST, path).timeout(REQUEST_TIMEOUT);
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    match request.send() {
        Ok(response) => Reply::from(response),
        Err(e) => {
            panic!("POST {path}: no answer within {REQUEST_TIMEOUT:?} under concurrent load ({e})")
        }
    }
}

/// Runs `work(0..n)` on `n` threads that start together; returns their results in order.
fn in_parallel<T: Send>(n: usize, work: impl Fn(usize) -> T + Sync) -> Vec<T> {
    // Nothing before the barrier can fail, so no thread is left waiting at it.
    let start = Barrier::new(n);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..n)
            .map(|t| {
                let (start, work) = (&start, &work);
                std::thread::Builder::new()
                    .name(format!("client-{t}"))
                    .spawn_scoped(scope, move || {
                        start.wait();
                        work(t)
                    })
                    .expect("spawning a client thread")
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a client thread failed (see its message above)")
            })
            .collect()
    })
}

#[test]
fn fifty_clients_create_plans_and_jobs_at_once() {
    let server = Coordinator::start(ServeOptions::demo());
    let token = sortie_tests::demo_token(server.base_url());
    let clients: Vec<Api> = (0..THREADS)
        .map(|_| Api::new(server.base_url()).with_token(&token))
        .collect();

    let plans: Vec<Vec<u64>> = in_parallel(THREADS, |t| {
        (0..PLANS_PER_THREAD)
            .map(|k| {
                let input = json!({"name": format!("t{t}-p{k}"), "node_id": 1 + t % 2});
                let plan = post(&clients[t], "/api/v2/plans/", Some(input)).expect(201);
                plan["id"].as_u64().unwrap()
            })
            .collect()
    });
    // Each plan gets its jobs from JOBS_PER_PLAN different threads, so the per-plan numbering
    // is contended. Each job: (global id, plan id, per-plan number).
    let jobs: Vec<(u64, u64, u64)> = in_parallel(THREADS, |t| {
        let mut made = Vec::new();
        for j in 0..JOBS_PER_PLAN {
            for &plan in &plans[(t + j) % THREADS] {
                let job =
                    post(&clients[t], &format!("/api/v2/plans/{plan}/jobs/"), None).expect(201);
                assert_eq!(job["plan_id"], plan);
                made.push((
                    job["id"].as_u64().unwrap(),
                    plan,
                    job["job_id"].as_u64().unwrap(),
                ));
            }
        }
        made
    })
    .into_iter()
    .flatten()
    .collect();

    let plan_ids: Vec<u64> = plans.into_iter().flatten().collect();
    let distinct: BTreeSet<u64> = plan_ids.iter().copied().collect();
    assert_eq!(plan_ids.len(), THREADS * PLANS_PER_THREAD);
    assert_eq!(distinct.len(), plan_ids.len(), "duplicate plan ids");

    assert_eq!(jobs.len(), THREADS * PLANS_PER_THREAD * JOBS_PER_PLAN);
    let job_ids: BTreeSet<u64> = jobs.iter().map(|(id, _, _)| *id).collect();
    assert_eq!(job_ids.len(), jobs.len(), "duplicate global job ids");
    let mut numbers: BTreeMap<u64, BTreeSet<u64>> = BTreeMap::new();
    for (_, plan, number) in &jobs {
        numbers.entry(*plan).or_default().insert(*number);
    }
    let expected: BTreeSet<u64> = (1..=JOBS_PER_PLAN as u64).collect();
    for (plan, got) in &numbers {
        assert_eq!(got, &expected, "job numbers of plan {plan}");
    }

    // The lists show exactly what was acknowledged.
    let api = &clients[0];
    let listed: BTreeSet<u64> = api
        .get("/api/v2/plans/")
        .expect(200)
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, distinct);
    let mut listed_jobs = BTreeSet::new();
    for plan in &distinct {
        let reply = api.get(&format!("/api/v2/plans/{plan}/jobs/"));
        let list = reply.expect(200);
        assert_eq!(
            reply.header("x-total-count"),
            Some(JOBS_PER_PLAN.to_string().as_str())
        );
        let numbers: Vec<u64> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|j| {
                listed_jobs.insert(j["id"].as_u64().unwrap());
                j["job_id"].as_u64().unwrap()
            })
            .collect();
        assert_eq!(numbers, [4, 3, 2, 1], "jobs of plan {plan}, newest first");
    }
    assert_eq!(listed_jobs, job_ids);
}
