//! The publish policy: decides, frame by frame, whether a message is published now, later (when
//! a minimum interval ends) or not at all, so a full bus does not flood consumers.
//!
//! Each signal has a policy (the bus's, overridden per message and per signal; see
//! `board::can`). A frame is published when any of its signals asks for it: mode `every`, a
//! change beyond the deadband in mode `on_change`, or a last publication older than the
//! signal's heartbeat. A signal asking within its minimum interval since the last publication
//! defers the publication to the end of that interval, with the newest frame then.

use tokio::time::{Duration, Instant};

use board::can::{Mode, Policy};

/// What to do with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Publish,
    /// Publish the newest frame at this instant (unless another publication comes first).
    Defer(Instant),
    Suppress,
}

/// The publication state of one message (or one raw identifier).
#[derive(Debug, Clone)]
pub struct Tracker {
    policies: Vec<Policy>,
    /// Values of the last publication, by signal index; NaN when absent.
    last_values: Vec<f64>,
    last_publish: Option<Instant>,
    /// When a deferred publication is due.
    deferred: Option<Instant>,
}

impl Tracker {
    /// A tracker for a message whose signals have these policies (by signal index).
    pub fn new(policies: Vec<Policy>) -> Tracker {
        let count = policies.len();
        Tracker { policies, last_values: vec![f64::NAN; count], last_publish: None, deferred: None }
    }

    /// Decides for a frame at `now` whose present signals have these values (signal index, value).
    pub fn decide(&mut self, now: Instant, values: &[(usize, f64)]) -> Decision {
        let age = self.last_publish.map(|at| now.saturating_duration_since(at));
        let mut later: Option<Instant> = None;
        for &(index, value) in values {
            let Some(policy) = self.policies.get(index) else { continue };
            let last = self.last_values[index];
            let wants = match policy.mode {
                Mode::Every => true,
                Mode::OnChange => age.is_none() || changed(last, value, policy.deadband),
                Mode::Ignore => false,
            } || (policy.heartbeat_ms > 0 && age.is_some_and(|age| age >= ms(policy.heartbeat_ms)));
            if !wants {
                continue;
            }
            let min = ms(policy.min_interval_ms);
            match (age, self.last_publish) {
                (Some(age), Some(at)) if age < min => {
                    let due = at + min;
                    later = Some(later.map_or(due, |l| l.min(due)));
                }
                _ => return Decision::Publish,
            }
        }
        match later {
            Some(due) => {
                let due = self.deferred.map_or(due, |d| d.min(due));
                self.deferred = Some(due);
                Decision::Defer(due)
            }
            None => Decision::Suppress,
        }
    }

    /// Records a publication of these values at `now`.
    pub fn published(&mut self, now: Instant, values: &[(usize, f64)]) {
        self.last_values.fill(f64::NAN);
        for &(index, value) in values {
            if let Some(last) = self.last_values.get_mut(index) {
                *last = value;
            }
        }
        self.last_publish = Some(now);
        self.deferred = None;
    }

    /// The deferred publication due at `due`, if it is still wanted.
    pub fn take_deferred(&mut self, due: Instant) -> bool {
        if self.deferred == Some(due) {
            self.deferred = None;
            true
        } else {
            false
        }
    }
}

fn changed(last: f64, value: f64, deadband: f64) -> bool {
    if last.is_nan() || value.is_nan() {
        return last.is_nan() != value.is_nan();
    }
    (value - last).abs() > deadband
}

fn ms(value: u64) -> Duration {
    Duration::from_millis(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(mode: Mode, min_interval_ms: u64, heartbeat_ms: u64) -> Policy {
        Policy { mode, min_interval_ms, heartbeat_ms, deadband: 0.0 }
    }

    #[test]
    fn on_change_publishes_changes_and_heartbeats() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut tracker = Tracker::new(vec![policy(Mode::OnChange, 0, 1000)]);
        assert_eq!(tracker.decide(at(0), &[(0, 1.0)]), Decision::Publish, "the first frame");
        tracker.published(at(0), &[(0, 1.0)]);
        assert_eq!(tracker.decide(at(10), &[(0, 1.0)]), Decision::Suppress);
        assert_eq!(tracker.decide(at(20), &[(0, 2.0)]), Decision::Publish);
        tracker.published(at(20), &[(0, 2.0)]);
        assert_eq!(tracker.decide(at(1019), &[(0, 2.0)]), Decision::Suppress);
        assert_eq!(tracker.decide(at(1020), &[(0, 2.0)]), Decision::Publish, "heartbeat");
    }

    #[test]
    fn a_minimum_interval_defers_to_its_end() {
        let start = Instant::now();
        let at = |ms: u64| start + Duration::from_millis(ms);
        let mut tracker = Tracker::new(vec![policy(Mode::Every, 100, 0)]);
        assert_eq!(tracker.decide(at(0), &[(0, 1.0)]), Decision::Publish);
        tracker.published(at(0), &[(0, 1.0)]);
        assert_eq!(tracker.decide(at(10), &[(0, 1.0)]), Decision::Defer(at(100)));
        assert_eq!(tracker.decide(at(50), &[(0, 1.0)]), Decision::Defer(at(100)), "one deferral");
        assert!(tracker.take_deferred(at(100)));
        assert!(!tracker.take_deferred(at(100)), "taken once");
        tracker.published(at(100), &[(0, 1.0)]);
        assert_eq!(tracker.decide(at(200), &[(0, 1.0)]), Decision::Publish);
    }

    #[test]
    fn ignored_signals_and_deadbands_do_not_trigger() {
        let start = Instant::now();
        let counter = policy(Mode::Ignore, 0, 0);
        let mut noisy = policy(Mode::OnChange, 0, 0);
        noisy.deadband = 0.5;
        let mut tracker = Tracker::new(vec![counter, noisy]);
        tracker.published(start, &[(0, 1.0), (1, 10.0)]);
        assert_eq!(tracker.decide(start, &[(0, 2.0), (1, 10.4)]), Decision::Suppress);
        assert_eq!(tracker.decide(start, &[(0, 3.0), (1, 10.6)]), Decision::Publish);
    }

    #[test]
    fn a_signal_appearing_counts_as_a_change() {
        let start = Instant::now();
        let mut tracker = Tracker::new(vec![policy(Mode::OnChange, 0, 0); 3]);
        tracker.published(start, &[(0, 1.0), (1, 5.0)]);
        // Multiplexed: signal 2 replaces signal 1.
        assert_eq!(tracker.decide(start, &[(0, 1.0), (2, 5.0)]), Decision::Publish);
    }
}
