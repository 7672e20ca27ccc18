//! `i2c-gateway --board boards/NAME.toml [--mock] [--still]`: runs every I2C device of a board.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let about = "Runs every I2C device of a board and bridges it to MQTT";
    let args = runtime::cli::Args::parse_for(env!("CARGO_PKG_NAME"), env!("CARGO_PKG_VERSION"), about);
    runtime::cli::init_logging();
    let board = args.load_board()?;
    let plan = i2c_gateway::plan(&board, args.still)?;
    runtime::cli::serve(plan.settings, plan.buses).with_context(|| args.board.display().to_string())?;
    Ok(())
}
