//! One I2C bus handle shared by the community driver and the adapter's own register reads.
//!
//! The `pwm-pca9685` driver owns its bus handle and caches MODE1, so it cannot be rebuilt
//! around a borrowed bus for each call without losing track of the sleep and auto-increment
//! bits; and it offers no way to read the channel registers back. Sharing the handle lets the
//! driver keep its state while the adapter reads registers itself. Every call runs on the bus
//! thread, so the lock is never contended.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use embedded_hal::i2c::{ErrorType, I2c, Operation};

pub(crate) struct SharedBus<I2C>(Arc<Mutex<I2C>>);

impl<I2C> SharedBus<I2C> {
    pub(crate) fn new(i2c: I2C) -> Self {
        Self(Arc::new(Mutex::new(i2c)))
    }

    fn lock(&self) -> MutexGuard<'_, I2C> {
        // A panic while holding the lock leaves the bus handle itself intact.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl<I2C> Clone for SharedBus<I2C> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

impl<I2C: ErrorType> ErrorType for SharedBus<I2C> {
    type Error = I2C::Error;
}

// Every method is forwarded, not just `transaction`, so the bus sees the same calls the
// driver makes (a plain write stays a plain write).
impl<I2C: I2c> I2c for SharedBus<I2C> {
    fn read(&mut self, address: u8, read: &mut [u8]) -> Result<(), Self::Error> {
        self.lock().read(address, read)
    }

    fn write(&mut self, address: u8, write: &[u8]) -> Result<(), Self::Error> {
        self.lock().write(address, write)
    }

    fn write_read(&mut self, address: u8, write: &[u8], read: &mut [u8]) -> Result<(), Self::Error> {
        self.lock().write_read(address, write, read)
    }

    fn transaction(&mut self, address: u8, operations: &mut [Operation<'_>]) -> Result<(), Self::Error> {
        self.lock().transaction(address, operations)
    }
}
