//! Starting the real binaries and talking to them.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};

/// A coordinator with its embedded broker and one agent (node 1), in a temp dir.
pub struct Fleet {
    /// API base, e.g. `http://127.0.0.1:PORT/gosd`.
    pub base_url: String,
    /// The embedded broker.
    pub mqtt_addr: String,
    token: String,
    http: reqwest::blocking::Client,
    node2_config: PathBuf,
    children: Vec<Child>,
    _dir: tempfile::TempDir,
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let path = exe.parent().context("exe dir")?.join(name);
    if !path.exists() {
        bail!(
            "{} not found: run `cargo build --release --workspace` first",
            path.display()
        );
    }
    Ok(path)
}

impl Fleet {
    /// Starts `sortie-coordinator serve --demo` and node 1's agent; waits until it is online.
    pub fn start() -> anyhow::Result<Fleet> {
        let dir = tempfile::tempdir()?;
        let mut coordinator = Command::new(sibling_binary("sortie-coordinator")?)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args([
                "serve",
                "--demo",
                "--listen",
                "127.0.0.1:0",
                "--mqtt-listen",
                "127.0.0.1:0",
            ])
            .env("RUST_LOG", "warn")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?;
        let stdout = coordinator.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut children = vec![coordinator];
        let (mut base_url, mut mqtt_addr, mut configs) = (None, None, Vec::new());
        while base_url.is_none() {
            let line = rx
                .recv_timeout(Duration::from_secs(20))
                .context("the coordinator did not start")?;
            if let Some(addr) = line.strip_prefix("mqtt broker on ") {
                mqtt_addr = Some(addr.trim().to_owned());
            } else if let Some((_, path)) = line.split_once("): ") {
                configs.push(dir.path().join(path.trim()));
            } else if let Some(url) = line.strip_prefix("listening on ") {
                base_url = Some(url.trim().to_owned());
            }
        }
        let base_url = base_url.unwrap_or_default();
        let (node1, node2) = match configs.as_slice() {
            [a, b, ..] => (a.clone(), b.clone()),
            _ => bail!("the demo printed no agent configs"),
        };
        let config =
            std::fs::read_to_string(&node1)?.replace("heartbeat_secs = 5", "heartbeat_secs = 1");
        std::fs::write(&node1, config)?;
        children.push(
            Command::new(sibling_binary("sortie-agent")?)
                .arg("--config")
                .arg(&node1)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?,
        );
        let http = reqwest::blocking::Client::builder().no_proxy().build()?;
        let token: Value = http
            .post(format!("{base_url}/oauth/token"))
            .form(&[
                ("grant_type", "password"),
                ("username", "demo"),
                ("password", "demodemo"),
                ("client_id", "sortie-demo"),
                ("client_secret", "sortie-demo-secret"),
            ])
            .send()?
            .json()?;
        let fleet = Fleet {
            base_url,
            mqtt_addr: mqtt_addr.context("no broker address printed")?,
            token: token["access_token"]
                .as_str()
                .context("no token")?
                .to_owned(),
            http,
            node2_config: node2,
            children,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while fleet.get("/api/v1/nodes/1")?["status"] != "online" {
            if Instant::now() > deadline {
                bail!("the agent did not come online");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(fleet)
    }

    /// GET a JSON resource.
    pub fn get(&self, path: &str) -> anyhow::Result<Value> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .send()?
            .error_for_status()?
            .json()?)
    }

    /// The demo user's bearer token.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// GET a text resource.
    pub fn get_text(&self, path: &str) -> anyhow::Result<String> {
        Ok(self
            .http
            .get(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token)
            .send()?
            .error_for_status()?
            .text()?)
    }

    /// POST JSON (or nothing) and return the JSON answer.
    pub fn post(&self, path: &str, body: Option<Value>) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        Ok(request.send()?.error_for_status()?.json()?)
    }

    /// Uploads `script` and makes it a plan on node 1; returns the plan id.
    pub fn plan(&self, name: &str, script: &[u8], extra: &[(&str, &str)]) -> anyhow::Result<u64> {
        let form = reqwest::blocking::multipart::Form::new().part(
            "script",
            reqwest::blocking::multipart::Part::bytes(script.to_vec())
                .file_name(format!("{name}.sh")),
        );
        let blob: Value = self
            .http
            .post(format!("{}/api/v2/blobs/", self.base_url))
            .bearer_auth(&self.token)
            .multipart(form)
            .send()?
            .error_for_status()?
            .json()?;
        let extra: serde_json::Map<String, Value> = extra
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        let plan = self.post(
            "/api/v2/plans/",
            Some(json!({"name": name, "node_id": 1, "files": {"script": blob["script"]}, "extra": extra})),
        )?;
        plan["id"].as_u64().context("plan id")
    }

    /// Polls a job (every 2 ms) until its status is one of `states`.
    pub fn wait_status(
        &self,
        plan: u64,
        seq: u64,
        states: &[&str],
        limit: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.get(&format!("/api/v2/plans/{plan}/jobs/{seq}"))?;
            let status = job["status"].as_str().unwrap_or_default();
            if states.contains(&status) {
                return Ok(job);
            }
            if Instant::now() > deadline {
                bail!("job {seq} of plan {plan} is {status}, not {states:?}, after {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Polls a job without pause until it has `state` (for latency measurement).
    pub fn wait_status_fast(
        &self,
        plan: u64,
        seq: u64,
        state: &str,
        limit: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + limit;
        loop {
            let job = self.get(&format!("/api/v2/plans/{plan}/jobs/{seq}"))?;
            if job["status"] == state {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("job {seq} of plan {plan} is {}, not {state}", job["status"]);
            }
        }
    }

    fn node2_mqtt(&self) -> anyhow::Result<(String, String)> {
        let text = std::fs::read_to_string(&self.node2_config)?;
        let line = text
            .lines()
            .find_map(|l| l.strip_prefix("mqtt_url = "))
            .context("no mqtt_url")?;
        let url = url::Url::parse(line.trim_matches('"'))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        Ok((
            decode(url.username()),
            decode(url.password().unwrap_or_default()),
        ))
    }
}

/// Connects an MQTT client and forwards what it receives (`None` marks a SUBACK).
pub fn mqtt_client(
    client_id: &str,
    addr: &str,
    user: &str,
    password: &str,
) -> anyhow::Result<(rumqttc::Client, mpsc::Receiver<Option<Vec<u8>>>)> {
    let (host, port) = addr.rsplit_once(':').context("broker addr")?;
    let mut options = rumqttc::MqttOptions::new(client_id, host, port.parse()?);
    options
        .set_credentials(user, password)
        .set_keep_alive(Duration::from_secs(5));
    let (client, mut connection) = rumqttc::Client::new(options, 64);
    let mut network = rumqttc::NetworkOptions::new();
    network.set_tcp_nodelay(true);
    connection.eventloop.set_network_options(network);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for event in connection.iter() {
            match event {
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                    if tx.send(Some(p.payload.to_vec())).is_err() {
                        return;
                    }
                }
                Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                    let _ = tx.send(None);
                }
                Ok(_) => {}
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    });
    Ok((client, rx))
}

/// QoS 1 publish → receive through the coordinator's broker, `n` times: node 2 publishes on
/// one of its telemetry topics (the broker's ACL allows nothing else), a watcher logged in as
/// the demo user receives.
pub fn mqtt_round_trips(fleet: &Fleet, n: usize) -> anyhow::Result<Percentiles> {
    let (user, password) = fleet.node2_mqtt()?;
    let (publisher, _) = mqtt_client("sortie-node-2", &fleet.mqtt_addr, &user, &password)?;
    let (watcher, rx) = mqtt_client("bench-watcher", &fleet.mqtt_addr, "demo", "demodemo")?;
    let topic = "nodes/2/msg/sortie-bench-rtt";
    watcher.subscribe(topic, rumqttc::QoS::AtLeastOnce)?;
    rx.recv_timeout(Duration::from_secs(10))
        .context("no SUBACK")?;
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let payload = (i as u64).to_be_bytes().to_vec();
        let sent = Instant::now();
        publisher.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.clone())?;
        loop {
            let got = rx
                .recv_timeout(Duration::from_secs(10))
                .context("round trip lost")?;
            if got.as_deref() == Some(&payload[..]) {
                break;
            }
        }
        samples.push(sent.elapsed().as_secs_f64() * 1000.0);
    }
    let _ = publisher.disconnect();
    let _ = watcher.disconnect();
    Ok(Percentiles::of(samples))
}

/// Summary of latency samples in milliseconds.
#[derive(Debug, Clone)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
    /// Sample count.
    pub n: usize,
}

impl Percentiles {
    /// Sorts `samples` and picks the percentiles (nearest rank).
    pub fn of(mut samples: Vec<f64>) -> Percentiles {
        samples.sort_by(f64::total_cmp);
        let pick = |q: f64| {
            if samples.is_empty() {
                return f64::NAN;
            }
            let rank = ((q * samples.len() as f64).ceil() as usize).clamp(1, samples.len());
            samples[rank - 1]
        };
        Percentiles {
            p50: pick(0.50),
            p99: pick(0.99),
            p999: pick(0.999),
            max: samples.last().copied().unwrap_or(f64::NAN),
            n: samples.len(),
        }
    }

    /// As JSON.
    pub fn to_json(&self) -> Value {
        json!({"p50": self.p50, "p99": self.p99, "p999": self.p999, "max": self.max, "n": self.n})
    }
}

/// Now, in Unix milliseconds with a fraction.
pub fn unix_ms_f64() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// An RFC 3339 time in Unix milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> anyhow::Result<f64> {
    let t = chrono::DateTime::parse_from_rfc3339(text)?;
    Ok(t.timestamp_micros() as f64 / 1000.0)
}
