//! The busgate broker: `broker --board boards/NAME.toml [--journal stdout|off|FILE] [--listen ADDR]`.

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use broker::{JournalChoice, Overrides};
use clap::Parser;
use tracing_subscriber::EnvFilter;

/// Runs the board's MQTT broker (rumqttd) with the listeners, limits and journal of its board file.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The board file, e.g. boards/sim.toml.
    #[arg(long)]
    board: PathBuf,
    /// Where the message journal goes: stdout, off, or a file (rotated as the board file says).
    #[arg(long, value_name = "stdout|off|FILE")]
    journal: Option<JournalChoice>,
    /// Listen only on this loopback address instead of the board's listeners.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[tokio::main(worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // rumqttd is chatty: it logs every connection at info (hidden by default) and even an
    // ordinary disconnection at error (shown).
    // rumqttd's router logs every ordinary client disconnect as an error ("no-connection id
    // ... is already gone"); those lines are left out unless RUST_LOG asks for them.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,broker=info,rumqttd::router::routing=off"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let mut board = board::Board::load(&args.board).context("loading the board file")?;
    Overrides { journal: args.journal, listen: args.listen }.apply(&mut board).context("applying the command line")?;
    let shutdown = broker::shutdown_signal()?;
    broker::run(&board, shutdown).await.with_context(|| format!("running the broker of board {:?}", board.name))
}
