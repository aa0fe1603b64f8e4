//! The delay before each reconnect attempt.

use std::time::Duration;

/// Exponential backoff with jitter: each delay is drawn from [d/2, d], d doubling per
/// attempt up to the maximum, so a fleet of agents does not reconnect in lockstep.
pub(super) struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// Delays from `initial`, doubling up to `max`.
    pub(super) fn new(initial: Duration, max: Duration) -> Self {
        Backoff {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt.
    pub(super) fn delay(&mut self) -> Duration {
        let d = self.next.min(self.max);
        self.next = (d * 2).min(self.max);
        let half = d / 2;
        half + half.mul_f64(fastrand::f64())
    }

    /// Start again from the initial delay (after a link that lasted).
    pub(super) fn reset(&mut self) {
        self.next = self.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_with_jitter_and_caps() {
        let mut b = Backoff::new(Duration::from_millis(100), Duration::from_millis(1000));
        let delays: Vec<_> = (0..6).map(|_| b.delay()).collect();
        let bounds = [100, 200, 400, 800, 1000, 1000];
        for (d, max) in delays.iter().zip(bounds) {
            let max = Duration::from_millis(max);
            assert!(
                *d >= max / 2 && *d <= max,
                "{d:?} outside [{:?}, {max:?}]",
                max / 2
            );
        }
        b.reset();
        assert!(b.delay() <= Duration::from_millis(100));
    }
}
