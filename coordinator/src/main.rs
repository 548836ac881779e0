//! `sortie-coordinator`: command line, logging, signals; everything else is in the library.

use clap::Parser;
use sortie_coordinator::cli::{Cli, Command, ServeArgs};
use sortie_coordinator::config::Config;
use sortie_coordinator::{admin, run};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match dispatch(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sortie-coordinator: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn dispatch(mut cli: Cli) -> anyhow::Result<()> {
    let command = cli.command.take();
    let default_serve = ServeArgs::default();
    match command {
        None => serve(cli.config(&default_serve)?),
        Some(Command::Serve(args)) => serve(cli.config(&args)?),
        Some(Command::PrintDefaultConfig) => {
            print!("{}", Config::default_toml());
            Ok(())
        }
        Some(Command::User(c)) => admin::user(&cli.config(&default_serve)?, c),
        Some(Command::Client(c)) => admin::client(&cli.config(&default_serve)?, c),
        Some(Command::Node(c)) => admin::node(&cli.config(&default_serve)?, c),
        Some(Command::Token(c)) => admin::token(&cli.config(&default_serve)?, c),
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sortie-coordinator")
        .build()?;
    runtime.block_on(async {
        let shutdown = CancellationToken::new();
        tokio::spawn(cancel_on_signal(shutdown.clone()));
        run(config, shutdown).await?;
        Ok(())
    })
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn cancel_on_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM");
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
        _ = terminate.recv() => tracing::info!("SIGTERM: shutting down"),
    }
    shutdown.cancel();
}
