//! `sortie-agent hal set|get|status`: the client of the running agent's [`socket`](super::socket).
//!
//! A plan's script runs `sortie-agent hal set door open`; the agent (which owns the pins) does
//! it and answers, so a job never opens a GPIO line the agent holds. Blocking: it is a short
//! command-line program.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::socket::{HalRequest, HalResponse, SOCKET_ENV, SOCKET_NAME};

/// How long the CLI waits for the agent's answer (safe limits of hardware requests included).
const ANSWER_LIMIT: Duration = Duration::from_secs(30);

/// Why a `hal` command failed.
#[derive(Debug, thiserror::Error)]
pub enum HalCliError {
    /// No socket given and none to be found.
    #[error(
        "where is the agent? pass --socket PATH or --config FILE (its data_dir holds {SOCKET_NAME}), \
         or run from a job ({SOCKET_ENV} is set there)"
    )]
    NoSocket,
    /// Nobody listens on the socket.
    #[error("the agent is not running (nothing listens on {path}): {error}")]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// What connecting said.
        error: std::io::Error,
    },
    /// The connection broke or timed out.
    #[error("talking to the agent on {path}: {error}")]
    Io {
        /// The socket.
        path: PathBuf,
        /// What happened.
        error: std::io::Error,
    },
    /// The agent refused the request (unknown name, bad level, hardware failure).
    #[error("{0}")]
    Refused(String),
    /// The level word is not one (checked before asking the agent).
    #[error("{0}")]
    BadLevel(String),
}

/// Where the socket is: `--socket`, else the data directory of `--config`'s file, else
/// `from_env` (`$SORTIE_HAL_SOCKET`, set for jobs).
pub fn socket_path(
    socket: Option<PathBuf>,
    config: Option<&Path>,
    from_env: Option<PathBuf>,
) -> Result<PathBuf, anyhow::Error> {
    if let Some(socket) = socket {
        return Ok(socket);
    }
    let Some(config) = config else {
        return from_env.ok_or_else(|| HalCliError::NoSocket.into());
    };
    let layer = crate::config::ConfigLayer::from_file(config)?;
    let data_dir = layer
        .data_dir
        .unwrap_or_else(|| crate::config::DEFAULT_DATA_DIR.into());
    Ok(data_dir.join(SOCKET_NAME))
}

/// Sends `request` to the agent at `path`; returns its successful answer.
pub fn ask(path: &Path, request: &HalRequest) -> Result<HalResponse, HalCliError> {
    if let HalRequest::Set { level, .. } = request {
        sortie_hal::parse_level(level).map_err(|e| HalCliError::BadLevel(e.to_string()))?;
    }
    let io = |error| HalCliError::Io {
        path: path.to_owned(),
        error,
    };
    let mut stream = UnixStream::connect(path).map_err(|error| HalCliError::NotRunning {
        path: path.to_owned(),
        error,
    })?;
    stream.set_read_timeout(Some(ANSWER_LIMIT)).map_err(io)?;
    let mut line = serde_json::to_vec(request).expect("a request serializes");
    line.push(b'\n');
    stream.write_all(&line).map_err(io)?;
    let mut answer = String::new();
    BufReader::new(&stream).read_line(&mut answer).map_err(io)?;
    if answer.is_empty() {
        return Err(io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the agent closed the connection without answering",
        )));
    }
    let response: HalResponse = serde_json::from_str(&answer).map_err(|e| {
        io(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable answer: {e}"),
        ))
    })?;
    if !response.ok {
        return Err(HalCliError::Refused(
            response
                .error
                .unwrap_or_else(|| "the agent refused without saying why".into()),
        ));
    }
    Ok(response)
}

/// What the CLI prints for a successful answer: `on`/`off` for `get` (easy to test in a
/// script), `NAME on` for `set`, pretty JSON for `status`.
pub fn render(request: &HalRequest, response: &HalResponse) -> String {
    let word = |on: Option<bool>| if on == Some(true) { "on" } else { "off" };
    match request {
        HalRequest::Get { .. } => word(response.on).to_owned(),
        HalRequest::Set { name, .. } => format!("{name} {}", word(response.on)),
        HalRequest::Status => {
            serde_json::to_string_pretty(&response.status).expect("a JSON value serializes")
        }
    }
}
