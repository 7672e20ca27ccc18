//! An in-process SPI bus hosting simulated chips at their chip selects.
//!
//! Each driver gets an embedded-hal `SpiDevice` for one chip select. A transaction asserts chip
//! select, clocks every byte of its operations through the chip full duplex, and releases chip
//! select, as the kernel's spidev driver does. Faults can be injected per chip select while
//! the gateway runs: an absent chip (MISO floats high or is pulled low: the bus reads all 0xFF
//! or all 0x00) and transfer errors.

use device::{SimFault, SpiChip};
use embedded_hal::spi::{self, ErrorKind, Operation};

use crate::host::Host;

/// A fault injected at one chip select, lasting until cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Injected {
    /// No chip answers: every byte read is this value (0xFF with a pull-up, 0x00 with a
    /// pull-down). SPI has no acknowledge, so only the driver can notice.
    Absent(u8),
    /// Every transfer fails, as when the controller reports an error.
    TransferError,
}

/// The error type of the mock bus: an embedded-hal SPI error kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MockSpiError(pub ErrorKind);

impl spi::Error for MockSpiError {
    fn kind(&self) -> ErrorKind {
        self.0
    }
}

impl std::fmt::Display for MockSpiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl std::error::Error for MockSpiError {}

/// A mock SPI bus. Cloning gives another handle to the same bus.
#[derive(Clone)]
pub struct MockSpiBus {
    chips: Host<Box<dyn SpiChip>, Injected>,
}

impl std::fmt::Debug for MockSpiBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockSpiBus").field("chip_selects", &self.chips.positions()).finish()
    }
}

impl Default for MockSpiBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MockSpiBus {
    /// An empty bus whose chips hold still (for tests).
    pub fn new() -> Self {
        Self { chips: Host::new(false) }
    }

    /// An empty bus whose chips drift with wall-clock time (for the simulated board).
    pub fn live() -> Self {
        Self { chips: Host::new(true) }
    }

    /// Places a simulated chip at a chip select, replacing any chip there.
    pub fn attach(&self, chip_select: u8, chip: impl SpiChip) {
        self.attach_boxed(chip_select, Box::new(chip));
    }

    /// Places a boxed simulated chip, as the gateway's driver registry builds them.
    pub fn attach_boxed(&self, chip_select: u8, chip: Box<dyn SpiChip>) {
        self.chips.attach(chip_select, chip);
    }

    /// The embedded-hal `SpiDevice` for one chip select. A chip select with no chip behaves as
    /// an absent chip with a pull-up: it reads all 0xFF.
    pub fn device(&self, chip_select: u8) -> MockSpiDevice {
        MockSpiDevice { bus: self.clone(), chip_select }
    }

    /// Injects a fault at a chip select (or clears it with `None`). Returns false if no chip
    /// is attached there.
    pub fn inject(&self, chip_select: u8, fault: Option<Injected>) -> bool {
        self.chips.inject(chip_select, fault)
    }

    /// Sets a simulated input on the chip at `chip_select` (see `SpiChip::set_input`).
    pub fn set_input(&self, chip_select: u8, name: &str, value: f64) -> bool {
        self.chips.set_input(chip_select, name, value)
    }

    /// Reads back a named piece of chip state (see `SpiChip::inspect`).
    pub fn inspect(&self, chip_select: u8, name: &str) -> Option<f64> {
        self.chips.inspect(chip_select, name)
    }

    /// Runs `f` on the concrete chip at `chip_select`, if it is a `T`.
    pub fn with_chip<T: SpiChip, R>(&self, chip_select: u8, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        self.chips.with_chip(chip_select, f)
    }

    /// How many transactions the bus has carried.
    pub fn transactions(&self) -> u64 {
        self.chips.transactions()
    }

    fn transact(&self, chip_select: u8, operations: &mut [Operation<'_, u8>]) -> Result<(), MockSpiError> {
        self.chips.transact(chip_select, |slot| {
            let Some(slot) = slot else {
                fill_reads(operations, 0xFF);
                return Ok(());
            };
            match slot.fault {
                Some(Injected::Absent(level)) => {
                    fill_reads(operations, level);
                    return Ok(());
                }
                Some(Injected::TransferError) => return Err(MockSpiError(ErrorKind::Other)),
                None => {}
            }
            let chip = slot.chip.as_mut();
            chip.select();
            let result = operations.iter_mut().try_for_each(|operation| clock(chip, operation));
            chip.deselect();
            result.map_err(|fault| match fault {
                SimFault::Nack | SimFault::Bus => MockSpiError(ErrorKind::Other),
            })
        })
    }
}

/// Clocks one operation through the chip, full duplex.
fn clock(chip: &mut dyn SpiChip, operation: &mut Operation<'_, u8>) -> Result<(), SimFault> {
    match operation {
        Operation::Read(buffer) => buffer.iter_mut().try_for_each(|byte| {
            *byte = chip.exchange(0x00)?;
            Ok(())
        }),
        Operation::Write(bytes) => bytes.iter().try_for_each(|&byte| chip.exchange(byte).map(drop)),
        Operation::Transfer(read, write) => {
            // embedded-hal: clock the longer of the two; write pads with 0x00, read drops extra.
            for index in 0..read.len().max(write.len()) {
                let miso = chip.exchange(write.get(index).copied().unwrap_or(0x00))?;
                if let Some(slot) = read.get_mut(index) {
                    *slot = miso;
                }
            }
            Ok(())
        }
        Operation::TransferInPlace(buffer) => buffer.iter_mut().try_for_each(|byte| {
            *byte = chip.exchange(*byte)?;
            Ok(())
        }),
        Operation::DelayNs(_) => Ok(()),
    }
}

fn fill_reads(operations: &mut [Operation<'_, u8>], level: u8) {
    for operation in operations {
        match operation {
            Operation::Read(buffer) | Operation::TransferInPlace(buffer) => buffer.fill(level),
            Operation::Transfer(read, _) => read.fill(level),
            Operation::Write(_) | Operation::DelayNs(_) => {}
        }
    }
}

/// One chip select of a mock SPI bus; implements embedded-hal `SpiDevice`.
#[derive(Debug, Clone)]
pub struct MockSpiDevice {
    bus: MockSpiBus,
    chip_select: u8,
}

impl spi::ErrorType for MockSpiDevice {
    type Error = MockSpiError;
}

impl spi::SpiDevice<u8> for MockSpiDevice {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Self::Error> {
        self.bus.transact(self.chip_select, operations)
    }
}

#[cfg(test)]
mod tests {
    use embedded_hal::spi::SpiDevice;

    use super::*;

    /// Echoes each byte back one byte later, and counts selects.
    #[derive(Default)]
    struct Echo {
        previous: u8,
        selects: u32,
    }

    impl SpiChip for Echo {
        fn select(&mut self) {
            self.selects += 1;
            self.previous = 0;
        }
        fn exchange(&mut self, mosi: u8) -> Result<u8, SimFault> {
            Ok(std::mem::replace(&mut self.previous, mosi))
        }
        fn inspect(&self, name: &str) -> Option<f64> {
            (name == "selects").then_some(f64::from(self.selects))
        }
    }

    #[test]
    fn transfer_is_full_duplex_within_one_chip_select() {
        let bus = MockSpiBus::new();
        bus.attach(0, Echo::default());
        let mut device = bus.device(0);
        let mut buffer = [1, 2, 3];
        device.transfer_in_place(&mut buffer).unwrap();
        assert_eq!(buffer, [0, 1, 2]);
        // Write then read in one transaction: the read sees the last written byte first.
        let mut read = [0; 2];
        device.transaction(&mut [Operation::Write(&[7, 8]), Operation::Read(&mut read)]).unwrap();
        assert_eq!(read, [8, 0]);
        assert_eq!(bus.inspect(0, "selects"), Some(2.0));
        assert_eq!(bus.transactions(), 2);
    }

    #[test]
    fn unequal_transfer_clocks_the_longer_side() {
        let bus = MockSpiBus::new();
        bus.attach(0, Echo::default());
        let mut read = [0; 3];
        bus.device(0).transfer(&mut read, &[5]).unwrap();
        assert_eq!(read, [0, 5, 0]);
    }

    #[test]
    fn absent_chip_reads_the_bus_level() {
        let bus = MockSpiBus::new();
        let mut buffer = [0x12; 2];
        bus.device(3).transfer_in_place(&mut buffer).unwrap();
        assert_eq!(buffer, [0xFF, 0xFF], "nothing at chip select 3: pulled up");
        bus.attach(0, Echo::default());
        assert!(bus.inject(0, Some(Injected::Absent(0x00))));
        let mut buffer = [0x12; 2];
        bus.device(0).transfer_in_place(&mut buffer).unwrap();
        assert_eq!(buffer, [0x00, 0x00]);
        assert_eq!(bus.inspect(0, "selects"), Some(0.0), "the chip saw nothing");
    }

    #[test]
    fn transfer_errors_last_until_cleared() {
        let bus = MockSpiBus::new();
        bus.attach(0, Echo::default());
        bus.inject(0, Some(Injected::TransferError));
        assert_eq!(bus.device(0).write(&[1]).unwrap_err(), MockSpiError(ErrorKind::Other));
        bus.inject(0, None);
        bus.device(0).write(&[1]).unwrap();
        assert!(!bus.inject(1, None));
    }

    #[test]
    fn tests_can_reach_the_concrete_chip() {
        let bus = MockSpiBus::new();
        bus.attach_boxed(2, Box::new(Echo::default()));
        assert_eq!(bus.with_chip(2, |chip: &mut Echo| chip.selects), Some(0));
    }
}
