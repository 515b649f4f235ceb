//! Pacing, sans-I/O: every function takes `now` in nanoseconds since the run's epoch.
//!
//! Two pacers, because the load generator is always paced (an unpaced flood livelocks a small
//! machine: the kernel's packet processing takes the receiver's CPU):
//! - [`OpenLoop`] hands out the *intended* start time of each new connection on a fixed grid
//!   (`start + i / rate`). Latency is measured from that intended time, so a stall of the
//!   generator or the server shows up as latency instead of silently lowering the offered load
//!   (the coordinated-omission correction of wrk2).
//! - [`TokenBucket`] caps closed-loop starts at a maximum rate with a small burst (GCRA form:
//!   one "theoretical arrival time" instead of a token count, so no refill loop is needed).

/// Open-loop schedule of intended start times.
#[derive(Debug, Clone)]
pub struct OpenLoop {
    start_ns: u64,
    interval_ns: f64,
    end_ns: u64,
    issued: u64,
}

impl OpenLoop {
    /// `rate` starts per second, first one due at `start_ns`, none due at or after `end_ns`.
    pub fn new(rate: f64, start_ns: u64, end_ns: u64) -> OpenLoop {
        assert!(rate > 0.0, "open-loop rate must be positive");
        OpenLoop {
            start_ns,
            interval_ns: 1e9 / rate,
            end_ns,
            issued: 0,
        }
    }

    /// When the next start is due, or `None` once the schedule has ended.
    pub fn next_due(&self) -> Option<u64> {
        let due = self.start_ns + (self.issued as f64 * self.interval_ns) as u64;
        (due < self.end_ns).then_some(due)
    }

    /// Takes the next start if it is due at `now`, returning its intended time.
    pub fn take(&mut self, now: u64) -> Option<u64> {
        let due = self.next_due()?;
        if due <= now {
            self.issued += 1;
            Some(due)
        } else {
            None
        }
    }

    /// Starts handed out so far.
    pub fn issued(&self) -> u64 {
        self.issued
    }

    /// Stops the schedule early (used on SIGINT).
    pub fn cut(&mut self, now: u64) {
        self.end_ns = self.end_ns.min(now);
    }
}

/// Rate cap with a burst allowance, as a generic cell rate algorithm.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    interval_ns: u64,
    burst_ns: u64,
    tat: u64,
}

impl TokenBucket {
    /// At most `rate` takes per second on average, and at most `burst` at once.
    pub fn new(rate: f64, burst: u32) -> TokenBucket {
        assert!(rate > 0.0, "token rate must be positive");
        let interval_ns = ((1e9 / rate) as u64).max(1);
        TokenBucket {
            interval_ns,
            // A bucket that has been idle lets `burst` starts through at once.
            burst_ns: interval_ns * u64::from(burst.max(1) - 1),
            tat: 0,
        }
    }

    /// Takes one token if available at `now`.
    pub fn take(&mut self, now: u64) -> bool {
        let floor = now.saturating_sub(self.burst_ns);
        if self.tat < floor {
            self.tat = floor;
        }
        if self.tat <= now {
            self.tat += self.interval_ns;
            true
        } else {
            false
        }
    }

    /// Earliest time a token will be available.
    pub fn next_available(&self) -> u64 {
        self.tat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_loop_grid() {
        let mut p = OpenLoop::new(1000.0, 0, 10_000_000);
        assert_eq!(p.take(0), Some(0));
        assert_eq!(p.take(0), None);
        assert_eq!(p.next_due(), Some(1_000_000));
        // A late caller gets every missed start, each with its own intended time.
        assert_eq!(p.take(3_500_000), Some(1_000_000));
        assert_eq!(p.take(3_500_000), Some(2_000_000));
        assert_eq!(p.take(3_500_000), Some(3_000_000));
        assert_eq!(p.take(3_500_000), None);
        assert_eq!(p.issued(), 4);
    }

    #[test]
    fn open_loop_ends() {
        let mut p = OpenLoop::new(1000.0, 0, 3_000_000);
        let mut n = 0;
        while p.take(u64::MAX / 2).is_some() {
            n += 1;
        }
        assert_eq!(n, 3);
        assert_eq!(p.next_due(), None);
    }

    #[test]
    fn token_bucket_caps_rate() {
        let mut b = TokenBucket::new(1000.0, 4);
        let now = 1_000_000_000;
        let mut n = 0;
        while b.take(now) {
            n += 1;
        }
        assert_eq!(n, 4, "burst");
        assert!(!b.take(now));
        assert!(b.take(now + 1_000_000));
        // Already 2 ms ahead, so one more second yields the remaining 998 grid slots.
        let mut total = 0;
        for t in (now..now + 1_000_000_000).step_by(10_000) {
            while b.take(t) {
                total += 1;
            }
        }
        assert_eq!(total, 998);
    }
}
