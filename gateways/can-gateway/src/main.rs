//! `can-gateway --board boards/NAME.toml [--mock] [--record FILE]`: bridges a board's CAN buses
//! to MQTT. `can-gateway decode --dbc FILE --log FILE`: prints, one JSON line per frame of a
//! candump log, the payload the gateway would publish for it.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "can-gateway",
    version,
    about = "Bridges a board's CAN buses to MQTT with DBC decoding",
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Absent only with a subcommand.
    #[command(flatten)]
    gateway: Option<runtime::cli::Args>,
    /// Write every received frame to this candump -L log.
    #[arg(long)]
    record: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Decodes a candump -L log with DBC files: one JSON line per frame, as the gateway would
    /// publish it (decoded message, or the raw frame when no DBC message matches).
    Decode {
        /// DBC file; repeat for several.
        #[arg(long, required = true)]
        dbc: Vec<PathBuf>,
        /// candump -L log.
        #[arg(long)]
        log: PathBuf,
        /// Bus name written in the payloads.
        #[arg(long, default_value = "can0")]
        bus: String,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Command::Decode { dbc, log, bus }) = cli.command {
        let stdout = std::io::stdout().lock();
        let summary = can_gateway::offline::decode(&dbc, &log, &bus, std::io::BufWriter::new(stdout))?;
        eprintln!("{summary}");
        return Ok(());
    }
    let Some(args) = cli.gateway else { anyhow::bail!("--board is required") };
    let options = can_gateway::Options { record: cli.record, still: args.still };
    runtime::cli::serve(&args, |board| Ok(can_gateway::plan(board)?.start(&options)?))
        .with_context(|| args.board.display().to_string())?;
    Ok(())
}
