//! `spi-gateway --board boards/NAME.toml [--mock] [--still]`: runs every SPI device of a board.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let about = "Runs every SPI device of a board and bridges it to MQTT";
    let args = runtime::cli::Args::parse_for(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), about);
    runtime::cli::serve(&args, |board| Ok(spi_gateway::plan(board, args.still)?.start()?))
        .with_context(|| args.board.display().to_string())?;
    Ok(())
}
