//! Simulation controls of a device on a mock SPI bus: make the chip absent (MISO high or low),
//! make its transfers fail, bring it back, set its inputs. Reached on the device's `sim` topic
//! in mock mode only.

use buses::MockSpiBus;
use buses::mock_spi::Injected;
use device::{Args, CommandSpec, DeviceError, Outcome, Param, ParamKind};
use runtime::{SimControl, sim};

/// One simulated chip on a mock SPI bus.
pub struct SpiSim {
    pub bus: MockSpiBus,
    pub chip_select: u8,
}

impl SimControl for SpiSim {
    fn commands(&self) -> Vec<CommandSpec> {
        let mut commands = vec![
            CommandSpec {
                action: "absent",
                params: vec![Param {
                    name: "level",
                    kind: ParamKind::Choice(&["high", "low"]),
                    required: false,
                    description: "what MISO reads without the chip: high (pull-up, default) or low",
                }],
                description: "the chip stops answering; reads return all 1s or all 0s",
            },
            sim::action("transfer_error", "every transfer to the chip fails"),
            sim::action("restore", "clears an injected fault"),
        ];
        commands.extend(sim::input_commands());
        commands
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        let (bus, chip_select) = (&self.bus, self.chip_select);
        if let Some(result) =
            sim::input_command(action, args, |n, v| bus.set_input(chip_select, n, v), |n| bus.inspect(chip_select, n))
        {
            return result;
        }
        let fault = match action {
            "absent" => Some(Injected::Absent(if args.get("level").and_then(|l| l.as_str()) == Some("low") {
                0x00
            } else {
                0xFF
            })),
            "transfer_error" => Some(Injected::TransferError),
            "restore" => None,
            other => return Err(DeviceError::UnsupportedAction(other.to_owned())),
        };
        bus.inject(chip_select, fault);
        Ok(Outcome::default())
    }
}
