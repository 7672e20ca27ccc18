//! The gateway's view of an INA219: init, poll and describe over the community `ina219` crate.

use std::fmt::Debug;

use device::{Args, Description, Device, DeviceError, Kind, Options, Outcome, Quantity, Sample, StdDelay};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{I2c, Operation};
use ina219::SyncIna219;
use ina219::address::Address;
use ina219::calibration::Calibration;
use ina219::errors::{InitializationErrorReason, MeasurementError};
use ina219::measurements::{CurrentRegister, PowerRegister};

use crate::registers::{self, Settings};

/// An INA219 hosted by the gateway.
///
/// The community driver keeps no state worth keeping between calls (its configuration cache is
/// only compiled in with its `paranoid` feature, which the workspace leaves off), so each call
/// borrows the bus for a short-lived driver and the adapter can also reach the bus itself for
/// the read-back check the driver does not offer.
pub struct Ina219Device<I2C, D = StdDelay> {
    i2c: I2C,
    address: Address,
    settings: Settings,
    /// Waits one conversion time when a poll finds no completed conversion, as happens when
    /// the gateway polls right after init() (writing the configuration clears CNVR).
    delay: D,
}

impl<I2C> Ina219Device<I2C> {
    /// Validates the address and options; does not touch the bus (init() does).
    pub fn new(i2c: I2C, address: u8, options: &Options) -> Result<Self, DeviceError> {
        let address = Address::from_byte(address).map_err(|_| {
            DeviceError::Config(format!(
                "address 0x{address:02X} is outside the INA219's range 0x40 to 0x4F (set by pins A0 and A1)"
            ))
        })?;
        let settings = Settings::from_options(options)?;
        Ok(Self { i2c, address, settings, delay: StdDelay })
    }
}

impl<I2C, D> Ina219Device<I2C, D> {
    /// Replaces the delay used while waiting for a conversion (tests pass a no-op delay).
    pub fn with_delay<D2: DelayNs>(self, delay: D2) -> Ina219Device<I2C, D2> {
        Ina219Device { i2c: self.i2c, address: self.address, settings: self.settings, delay }
    }

    /// Gives the bus back.
    pub fn destroy(self) -> I2C {
        self.i2c
    }

    fn scale(&self) -> Scale {
        Scale {
            register: self.settings.calibration,
            current_lsb: self.settings.current_lsb(),
            power_lsb: self.settings.power_lsb(),
        }
    }
}

impl<I2C, D> Device for Ina219Device<I2C, D>
where
    I2C: I2c + Send,
    I2C::Error: Debug,
    D: DelayNs + Send,
{
    fn describe(&self) -> Description {
        Description {
            model: "INA219",
            quantities: vec![
                Quantity {
                    name: "bus_voltage",
                    unit: Some("V"),
                    kind: Kind::Voltage,
                    description: "voltage between IN- and ground (4 mV resolution)",
                },
                Quantity {
                    name: "shunt_voltage",
                    unit: Some("mV"),
                    kind: Kind::Voltage,
                    description: "voltage across the shunt resistor (10 µV resolution)",
                },
                Quantity {
                    name: "current",
                    unit: Some("A"),
                    kind: Kind::Current,
                    description: "current through the shunt, negative when it flows from IN- to IN+",
                },
                Quantity {
                    name: "power",
                    unit: Some("W"),
                    kind: Kind::Power,
                    description: "power delivered to the load (magnitude)",
                },
            ],
            commands: Vec::new(),
        }
    }

    fn init(&mut self) -> Result<(), DeviceError> {
        let scale = self.scale();
        let configuration = self.settings.configuration();
        // The driver resets the chip, waits for the configuration register to show its
        // power-on value, then writes the calibration register.
        let mut ina =
            SyncIna219::new_calibrated(&mut self.i2c, self.address, scale).map_err(|error| init_error(error.reason))?;
        ina.set_configuration(configuration).map_err(DeviceError::i2c)?;

        // Read both registers back in one transaction: an absent chip fails here, and a chip
        // that is not an INA219 rarely echoes both values.
        let (mut config_bytes, mut calibration_bytes) = ([0; 2], [0; 2]);
        self.i2c
            .transaction(
                self.address.as_byte(),
                &mut [
                    Operation::Write(&[registers::CONFIGURATION]),
                    Operation::Read(&mut config_bytes),
                    Operation::Write(&[registers::CALIBRATION]),
                    Operation::Read(&mut calibration_bytes),
                ],
            )
            .map_err(DeviceError::i2c)?;
        let (config_read, calibration_read) = (u16::from_be_bytes(config_bytes), u16::from_be_bytes(calibration_bytes));
        if config_read != configuration.as_bits() || calibration_read != scale.register {
            return Err(DeviceError::Chip(format!(
                "configuration and calibration registers read back 0x{config_read:04X} and 0x{calibration_read:04X} \
                 after writing 0x{:04X} and 0x{:04X}: is this an INA219?",
                configuration.as_bits(),
                scale.register
            )));
        }
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        let scale = self.scale();
        let conversion_us = self.settings.configuration().conversion_time_us().unwrap_or(0);
        let mut ina = SyncIna219::new_unchecked(&mut self.i2c, self.address, scale);
        // One transaction reads bus voltage, power, shunt voltage and current; the driver
        // returns None while CNVR is clear, i.e. no conversion completed since the last read.
        let measurement = match ina.next_measurement().map_err(measurement_error)? {
            Some(measurement) => measurement,
            None => {
                self.delay.delay_us(conversion_us);
                ina.next_measurement().map_err(measurement_error)?.ok_or_else(|| {
                    DeviceError::Chip(format!(
                        "no conversion completed within {conversion_us} µs (conversion ready flag stays clear)"
                    ))
                })?
            }
        };
        Ok(vec![
            Sample::new("bus_voltage", f64::from(measurement.bus_voltage.voltage_mv()) / 1e3),
            Sample::new("shunt_voltage", f64::from(measurement.shunt_voltage.shunt_voltage_uv()) / 1e3),
            Sample::new("current", measurement.current),
            Sample::new("power", measurement.power),
        ])
    }

    fn command(&mut self, action: &str, _args: &Args) -> Result<Outcome, DeviceError> {
        Err(DeviceError::UnsupportedAction(action.to_owned()))
    }
}

/// Our calibration for the community driver: the register value from the options, and the
/// LSBs that turn the current and power registers into amperes and watts.
#[derive(Debug, Clone, Copy)]
struct Scale {
    register: u16,
    current_lsb: f64,
    power_lsb: f64,
}

impl Calibration for Scale {
    type Current = f64;
    type Power = f64;

    fn register_bits(&self) -> u16 {
        self.register
    }

    fn current_from_register(&self, register: CurrentRegister) -> f64 {
        // The current register is two's complement (§8.6.3.4).
        f64::from(register.0 as i16) * self.current_lsb
    }

    fn power_from_register(&self, register: PowerRegister) -> f64 {
        // The power register is unsigned (§8.6.3.3); Linux's ina2xx driver reads it the same way.
        f64::from(register.0) * self.power_lsb
    }
}

fn init_error<E: embedded_hal::i2c::Error + Debug>(reason: InitializationErrorReason<E>) -> DeviceError {
    match reason {
        InitializationErrorReason::I2cError(error) => DeviceError::i2c(error),
        InitializationErrorReason::ConfigurationNotDefaultAfterReset => DeviceError::Chip(format!(
            "configuration register did not return to its power-on value 0x{:04X} after a reset: is this an INA219?",
            registers::CONFIG_RESET_VALUE
        )),
        // Only the driver's `paranoid` feature checks these.
        other => DeviceError::Chip(format!("unexpected register values after reset: {other:?}")),
    }
}

fn measurement_error<E: embedded_hal::i2c::Error + Debug>(error: MeasurementError<E>) -> DeviceError {
    match error {
        MeasurementError::I2cError(error) => DeviceError::i2c(error),
        MeasurementError::MathOverflow(measurement) => DeviceError::Chip(format!(
            "math overflow: current or power exceeds its register at bus voltage {} V and shunt voltage {} mV; \
             raise max_current_a",
            f64::from(measurement.bus_voltage.voltage_mv()) / 1e3,
            f64::from(measurement.shunt_voltage.shunt_voltage_uv()) / 1e3
        )),
        MeasurementError::ShuntVoltageReadError(error) => DeviceError::Chip(format!("shunt voltage: {error}")),
        MeasurementError::BusVoltageReadError(error) => DeviceError::Chip(format!("bus voltage: {error}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale() -> Scale {
        Scale { register: 4194, current_lsb: 100e-6, power_lsb: 2e-3 }
    }

    #[test]
    fn current_register_is_signed() {
        assert!((scale().current_from_register(CurrentRegister(10_000)) - 1.0).abs() < 1e-12);
        assert!((scale().current_from_register(CurrentRegister(0xFFFF)) + 100e-6).abs() < 1e-12);
        assert!((scale().current_from_register(CurrentRegister(0x8000)) + 3.2768).abs() < 1e-12);
    }

    #[test]
    fn power_register_is_unsigned() {
        assert!((scale().power_from_register(PowerRegister(0xFFFF)) - 131.07).abs() < 1e-9);
        assert!((scale().power_from_register(PowerRegister(500)) - 1.0).abs() < 1e-12);
    }
}
