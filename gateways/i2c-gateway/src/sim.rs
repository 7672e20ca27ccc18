//! Simulation controls of a device on a mock I2C bus: unplug it, make its transfers fail,
//! bring it back, set its inputs. Reached on the device's `sim` topic in mock mode only.

use buses::MockI2cBus;
use buses::mock_i2c::Injected;
use device::{Args, CommandSpec, DeviceError, Outcome};
use runtime::{SimControl, sim};

/// One simulated chip on a mock I2C bus.
pub struct I2cSim {
    pub bus: MockI2cBus,
    pub address: u8,
}

impl SimControl for I2cSim {
    fn commands(&self) -> Vec<CommandSpec> {
        let mut commands = vec![
            sim::action("remove", "the chip stops acknowledging its address, as if unplugged"),
            sim::action("bus_error", "every transfer to the chip fails with a bus error"),
            sim::action("restore", "clears an injected fault"),
        ];
        commands.extend(sim::input_commands());
        commands
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        let (bus, address) = (&self.bus, self.address);
        if let Some(result) =
            sim::input_command(action, args, |n, v| bus.set_input(address, n, v), |n| bus.inspect(address, n))
        {
            return result;
        }
        let fault = match action {
            "remove" => Some(Injected::Removed),
            "bus_error" => Some(Injected::BusError),
            "restore" => None,
            other => return Err(DeviceError::UnsupportedAction(other.to_owned())),
        };
        bus.inject(address, fault);
        Ok(Outcome::default())
    }
}
