//! Throughput and footprint of the I2C gateway and the broker: 50 simulated devices (5 mock
//! buses, each with 2 BME280 and 8 INA219) polled at 100 Hz. Run with `cargo xtask bench`.

const BUSES: usize = 5;
const DEVICES_PER_BUS: usize = 10;

fn board(port: u16, poll_ms: u64) -> String {
    let mut text = format!(
        "[board]\nname = \"bench\"\ntarget = \"x86_64-unknown-linux-gnu\"\n\n\
         [broker.listeners.local]\naddress = \"127.0.0.1:{port}\"\n\n[gateway]\noutbox_capacity = 10000\n"
    );
    for bus in 0..BUSES {
        text.push_str(&format!("\n[[bus]]\nname = \"i2c{bus}\"\nkind = \"i2c\"\nmock = true\n"));
        for device in 0..DEVICES_PER_BUS {
            // The BME280 has only two addresses; the rest are INA219s.
            let (driver, address) = if device < 2 { ("bme280", 0x76 + device) } else { ("ina219", 0x40 + device - 2) };
            text.push_str(&format!(
                "\n[[device]]\nname = \"d{bus}-{device}\"\nbus = \"i2c{bus}\"\ndriver = \"{driver}\"\naddress = {address}\npoll_ms = {poll_ms}\n"
            ));
        }
    }
    text
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    test_support::bench::run(test_support::bench::Setup {
        gateway: "i2c-gateway",
        devices: BUSES * DEVICES_PER_BUS,
        poll_ms: 10,
        board,
    })
    .await;
}
