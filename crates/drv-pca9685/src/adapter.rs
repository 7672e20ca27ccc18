//! The gateway's view of a PCA9685: sixteen PWM outputs over the community `pwm-pca9685` crate.

use std::fmt::Debug;

use device::{
    Args, CommandSpec, Description, Device, DeviceError, Kind, Options, Outcome, Param, ParamKind, Quantity, Sample,
    StdDelay,
};
use embedded_hal::delay::DelayNs;
use embedded_hal::i2c::{I2c, Operation};
use pwm_pca9685::{Channel, Pca9685};

use crate::registers::{self as reg, Pwm, Settings};

/// A PCA9685 hosted by the gateway.
pub struct Pca9685Device<I2C, D = StdDelay> {
    /// The community driver writes MODE1, the prescaler and the channel registers; it caches
    /// MODE1 so its writes keep the sleep and auto-increment bits it set.
    driver: Pca9685<device::SharedI2c<I2C>>,
    /// The same bus, for the reads the driver does not offer: channel read-back and the check
    /// at the end of init().
    bus: device::SharedI2c<I2C>,
    address: u8,
    settings: Settings,
    /// Waits for the oscillator after waking the chip (500 µs, §7.3.1).
    delay: D,
    /// Whether init() succeeded. Until then the driver's MODE1 cache says "asleep", and its
    /// first channel write would put a running chip to sleep.
    ready: bool,
}

impl<I2C: I2c> Pca9685Device<I2C> {
    /// Validates the address and options; does not touch the bus (init() does).
    pub fn new(i2c: I2C, address: u8, options: &Options) -> Result<Self, DeviceError> {
        reg::check_address(address)?;
        let settings = Settings::from_options(options)?;
        let bus = device::SharedI2c::new(i2c);
        // The driver's own address check agrees with ours; it does not touch the bus either.
        let driver = Pca9685::new(bus.clone(), address).map_err(|_| {
            DeviceError::Config(format!("address 0x{address:02X} is rejected by the pwm-pca9685 driver"))
        })?;
        Ok(Self { driver, bus, address, settings, delay: StdDelay, ready: false })
    }
}

impl<I2C, D> Pca9685Device<I2C, D> {
    /// Replaces the delay used while the oscillator starts (tests pass a no-op delay).
    pub fn with_delay<D2: DelayNs>(self, delay: D2) -> Pca9685Device<I2C, D2> {
        let Self { driver, bus, address, settings, ready, .. } = self;
        Pca9685Device { driver, bus, address, settings, delay, ready }
    }
}

impl<I2C, D> Pca9685Device<I2C, D>
where
    I2C: I2c,
    I2C::Error: Debug,
{
    /// Writes one channel, or all of them through the ALL_LED registers.
    fn write(&mut self, channel: Channel, pwm: Pwm) -> Result<(), DeviceError> {
        match pwm {
            Pwm::FullOff => self.driver.set_channel_full_off(channel),
            Pwm::Counts(counts) => self.driver.set_channel_on_off(channel, 0, counts),
            Pwm::FullOn => {
                // Full on first, then clear a full-off bit (which would win) by writing OFF = 0:
                // the output never passes through a third state.
                self.driver.set_channel_full_on(channel, 0).and_then(|()| self.driver.set_channel_off(channel, 0))
            }
        }
        .map_err(driver_error)
    }

    /// Reads the duty cycles of `count` channels from `first` on, in one auto-incremented read.
    fn read_channels(&mut self, first: usize, count: usize) -> Result<Vec<Sample>, DeviceError> {
        let mut bytes = [0; 4 * reg::CHANNELS];
        let bytes = &mut bytes[..4 * count];
        self.bus.write_read(self.address, &[reg::channel_base(first)], bytes).map_err(DeviceError::i2c)?;
        Ok(bytes
            .chunks_exact(4)
            .zip(&reg::CHANNEL_NAMES[first..])
            .map(|(registers, &name)| {
                let registers = [registers[0], registers[1], registers[2], registers[3]];
                Sample::new(name, reg::duty_from_registers(registers))
            })
            .collect())
    }
}

impl<I2C, D> Device for Pca9685Device<I2C, D>
where
    I2C: I2c + Send,
    I2C::Error: Debug,
    D: DelayNs + Send,
{
    fn outputs(&self) -> Vec<device::Output> {
        reg::CHANNEL_NAMES
            .iter()
            .enumerate()
            .map(|(channel, &quantity)| device::Output {
                quantity,
                control: device::Control::Number { min: 0.0, max: 1.0, step: 0.001 },
                action: "set_duty",
                fixed: vec![("channel", device::Value::Int(channel as i64))],
                value: "duty",
            })
            .collect()
    }

    fn describe(&self) -> Description {
        let duty = || Param {
            name: "duty",
            kind: ParamKind::Float { min: 0.0, max: 1.0 },
            required: true,
            description: "duty cycle from 0 (off) to 1 (always on), in steps of 1/4096",
        };
        Description {
            model: "PCA9685",
            quantities: reg::CHANNEL_NAMES
                .iter()
                .map(|&name| Quantity {
                    name,
                    unit: None,
                    kind: Kind::Ratio,
                    description: "PWM duty cycle of the output, 0 (off) to 1 (always on)",
                })
                .collect(),
            commands: vec![
                CommandSpec {
                    action: "set_duty",
                    params: vec![
                        Param {
                            name: "channel",
                            kind: ParamKind::Int { min: 0, max: reg::CHANNELS as i64 - 1 },
                            required: true,
                            description: "output number, LED0 to LED15",
                        },
                        duty(),
                    ],
                    description: "sets one output's duty cycle",
                },
                CommandSpec { action: "set_all", params: vec![duty()], description: "sets every output's duty cycle" },
                CommandSpec { action: "off", params: Vec::new(), description: "turns every output fully off" },
            ],
        }
    }

    fn init(&mut self) -> Result<(), DeviceError> {
        self.ready = false;
        let prescale = self.settings.prescale;
        // Start from the power-on MODE1 in the driver's cache and put the chip to sleep
        // whatever state it is in: PRE_SCALE only accepts writes while SLEEP is set (§7.3.5).
        self.driver.reset_internal_driver_state();
        self.driver.disable().map_err(driver_error)?;
        self.driver.set_prescale(prescale).map_err(driver_error)?;
        self.driver.enable().map_err(driver_error)?;
        // The oscillator needs up to 500 µs, and RESTART may only be written after that (§7.3.1.1).
        self.delay.delay_us(500);
        // Restart the channels that ran before the sleep (RESTART; writing 1 clears it and has no
        // effect when it is clear) and turn on auto-increment, which the read-back relies on.
        // The driver's cache still says AI is off, so its first channel write repeats this.
        self.bus
            .write(self.address, &[reg::MODE1, reg::MODE1_RESTART | reg::MODE1_AI | reg::MODE1_ALLCALL])
            .map_err(DeviceError::i2c)?;

        let (mut mode1, mut prescale_read) = ([0], [0]);
        self.bus
            .transaction(
                self.address,
                &mut [
                    Operation::Write(&[reg::MODE1]),
                    Operation::Read(&mut mode1),
                    Operation::Write(&[reg::PRE_SCALE]),
                    Operation::Read(&mut prescale_read),
                ],
            )
            .map_err(DeviceError::i2c)?;
        let (mode1, prescale_read) = (mode1[0], prescale_read[0]);
        if mode1 & (reg::MODE1_SLEEP | reg::MODE1_AI) != reg::MODE1_AI || prescale_read != prescale {
            return Err(DeviceError::Chip(format!(
                "MODE1 reads 0x{mode1:02X} and PRE_SCALE {prescale_read} after init, expected the oscillator on, \
                 auto-increment on and prescale {prescale}: is this a PCA9685?"
            )));
        }
        self.ready = true;
        Ok(())
    }

    fn poll(&mut self) -> Result<Vec<Sample>, DeviceError> {
        self.read_channels(0, reg::CHANNELS)
    }

    fn command(&mut self, action: &str, args: &Args) -> Result<Outcome, DeviceError> {
        if !self.ready {
            return Err(DeviceError::Chip(
                "not initialised: init() must configure the chip before commands".to_owned(),
            ));
        }
        match action {
            "set_duty" => {
                let channel = channel_arg(args)?;
                let (pwm, note) = duty_arg(args)?;
                let driver_channel = Channel::try_from(channel)
                    .map_err(|()| DeviceError::Config(format!("channel {channel} does not exist")))?;
                self.write(driver_channel, pwm)?;
                Ok(Outcome { values: self.read_channels(channel, 1)?, note })
            }
            "set_all" => {
                let (pwm, note) = duty_arg(args)?;
                self.write(Channel::All, pwm)?;
                Ok(Outcome { values: self.read_channels(0, reg::CHANNELS)?, note })
            }
            "off" => {
                self.write(Channel::All, Pwm::FullOff)?;
                Ok(Outcome { values: self.read_channels(0, reg::CHANNELS)?, note: None })
            }
            _ => Err(DeviceError::UnsupportedAction(action.to_owned())),
        }
    }
}

/// The `channel` argument. The gateway has checked it against the spec; a value outside it is
/// reported rather than trusted.
fn channel_arg(args: &Args) -> Result<usize, DeviceError> {
    let channel = args.int("channel")?;
    usize::try_from(channel).ok().filter(|&channel| channel < reg::CHANNELS).ok_or_else(|| {
        DeviceError::Config(format!("parameter \"channel\" must be an integer from 0 to 15, got {channel}"))
    })
}

/// The `duty` argument as the nearest 12-bit setting, with a note when it had to be rounded.
fn duty_arg(args: &Args) -> Result<(Pwm, Option<String>), DeviceError> {
    let duty = args.float("duty")?;
    if !(0.0..=1.0).contains(&duty) {
        return Err(DeviceError::Config(format!("parameter \"duty\" must be a number from 0 to 1, got {duty}")));
    }
    let pwm = Pwm::from_duty(duty);
    let note = (pwm.duty() != duty)
        .then(|| format!("duty {duty} quantised to {}/{} = {} (12-bit PWM)", pwm.counts(), reg::COUNTS, pwm.duty()));
    Ok((pwm, note))
}

fn driver_error<E: embedded_hal::i2c::Error + Debug>(error: pwm_pca9685::Error<E>) -> DeviceError {
    match error {
        pwm_pca9685::Error::I2C(error) => DeviceError::i2c(error),
        // Only reachable through a bug here: every value passed is checked first.
        pwm_pca9685::Error::InvalidInputData => {
            DeviceError::Chip("the pwm-pca9685 driver rejected a register value".to_owned())
        }
    }
}
