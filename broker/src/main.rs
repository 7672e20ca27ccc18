//! The busgate broker: `broker --board boards/NAME.toml [--journal stdout|off|FILE] [--listen ADDR]`,
//! and the credential tools: `broker hash-password` (reads a password on stdin, prints its hash for
//! the board file) and `broker gen-password --out FILE` (a random password in a new mode 0600
//! file, for a gateway's `credentials_dir`; prints its hash) and `broker gen-certs --out DIR`
//! (development certificates for a TLS listener).

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use broker::{JournalChoice, Overrides};
use clap::{Parser, Subcommand};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

/// Runs the board's MQTT broker (rumqttd) with the listeners, limits and journal of its board file.
#[derive(Debug, Parser)]
#[command(version, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    tool: Option<Tool>,
    /// The board file, e.g. boards/sim.toml.
    #[arg(long, required = true)]
    board: Option<PathBuf>,
    /// Where the message journal goes: stdout, off, or a file (rotated as the board file says).
    #[arg(long, value_name = "stdout|off|FILE")]
    journal: Option<JournalChoice>,
    /// Listen only on this loopback address instead of the board's listeners.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
enum Tool {
    /// Reads a password from stdin and prints its salted Argon2id hash for `password_hash`.
    HashPassword,
    /// Writes a new random password to FILE (created, mode 0600) and prints its hash, or writes
    /// it with --hash-out.
    GenPassword {
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Also write the hash into FILE (mode 0600), where the broker finds a gateway's hash in
        /// the credentials directory: `{gateway}.hash` beside `{gateway}.password`.
        #[arg(long, value_name = "FILE")]
        hash_out: Option<PathBuf>,
    },
    /// Writes a development CA and a server and a client certificate signed by it into DIR
    /// (ca.pem, server.pem, server.key, client.pem, client.key), for TLS listeners.
    GenCerts {
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// A name or address the server certificate is for, besides localhost and 127.0.0.1.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
    },
}

fn tool(tool: Tool) -> anyhow::Result<()> {
    match tool {
        Tool::HashPassword => {
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("reading the password from stdin")?;
            let password = password.trim_end_matches(['\r', '\n']);
            anyhow::ensure!(!password.is_empty(), "an empty password on stdin");
            println!("{}", broker::policy::hash_password(password)?);
        }
        Tool::GenPassword { out, hash_out } => {
            let password = broker::policy::random_password()?;
            let hash = broker::policy::hash_password(&password)?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&out)
                .with_context(|| format!("creating {}", out.display()))?;
            file.write_all(password.as_bytes()).with_context(|| format!("writing {}", out.display()))?;
            match hash_out {
                Some(path) => {
                    write_private(&path, hash.as_bytes()).with_context(|| format!("writing {}", path.display()))?
                }
                None => println!("{hash}"),
            }
        }
        Tool::GenCerts { out, hosts } => {
            broker::tls::generate_dev_certs(&out, &hosts)
                .with_context(|| format!("writing certificates into {}", out.display()))?;
            eprintln!("wrote ca.pem, server.pem, server.key, client.pem and client.key into {}", out.display());
        }
    }
    Ok(())
}

/// Writes a file only its owner can read, replacing any old one at once (a rename).
fn write_private(path: &std::path::Path, contents: &[u8]) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
    file.write_all(contents)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
}

#[tokio::main(worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(command) = args.tool {
        return tool(command);
    }
    let Some(board) = args.board else { anyhow::bail!("--board is required") };
    // rumqttd's router logs each of the engine's links at info; the engine logs the clients.
    // rustls warns about what clients send (an IP address as the TLS server name, as
    // libmosquitto and Paho C do), which needs no one's attention on a board.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn,broker=info,rustls=error"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_filter(filter)
        .with_filter(broker::log::RouterNoise);
    tracing_subscriber::registry().with(layer).init();

    let path = board;
    let mut board = board::Board::load(&path).context("loading the board file")?;
    Overrides { journal: args.journal, listen: args.listen }.apply(&mut board).context("applying the command line")?;
    let shutdown = broker::shutdown_signal()?;
    let reload = reload_on_hangup(path)?;
    broker::run(&board, shutdown, reload).await.with_context(|| format!("running the broker of board {:?}", board.name))
}

/// On SIGHUP, reads the board file again and hands on its identities and access rules; a
/// board file that no longer loads is reported and the old rules stay.
fn reload_on_hangup(path: PathBuf) -> anyhow::Result<tokio::sync::mpsc::Receiver<broker::policy::Policy>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            let loaded = board::Board::load(&path)
                .map_err(anyhow::Error::from)
                .and_then(|board| broker::policy::Policy::from_board(&board).map_err(anyhow::Error::from));
            match loaded {
                Ok(policy) => {
                    if tx.send(policy).await.is_err() {
                        return;
                    }
                }
                Err(error) => {
                    tracing::error!(error = format!("{error:#}"), path = %path.display(), "SIGHUP: the board file does not load; the rules stay as they were")
                }
            }
        }
    });
    Ok(rx)
}
