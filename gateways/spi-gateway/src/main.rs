//! `spi-gateway --board boards/NAME.toml [--mock]`: runs every SPI device of a board.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;

/// Runs every SPI device of a board and bridges it to MQTT.
#[derive(Parser)]
#[command(version)]
struct Args {
    /// The board file, e.g. boards/sim.toml.
    #[arg(long)]
    board: PathBuf,
    /// Simulate every bus, whatever the board file says.
    #[arg(long)]
    mock: bool,
    /// Simulated chips hold their inputs still instead of drifting (for tests).
    #[arg(long)]
    still: bool,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    runtime::cli::init_logging();
    let mut board = board::Board::load(&args.board)?;
    if args.mock {
        board.force_mock();
    }
    let plan = spi_gateway::plan(&board, args.still)?;
    anyhow::ensure!(!plan.buses.is_empty(), "{}: the board has no SPI devices", args.board.display());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().context("starting tokio")?;
    let counters = runtime.block_on(spi_gateway::run(plan, runtime::cli::shutdown_signal()))?;
    tracing::info!(?counters, "stopped");
    Ok(())
}
