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
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// The board file.
    #[arg(long)]
    board: Option<PathBuf>,
    /// Run every bus on a mock bus (simulated ECU, replay) instead of SocketCAN.
    #[arg(long)]
    mock: bool,
    /// Write every received frame to this candump -L log.
    #[arg(long)]
    record: Option<PathBuf>,
    /// Simulated ECUs hold their values still (counters still count), for tests.
    #[arg(long)]
    still: bool,
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
    runtime::cli::init_logging();
    let path = cli.board.context("--board is required")?;
    let mut board = board::Board::load(&path)?;
    if cli.mock {
        board.force_mock();
    }
    let plan = can_gateway::plan(&board)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let options = can_gateway::Options { record: cli.record, still: cli.still };
    let counters = runtime
        .block_on(can_gateway::run(plan, options, runtime::cli::shutdown_signal()))
        .with_context(|| path.display().to_string())?;
    tracing::info!(?counters, "stopped");
    Ok(())
}
