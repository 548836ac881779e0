//! `<data_dir>/hal.sock`: the running agent's hardware, for its jobs and its operator.
//!
//! ```text
//!  sortie-agent hal set door open ──▶ {"op":"set","name":"door","level":"open"}\n
//!                                 ◀── {"ok":true,"name":"door","on":true}\n
//!  sortie-agent hal get door ──────▶ {"op":"get","name":"door"}\n
//!  sortie-agent hal status ────────▶ {"op":"status"}\n ◀── {"ok":true,"status":{…}}\n
//!  anything wrong ─────────────────◀── {"ok":false,"error":"no output named \"dor\" …"}\n
//! ```
//!
//! One JSON request per line, one JSON response per line, any number per connection. The
//! socket is created mode 0600 (the agent's user only: jobs run as that user and find it in
//! `SORTIE_HAL_SOCKET`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::HardwareHandle;

/// The socket's file name in the data directory.
pub const SOCKET_NAME: &str = "hal.sock";

/// The environment variable that tells a job (and the CLI) where the socket is.
pub const SOCKET_ENV: &str = "SORTIE_HAL_SOCKET";

/// Longest request line read.
const MAX_REQUEST_BYTES: usize = 4096;
/// Connections served at once.
const MAX_CONNECTIONS: usize = 16;

/// A request on the socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum HalRequest {
    /// Set an output: `level` is a word `sortie_hal::parse_level` reads (`on`, `open`, `0`).
    Set {
        /// The output.
        name: String,
        /// The level word.
        level: String,
    },
    /// Read an output (as last set) or an input.
    Get {
        /// The output or input.
        name: String,
    },
    /// Every output and input, and the status readings.
    Status,
}

/// A response on the socket.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct HalResponse {
    /// Whether the request was carried out.
    pub ok: bool,
    /// `set`/`get`: the line's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `set`/`get`: its level after the request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on: Option<bool>,
    /// `status`: the hardware's state.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    /// What went wrong, when `ok` is false.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HalResponse {
    fn failed(error: impl Into<String>) -> Self {
        HalResponse {
            error: Some(error.into()),
            ..HalResponse::default()
        }
    }

    fn level(name: String, on: bool) -> Self {
        HalResponse {
            ok: true,
            name: Some(name),
            on: Some(on),
            ..HalResponse::default()
        }
    }
}

/// Creates the socket at `path` (replacing a stale one: the journal's lock already ensures no
/// other agent uses this data directory), readable and writable by the agent's user only.
pub fn bind(path: &Path) -> std::io::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let listener = UnixListener::bind(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(listener)
}

/// Serves the socket until `stop`, then removes it.
pub async fn serve(
    listener: UnixListener,
    path: PathBuf,
    hardware: HardwareHandle,
    stop: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let stream = tokio::select! {
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "accepting on the hal socket");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!("too many hal socket connections; refusing one");
            continue;
        };
        let hardware = hardware.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = connection(stream, &hardware) => {}
            }
            drop(slot);
        });
    }
    let _ = std::fs::remove_file(&path);
}

async fn connection(stream: UnixStream, hardware: &HardwareHandle) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader).take(u64::MAX);
    let mut line = Vec::new();
    loop {
        line.clear();
        reader.set_limit(MAX_REQUEST_BYTES as u64 + 1);
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let response = if line.len() > MAX_REQUEST_BYTES {
            HalResponse::failed(format!("request longer than {MAX_REQUEST_BYTES} bytes"))
        } else {
            match serde_json::from_slice::<HalRequest>(&line) {
                Ok(request) => handle(request, hardware).await,
                Err(e) => HalResponse::failed(format!("bad request: {e}")),
            }
        };
        let mut out = serde_json::to_vec(&response).expect("a response serializes");
        out.push(b'\n');
        if writer.write_all(&out).await.is_err() || line.last() != Some(&b'\n') {
            return;
        }
    }
}

/// Carries out one request.
pub async fn handle(request: HalRequest, hardware: &HardwareHandle) -> HalResponse {
    match request {
        HalRequest::Set { name, level } => {
            let on = match sortie_hal::parse_level(&level) {
                Ok(on) => on,
                Err(e) => return HalResponse::failed(e.to_string()),
            };
            match hardware.set_output(&name, on).await {
                Ok(()) => {
                    tracing::info!(output = %name, on, "hal socket: output set");
                    HalResponse::level(name, on)
                }
                Err(e) => HalResponse::failed(e.0),
            }
        }
        HalRequest::Get { name } => match hardware.get(&name).await {
            Ok(on) => HalResponse::level(name, on),
            Err(e) => HalResponse::failed(e.0),
        },
        HalRequest::Status => match hardware.status().await {
            Ok(status) => HalResponse {
                ok: true,
                status: Some(status),
                ..HalResponse::default()
            },
            Err(e) => HalResponse::failed(e.0),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::cli::{ask, render, HalCliError};
    use super::*;

    /// A simulated depot behind a socket in `dir`.
    async fn serve_depot(dir: &Path) -> (PathBuf, CancellationToken) {
        let hal = sortie_hal::HalConfig::example_sim_depot();
        let hardware = sortie_hal::Hardware::open_sim_manual(&hal).unwrap();
        let handle = HardwareHandle::spawn(hardware).unwrap();
        let path = dir.join(SOCKET_NAME);
        let listener = bind(&path).unwrap();
        let stop = CancellationToken::new();
        tokio::spawn(serve(listener, path.clone(), handle, stop.clone()));
        (path, stop)
    }

    async fn cli(path: &Path, request: HalRequest) -> Result<String, String> {
        let path = path.to_owned();
        tokio::task::spawn_blocking(move || {
            ask(&path, &request)
                .map(|response| render(&request, &response))
                .map_err(|e| e.to_string())
        })
        .await
        .unwrap()
    }

    #[tokio::test]
    async fn the_cli_drives_the_hardware_through_the_socket() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let (path, stop) = serve_depot(dir.path()).await;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);

        let set = |level: &str| HalRequest::Set {
            name: "door".into(),
            level: level.into(),
        };
        let get = |name: &str| HalRequest::Get { name: name.into() };
        assert_eq!(cli(&path, get("door")).await.unwrap(), "off");
        assert_eq!(cli(&path, set("open")).await.unwrap(), "door on");
        assert_eq!(cli(&path, get("door")).await.unwrap(), "on");
        assert_eq!(cli(&path, get("door_closed")).await.unwrap(), "on");
        let status: serde_json::Value =
            serde_json::from_str(&cli(&path, HalRequest::Status).await.unwrap()).unwrap();
        assert_eq!(status["outputs"]["door"], true);
        // Manual simulated time stands still: the door was told to open but has not moved.
        assert_eq!(status["depot_status"]["door"], "closed");

        let err = cli(&path, get("dor")).await.unwrap_err();
        assert_eq!(
            err,
            "no output or input named \"dor\" is configured (outputs: charger, door, estop, \
             lights; inputs: charging, door_closed, door_open, drone_present)"
        );
        let err = cli(&path, set("ajar")).await.unwrap_err();
        assert!(err.starts_with("\"ajar\" is not a level"), "{err}");
        let err = cli(
            &path,
            HalRequest::Set {
                name: "door_open".into(),
                level: "on".into(),
            },
        )
        .await
        .unwrap_err();
        assert!(err.contains("no output named \"door_open\""), "{err}");

        // Several requests on one connection, and a bad one, straight on the socket.
        let mut stream = UnixStream::connect(&path).await.unwrap();
        stream
            .write_all(b"{\"op\":\"get\",\"name\":\"door\"}\n{\"op\":\"fly\"}\n")
            .await
            .unwrap();
        let mut lines = BufReader::new(stream).lines();
        let first: HalResponse =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!((first.ok, first.on), (true, Some(true)));
        let second: HalResponse =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert!(!second.ok && second.error.unwrap().starts_with("bad request"));

        stop.cancel();
        crate::testing::eventually("the socket to be removed", || async {
            (!path.exists()).then_some(())
        })
        .await;
        let err = tokio::task::spawn_blocking(move || ask(&path, &HalRequest::Status))
            .await
            .unwrap()
            .unwrap_err();
        assert!(matches!(err, HalCliError::NotRunning { .. }), "{err}");
        assert!(
            err.to_string().starts_with("the agent is not running"),
            "{err}"
        );
    }
}
