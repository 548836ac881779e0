//! `sortie-agent`: the program that runs on each device.
//!
//! ```text
//! sortie-agent [run] [--config agent.toml] [--node-id N ...]   run one agent (the default)
//! sortie-agent print-default-config                            a commented config to start from
//! sortie-agent swarm --config-dir DIR [--count N]              many agents in one process
//! sortie-agent swarm --config a.toml --config b.toml ...
//! sortie-agent swarm --register URL --admin-token T --count N [--name-prefix sim-] [--data-dir D]
//! sortie-agent hal set NAME LEVEL | get NAME | status  [--socket PATH | --config agent.toml]
//! ```
//!
//! Exit codes: 0 after a clean stop (SIGINT/SIGTERM), 1 on a runtime failure, 2 for a bad
//! command line or configuration. `hal`: 0 done, 1 refused or the agent is unreachable, 2 a bad
//! command line (a level word that is none).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{ArgGroup, Args, Parser, Subcommand};
use sortie_agent::{ConfigLayer, DEFAULT_CONFIG};
use tokio_util::sync::CancellationToken;

/// Runs Sortie jobs on this device.
#[derive(Debug, Parser)]
#[command(
    name = "sortie-agent",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the agent (the default).
    Run(Box<RunArgs>),
    /// Print a commented configuration file with the defaults.
    PrintDefaultConfig,
    /// Run many agents in one process, one per config file (a simulated fleet).
    Swarm(SwarmArgs),
    /// Drive the running agent's hardware: set an output, read a line, show everything.
    ///
    /// Talks to the agent over `<data_dir>/hal.sock`, so a plan's script uses the hardware
    /// through the agent that owns it. Jobs find the socket in $SORTIE_HAL_SOCKET.
    Hal(HalArgs),
}

#[derive(Debug, Args)]
struct HalArgs {
    /// The agent's hardware socket.
    #[arg(long, global = true)]
    socket: Option<PathBuf>,
    /// The agent's configuration file: the socket is `<data_dir>/hal.sock`. Without either
    /// option: $SORTIE_HAL_SOCKET, which jobs have.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    action: HalAction,
}

#[derive(Debug, Subcommand)]
enum HalAction {
    /// Set an output: LEVEL is on/off, open/close, high/low, true/false or 1/0.
    Set {
        /// The output (`door`, `estop`, ...).
        name: String,
        /// The level.
        level: String,
    },
    /// Print an output's or input's level: `on` or `off`.
    Get {
        /// The output or input.
        name: String,
    },
    /// Print every output and input and the status readings, as JSON.
    Status,
}

#[derive(Debug, Args)]
struct RunArgs {
    /// The configuration file (from `sortie-coordinator node agent-config ID`).
    #[arg(long, env = "SORTIE_AGENT_CONFIG")]
    config: Option<PathBuf>,
    #[command(flatten)]
    overrides: ConfigLayer,
}

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("configs").required(true).args(["config_dir", "config", "register"])))]
struct SwarmArgs {
    /// A directory of config files (`*.toml`, taken in name order).
    #[arg(long)]
    config_dir: Option<PathBuf>,
    /// Config files, one per agent (repeat the flag or list several).
    #[arg(long, num_args = 1..)]
    config: Vec<PathBuf>,
    /// How many agents to run (default: one per file; required with --register).
    #[arg(long)]
    count: Option<usize>,
    /// Register the fleet itself: create (or reuse) nodes `<prefix>00001`… on the coordinator at
    /// this API URL (e.g. http://127.0.0.1:8000/gosd) and fetch their agent configs.
    #[arg(long, requires = "admin_token")]
    register: Option<String>,
    /// An admin's bearer token for --register (`sortie-coordinator token issue demo`).
    #[arg(long, env = "SORTIE_AGENT_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Name prefix of the registered nodes.
    #[arg(long, default_value = "sim-")]
    name_prefix: String,
    /// Where the registered agents keep their journals (one directory per node).
    #[arg(long, default_value = "./sortie-swarm-data")]
    data_dir: PathBuf,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run(Box::new(cli.run)));
    if let Command::PrintDefaultConfig = command {
        print!("{DEFAULT_CONFIG}");
        return ExitCode::SUCCESS;
    }
    if let Command::Hal(args) = command {
        return hal(args);
    }
    init_tracing();
    let outcome = match command {
        Command::Run(args) => load_one(*args).map(|c| Work::One(Box::new(c))),
        Command::Swarm(args) if args.register.is_some() => {
            if args.count.unwrap_or(0) == 0 {
                Err(anyhow::anyhow!("--register needs --count N (at least 1)"))
            } else {
                Ok(Work::RegisterSwarm(args))
            }
        }
        Command::Swarm(args) => load_swarm(args).map(Work::Swarm),
        Command::PrintDefaultConfig | Command::Hal(_) => unreachable!("handled above"),
    };
    let work = match outcome {
        Ok(work) => work,
        Err(e) => {
            eprintln!("sortie-agent: {e:#}");
            return ExitCode::from(2);
        }
    };
    match run(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("sortie-agent: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sortie-agent hal …`: one request to the running agent.
fn hal(args: HalArgs) -> ExitCode {
    use sortie_agent::hardware::cli::{ask, render, socket_path, HalCliError};
    use sortie_agent::hardware::socket::HalRequest;
    let request = match args.action {
        HalAction::Set { name, level } => HalRequest::Set { name, level },
        HalAction::Get { name } => HalRequest::Get { name },
        HalAction::Status => HalRequest::Status,
    };
    let from_env = std::env::var_os(sortie_agent::hardware::socket::SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let path = match socket_path(args.socket, args.config.as_deref(), from_env) {
        Ok(path) => path,
        Err(e) => {
            eprintln!("sortie-agent hal: {e:#}");
            return ExitCode::from(2);
        }
    };
    match ask(&path, &request) {
        Ok(response) => {
            println!("{}", render(&request, &response));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sortie-agent hal: {e}");
            match e {
                HalCliError::BadLevel(_) | HalCliError::NoSocket => ExitCode::from(2),
                _ => ExitCode::FAILURE,
            }
        }
    }
}

enum Work {
    One(Box<sortie_agent::AgentConfig>),
    Swarm(Vec<sortie_agent::AgentConfig>),
    RegisterSwarm(SwarmArgs),
}

fn load_one(args: RunArgs) -> anyhow::Result<sortie_agent::AgentConfig> {
    let file = match &args.config {
        Some(path) => ConfigLayer::from_file(path)?,
        None => ConfigLayer::default(),
    };
    Ok(file.merge(args.overrides).resolve()?)
}

fn load_swarm(args: SwarmArgs) -> anyhow::Result<Vec<sortie_agent::AgentConfig>> {
    let files = match &args.config_dir {
        Some(dir) => sortie_agent::swarm::config_files_in(dir)?,
        None => args.config.clone(),
    };
    Ok(sortie_agent::swarm::load_swarm(&files, args.count)?)
}

fn run(work: Work) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sortie-agent")
        .build()
        .context("starting the tokio runtime")?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(stop_on_signal(shutdown.clone()));
        match work {
            Work::One(config) => sortie_agent::run(*config, shutdown)
                .await
                .context("agent failed"),
            Work::Swarm(configs) => swarm(configs, shutdown).await,
            Work::RegisterSwarm(args) => {
                let configs = sortie_agent::swarm_register::register_fleet(
                    args.register.as_deref().unwrap_or_default(),
                    args.admin_token.as_deref().unwrap_or_default(),
                    args.count.unwrap_or_default(),
                    &args.name_prefix,
                    &args.data_dir,
                )
                .await
                .context("registering the swarm's nodes")?;
                swarm(configs, shutdown).await
            }
        }
    })
}

async fn swarm(
    configs: Vec<sortie_agent::AgentConfig>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let total = configs.len();
    match sortie_agent::swarm::run_swarm(configs, shutdown).await {
        0 => Ok(()),
        failed => anyhow::bail!("{failed} of {total} agents failed"),
    }
}

/// The first SIGINT or SIGTERM stops cleanly; a second one exits at once.
async fn stop_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot listen for SIGTERM/SIGINT");
        return;
    };
    for round in 0..2 {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        if round == 0 {
            tracing::info!("signal received: stopping (again to exit at once)");
            shutdown.cancel();
        }
    }
    tracing::warn!("second signal: exiting now");
    std::process::exit(130);
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
