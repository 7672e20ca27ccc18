//! Exponential backoff with jitter, for reconnecting to a broker and retrying devices and
//! interfaces. A crate of its own so the broker's uplink can share it without depending on the
//! gateway runtime.

use std::time::Duration;

/// Doubles the delay after each failure, from `min` up to `max`, with up to 25 % random jitter
/// so that gateways restarted together do not retry in lockstep.
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    current: Duration,
    /// Jitter source; seeded per instance so tests can fix it.
    rng: fastrand::Rng,
}

impl Backoff {
    pub fn new(min: Duration, max: Duration) -> Self {
        Self::with_seed(min, max, fastrand::u64(..))
    }

    pub fn with_seed(min: Duration, max: Duration, seed: u64) -> Self {
        let min = min.max(Duration::from_millis(1));
        Self { min, max: max.max(min), current: min, rng: fastrand::Rng::with_seed(seed) }
    }

    /// The delay before the next attempt; each call doubles the following one.
    pub fn next_delay(&mut self) -> Duration {
        let base = self.current;
        self.current = (self.current * 2).min(self.max);
        let jitter = base.mul_f64(self.rng.f64() * 0.25);
        (base + jitter).min(self.max)
    }

    /// Back to the shortest delay, after a success.
    pub fn reset(&mut self) {
        self.current = self.min;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_maximum_with_bounded_jitter() {
        let ms = Duration::from_millis;
        let mut backoff = Backoff::with_seed(ms(100), ms(1000), 7);
        let delays: Vec<Duration> = (0..6).map(|_| backoff.next_delay()).collect();
        for (delay, base) in delays.iter().zip([100, 200, 400, 800, 1000, 1000]) {
            assert!(*delay >= ms(base) && *delay <= ms(base * 5 / 4).min(ms(1000)), "{delay:?} for base {base}");
        }
        backoff.reset();
        assert!(backoff.next_delay() < ms(126));
    }

    #[test]
    fn jitter_differs_between_gateways() {
        let ms = Duration::from_millis;
        let a: Vec<_> = {
            let mut b = Backoff::with_seed(ms(100), ms(10_000), 1);
            (0..5).map(|_| b.next_delay()).collect()
        };
        let b: Vec<_> = {
            let mut b = Backoff::with_seed(ms(100), ms(10_000), 2);
            (0..5).map(|_| b.next_delay()).collect()
        };
        assert_ne!(a, b);
    }
}
