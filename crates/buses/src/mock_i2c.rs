//! An in-process I2C bus hosting simulated chips at their addresses.
//!
//! It implements embedded-hal's `I2c` trait the way a real bus behaves: an address with no chip
//! is not acknowledged, a transaction's operations reach the chip in order, and faults can be
//! injected per address (device removed, device back, bus error) while the gateway runs.

use device::{I2cChip, SimFault};
use embedded_hal::i2c::{self, ErrorKind, NoAcknowledgeSource, Operation, SevenBitAddress};

use crate::host::Host;

/// A fault injected at one address, lasting until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// The chip is unplugged: its address is not acknowledged.
    Removed,
    /// Every transfer to the chip fails with a bus error.
    BusError,
}

/// The error type of the mock bus: an embedded-hal error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockI2cError(pub ErrorKind);

impl i2c::Error for MockI2cError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl std::fmt::Display for MockI2cError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for MockI2cError {}

/// A mock I2C bus. Cloning gives another handle to the same bus.
#[derive(Clone)]
pub struct MockI2cBus {
    chips: Host<Box<dyn I2cChip>, Injected>,
}

impl std::fmt::Debug for MockI2cBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockI2cBus").field("addresses", &self.chips.positions()).finish()
    }
}

impl Default for MockI2cBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MockI2cBus {
    /// An empty bus whose chips hold still (for tests).
    pub fn new() -> Self {
        Self { chips: Host::new(false) }
    }

    /// An empty bus whose chips drift with wall-clock time (for the simulated board).
    pub fn live() -> Self {
        Self { chips: Host::new(true) }
    }

    /// Places a simulated chip at a 7-bit address, replacing any chip there.
    pub fn attach(&self, address: u8, chip: impl I2cChip) {
        self.attach_boxed(address, Box::new(chip));
    }

    /// Places a boxed simulated chip at a 7-bit address, as the gateway's driver registry
    /// builds them.
    pub fn attach_boxed(&self, address: u8, chip: Box<dyn I2cChip>) {
        self.chips.attach(address, chip);
    }

    /// A handle for one driver. All handles share the bus.
    pub fn handle(&self) -> MockI2cHandle {
        MockI2cHandle { bus: self.clone() }
    }

    /// Injects a fault at an address (or clears it with `None`). Returns false if no chip is
    /// attached there.
    pub fn inject(&self, address: u8, fault: Option<Injected>) -> bool {
        self.chips.inject(address, fault)
    }

    /// Sets a simulated input on the chip at `address` (see `I2cChip::set_input`).
    pub fn set_input(&self, address: u8, name: &str, value: f64) -> bool {
        self.chips.set_input(address, name, value)
    }

    /// Reads back a named piece of chip state (see `I2cChip::inspect`).
    pub fn inspect(&self, address: u8, name: &str) -> Option<f64> {
        self.chips.inspect(address, name)
    }

    /// Runs `f` on the concrete chip at `address`, if it is a `T`.
    pub fn with_chip<T: I2cChip, R>(&self, address: u8, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.chips.with_chip(address, f)
    }

    /// How many transactions the bus has carried (for benchmarks and tests).
    pub fn transactions(&self) -> u64 {
        self.chips.transactions()
    }

    fn transact(&self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), MockI2cError> {
        self.chips.transact(address, |slot| {
            let not_acknowledged = MockI2cError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
            let slot = slot.ok_or(not_acknowledged)?;
            match slot.fault {
                Some(Injected::Removed) => return Err(not_acknowledged),
                Some(Injected::BusError) => return Err(MockI2cError(ErrorKind::Bus)),
                None => {}
            }
            for operation in operations {
                let result = match operation {
                    Operation::Write(bytes) => slot.chip.write(bytes),
                    Operation::Read(buffer) => slot.chip.read(buffer),
                };
                result.map_err(|fault| match fault {
                    SimFault::Nack => MockI2cError(ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data)),
                    SimFault::Bus => MockI2cError(ErrorKind::Bus),
                })?;
            }
            Ok(())
        })
    }
}

/// One driver's handle on a mock bus; implements embedded-hal `I2c`.
#[derive(Debug, Clone)]
pub struct MockI2cHandle {
    bus: MockI2cBus,
}

impl i2c::ErrorType for MockI2cHandle {
    type Error = MockI2cError;
}

impl i2c::I2c<SevenBitAddress> for MockI2cHandle {
    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        self.bus.transact(address, operations)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::i2c::I2c;

    use super::*;

    /// A chip with a register pointer and 4 registers, as most I2C chips work.
    #[derive(Default)]
    struct Registers {
        pointer: usize,
        registers: [u8; 4],
    }

    impl I2cChip for Registers {
        fn write(&mut self, bytes: &[u8]) -> Result<(), SimFault> {
            let (&pointer, data) = bytes.split_first().ok_or(SimFault::Nack)?;
            self.pointer = usize::from(pointer);
            for byte in data {
                *self.registers.get_mut(self.pointer).ok_or(SimFault::Nack)? = *byte;
                self.pointer += 1;
            }
            Ok(())
        }
        fn read(&mut self, buffer: &mut [u8]) -> Result<(), SimFault> {
            for byte in buffer {
                *byte = *self.registers.get(self.pointer).ok_or(SimFault::Nack)?;
                self.pointer += 1;
            }
            Ok(())
        }
        fn inspect(&self, name: &str) -> Option<f64> {
            let index: usize = name.parse().ok()?;
            self.registers.get(index).map(|&r| f64::from(r))
        }
    }

    #[test]
    fn write_then_read_reaches_the_chip_in_order() {
        let bus = MockI2cBus::new();
        bus.attach(0x40, Registers::default());
        let mut handle = bus.handle();
        handle.write(0x40, &[1, 0xAB, 0xCD]).unwrap();
        let mut buffer = [0; 2];
        handle.write_read(0x40, &[1], &mut buffer).unwrap();
        assert_eq!(buffer, [0xAB, 0xCD]);
        assert_eq!(bus.inspect(0x40, "2"), Some(f64::from(0xCD)));
        assert_eq!(bus.transactions(), 2);
    }

    #[test]
    fn absent_address_is_not_acknowledged() {
        let bus = MockI2cBus::new();
        let error = bus.handle().write(0x41, &[0]).unwrap_err();
        assert_eq!(error.0, ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
    }

    #[test]
    fn injected_faults_last_until_cleared() {
        let bus = MockI2cBus::new();
        bus.attach(0x40, Registers::default());
        let mut handle = bus.handle();
        assert!(bus.inject(0x40, Some(Injected::Removed)));
        assert_eq!(handle.write(0x40, &[0]).unwrap_err().0, ErrorKind::NoAcknowledge(NoAcknowledgeSource::Address));
        assert!(bus.inject(0x40, Some(Injected::BusError)));
        assert_eq!(handle.write(0x40, &[0]).unwrap_err().0, ErrorKind::Bus);
        assert!(bus.inject(0x40, None));
        handle.write(0x40, &[0]).unwrap();
        assert!(!bus.inject(0x41, None), "no chip at 0x41");
    }

    #[test]
    fn chip_errors_become_data_nacks() {
        let bus = MockI2cBus::new();
        bus.attach(0x40, Registers::default());
        // Register 9 does not exist: the chip stops acknowledging data.
        let error = bus.handle().write(0x40, &[9, 1]).unwrap_err();
        assert_eq!(error.0, ErrorKind::NoAcknowledge(NoAcknowledgeSource::Data));
    }

    #[test]
    fn tests_can_reach_the_concrete_chip() {
        let bus = MockI2cBus::new();
        bus.attach(0x40, Registers::default());
        bus.attach_boxed(0x41, Box::new(Registers::default()));
        assert_eq!(bus.with_chip(0x40, |chip: &mut Registers| chip.registers[0] = 7), Some(()));
        assert_eq!(bus.with_chip(0x41, |chip: &mut Registers| chip.registers[0] = 8), Some(()));
        assert_eq!(bus.inspect(0x40, "0"), Some(7.0));
        assert_eq!(bus.inspect(0x41, "0"), Some(8.0));
    }
}
