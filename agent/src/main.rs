//! `sortie-agent`: the program that runs on each device.
//!
//! The MQTT relay that feeds it jobs is the next step of the project (see the README's roadmap);
//! until it lands, the binary builds for every target and says plainly that it cannot run jobs.

use clap::Parser;

/// Runs Sortie jobs on this device.
#[derive(Debug, Parser)]
#[command(name = "sortie-agent", version, about)]
struct Cli {
    /// The agent's configuration file (printed by `sortie-coordinator node agent-config ID`).
    #[arg(long, env = "SORTIE_AGENT_CONFIG")]
    config: Option<std::path::PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    anyhow::bail!(
        "this build of sortie-agent cannot run jobs yet: the MQTT relay is not implemented \
         (job states it will speak: {})",
        sortie_shared::JobState::ALL.map(|s| s.as_str()).join(", ")
    )
}
