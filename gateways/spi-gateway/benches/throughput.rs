//! Throughput and footprint of the SPI gateway and the broker: 50 simulated devices (5 mock
//! buses, each with 4 MCP3008, 4 MAX31855 and 2 MCP23S17) polled at 100 Hz. Run with
//! `cargo xtask bench`.

const BUSES: usize = 5;
const DEVICES_PER_BUS: usize = 10;

fn board(port: u16, poll_ms: u64) -> String {
    let mut text = format!(
        "[board]\nname = \"bench\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\n\
         [broker.listeners.local]\naddress = \"127.0.0.1:{port}\"\n\n[gateway]\noutbox_capacity = 10000\n"
    );
    for bus in 0..BUSES {
        text.push_str(&format!("\n[[bus]]\nname = \"spi{bus}\"\nkind = \"spi\"\nmock = true\n"));
        for chip_select in 0..DEVICES_PER_BUS {
            let driver = match chip_select {
                0..4 => "mcp3008",
                4..8 => "max31855",
                _ => "mcp23s17",
            };
            text.push_str(&format!(
                "\n[[device]]\nname = \"d{bus}-{chip_select}\"\nbus = \"spi{bus}\"\ndriver = \"{driver}\"\nchip_select = {chip_select}\npoll_ms = {poll_ms}\n"
            ));
        }
    }
    text
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    test_support::bench::run(test_support::bench::Setup {
        gateway: "spi-gateway",
        devices: BUSES * DEVICES_PER_BUS,
        poll_ms: 10,
        board,
    })
    .await;
}
