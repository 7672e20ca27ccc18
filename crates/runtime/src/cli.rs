//! What every gateway program does the same way: its command line, logging, and running
//! until SIGINT or SIGTERM.

use std::path::PathBuf;

use board::{Board, BoardError};

use crate::settings::{Counters, RuntimeError, Settings};
use crate::shell::Loop;

/// The command line of every gateway program.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// The board file, e.g. boards/sim.toml.
    #[arg(long)]
    pub board: PathBuf,
    /// Simulate every bus, whatever the board file says.
    #[arg(long)]
    pub mock: bool,
    /// Simulated chips and ECUs hold their inputs still instead of drifting (counters still
    /// count), for tests.
    #[arg(long)]
    pub still: bool,
}

impl Args {
    /// Parses the program's arguments; `name`, `version` and `about` are the program's own
    /// (for `--help` and `--version`).
    pub fn parse_for(name: &'static str, version: &'static str, about: &'static str) -> Args {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Args::command().name(name).version(version).about(about).get_matches();
        Args::from_arg_matches(&matches).unwrap_or_else(|error| error.exit())
    }

    /// The board file, with every bus mocked if `--mock` was given.
    pub fn load_board(&self) -> Result<Board, BoardError> {
        let mut board = Board::load(&self.board)?;
        if self.mock {
            board.force_mock();
        }
        Ok(board)
    }
}

/// Why a gateway could not be built from its board file, in the gateway's own words.
pub type StartError = Box<dyn std::error::Error + Send + Sync>;

/// Why a gateway program stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Board(#[from] BoardError),
    #[error("starting the async runtime: {0}")]
    Tokio(std::io::Error),
    #[error(transparent)]
    Start(StartError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

/// Runs a gateway program: logging, the board file (mocked with `--mock`), then the gateway
/// that `start` builds from it (inside the async runtime, so it may spawn tasks), on a
/// single-threaded runtime until SIGINT or SIGTERM.
pub fn serve<L: Loop>(
    args: &Args,
    start: impl FnOnce(&Board) -> Result<(Settings, L), StartError>,
) -> Result<Counters, ServeError> {
    init_logging();
    let board = args.load_board()?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(ServeError::Tokio)?;
    let (settings, gateway) = {
        let _inside = runtime.enter();
        start(&board).map_err(ServeError::Start)?
    };
    Ok(runtime.block_on(crate::shell::run(&settings, gateway, shutdown_signal()))?)
}

/// Logs to stderr, filtered by `RUST_LOG` (default: info, and warnings only from rumqttc).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rumqttc=warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

/// Completes on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (signal(SignalKind::interrupt()), signal(SignalKind::terminate()))
    else {
        tracing::error!("cannot install signal handlers; stop the gateway with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}
