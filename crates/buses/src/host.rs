//! What the mock buses share: simulated chips at their bus positions (I2C address or SPI chip
//! select), each with an optional injected fault, behind one lock.

use std::any::Any;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use device::{I2cChip, SpiChip};

/// The parts of a simulated chip the host needs, for both kinds of bus.
pub(crate) trait Chip: Send + 'static {
    fn advance(&mut self, elapsed: Duration);
    fn set_input(&mut self, name: &str, value: f64) -> bool;
    fn inspect(&self, name: &str) -> Option<f64>;
    fn as_any_mut(&mut self) -> &mut dyn Any;
}

impl Chip for Box<dyn I2cChip> {
    fn advance(&mut self, elapsed: Duration) {
        (**self).advance(elapsed);
    }
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        (**self).set_input(name, value)
    }
    fn inspect(&self, name: &str) -> Option<f64> {
        (**self).inspect(name)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self.as_mut()
    }
}

impl Chip for Box<dyn SpiChip> {
    fn advance(&mut self, elapsed: Duration) {
        (**self).advance(elapsed);
    }
    fn set_input(&mut self, name: &str, value: f64) -> bool {
        (**self).set_input(name, value)
    }
    fn inspect(&self, name: &str) -> Option<f64> {
        (**self).inspect(name)
    }
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self.as_mut()
    }
}

/// One chip and the fault injected at its position.
pub(crate) struct Slot<C, F> {
    pub(crate) chip: C,
    pub(crate) fault: Option<F>,
}

struct Inner<C, F> {
    chips: BTreeMap<u8, Slot<C, F>>,
    /// Fixed when the bus is created; chips drift relative to it (see `I2cChip::advance`).
    started: Instant,
    /// When true, chips are advanced to the wall-clock time before each transaction. Tests
    /// leave it off so that readings depend only on what they set.
    live: bool,
    transactions: u64,
}

/// Chips by position; cloning gives another handle to the same chips.
pub(crate) struct Host<C, F> {
    inner: Arc<Mutex<Inner<C, F>>>,
}

impl<C, F> Clone for Host<C, F> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<C: Chip, F: Copy> Host<C, F> {
    pub(crate) fn new(live: bool) -> Self {
        let inner = Inner { chips: BTreeMap::new(), started: Instant::now(), live, transactions: 0 };
        Self { inner: Arc::new(Mutex::new(inner)) }
    }

    fn lock(&self) -> MutexGuard<'_, Inner<C, F>> {
        // A panic in a simulated chip leaves the bus consistent; keep going rather than
        // poisoning every later transfer.
        self.inner.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn positions(&self) -> Vec<u8> {
        self.lock().chips.keys().copied().collect()
    }

    pub(crate) fn attach(&self, position: u8, chip: C) {
        self.lock().chips.insert(position, Slot { chip, fault: None });
    }

    /// Sets or clears the fault at a position; false if no chip is there.
    pub(crate) fn inject(&self, position: u8, fault: Option<F>) -> bool {
        match self.lock().chips.get_mut(&position) {
            Some(slot) => {
                slot.fault = fault;
                true
            }
            None => false,
        }
    }

    pub(crate) fn set_input(&self, position: u8, name: &str, value: f64) -> bool {
        self.lock().chips.get_mut(&position).is_some_and(|slot| slot.chip.set_input(name, value))
    }

    pub(crate) fn inspect(&self, position: u8, name: &str) -> Option<f64> {
        self.lock().chips.get(&position).and_then(|slot| slot.chip.inspect(name))
    }

    pub(crate) fn with_chip<T: Any, R>(&self, position: u8, f: impl FnOnce(&mut T) -> R) -> Option<R> {
        let mut inner = self.lock();
        inner.chips.get_mut(&position)?.chip.as_any_mut().downcast_mut::<T>().map(f)
    }

    pub(crate) fn transactions(&self) -> u64 {
        self.lock().transactions
    }

    /// Runs one transaction on the slot at `position` (`None` if no chip is there), counting
    /// it and first advancing a live bus's chip to the current time.
    pub(crate) fn transact<R>(&self, position: u8, f: impl FnOnce(Option<&mut Slot<C, F>>) -> R) -> R {
        let mut inner = self.lock();
        inner.transactions += 1;
        let (elapsed, live) = (inner.started.elapsed(), inner.live);
        let slot = inner.chips.get_mut(&position);
        match slot {
            Some(slot) => {
                if live && slot.fault.is_none() {
                    slot.chip.advance(elapsed);
                }
                f(Some(slot))
            }
            None => f(None),
        }
    }
}
