//! The RFC 6298 retransmission timeout estimator.

use super::TcpConfig;
use crate::time::{Duration, Instant};

/// RFC 6298 retransmission timer state. Samples come from timestamps (RFC 7323 §4) or from
/// timing one segment at a time (Karn's rule: never a retransmitted one).
///
/// `repr(C)`: what [`deadline`](Self::deadline) reads comes first, in the control block's
/// line of a sent segment's state (`Connection`'s layout).
#[derive(Debug, Clone, Copy, PartialEq)]
#[repr(C)]
pub struct RttEstimator {
    /// What [`deadline`](Self::deadline) adds to `now`: `rto` in whole microseconds
    /// (floored), times 2^min(backoff, 20) (saturating), at most `max_rto_us`. Kept up to
    /// date wherever `rto` or `backoff` changes, so that arming the retransmission timer
    /// (every first transmission) is one saturating add, not a multiply and two minima.
    span_us: u64,
    /// `max_rto` in whole microseconds (floored, at most `u64::MAX`).
    max_rto_us: u64,
    backoff: u8,
    /// A sample or a backoff changed the estimator since [`new`](Self::new) made it: a
    /// control block reused for a new connection (`Connection::reinit_passive`) copies its
    /// template's estimator only then (its two lines are otherwise not written).
    changed: bool,
    srtt_us: Option<u64>,
    rttvar_us: u64,
    rto: Duration,
    min_rto: Duration,
    pub(super) max_rto: Duration,
    samples: u64,
}

// What `deadline` reads lies in the first 24 bytes (the control block's layout test).
const _: () = assert!(core::mem::offset_of!(RttEstimator, span_us) < 24);

/// A `Duration` in whole microseconds, floored, at most `u64::MAX`.
#[inline]
fn whole_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl RttEstimator {
    pub fn new(cfg: &TcpConfig) -> Self {
        let max_rto = cfg.max_rto.max(cfg.min_rto);
        let mut rtt = RttEstimator {
            srtt_us: None,
            rttvar_us: 0,
            rto: cfg.initial_rto,
            span_us: 0,
            min_rto: cfg.min_rto,
            max_rto,
            max_rto_us: whole_micros(max_rto),
            backoff: 0,
            changed: false,
            samples: 0,
        };
        rtt.update_span();
        rtt
    }

    /// Works `span_us` out again from `rto`, `backoff` and `max_rto_us`: `rto()` in whole
    /// microseconds (`min(b, floor(max))` equals `floor(min(b, max))` for a whole `b`).
    #[inline]
    fn update_span(&mut self) {
        // As `rto()` has always floored it (`as_micros() as u64`).
        let base = self.rto.as_micros() as u64;
        let backed = base.saturating_mul(1u64 << self.backoff.min(20));
        self.span_us = backed.min(self.max_rto_us);
    }

    /// The current RTO, backoff included, at most the configured maximum.
    #[inline]
    pub fn rto(&self) -> Duration {
        let base = self.rto.as_micros() as u64;
        let backed = base.saturating_mul(1u64 << self.backoff.min(20));
        Duration::from_micros(backed).min(self.max_rto)
    }

    /// `now + self.rto()`, the same instant, worked out in microseconds instead of through a
    /// `Duration` built, compared and converted back: `rto()` is kept as whole microseconds
    /// (`span_us`, see `update_span`), so this is one saturating add.
    #[inline]
    pub fn deadline(&self, now: Instant) -> Instant {
        Instant::from_micros(now.total_micros().saturating_add(self.span_us))
    }

    /// The RTO without backoff.
    pub fn base_rto(&self) -> Duration {
        self.rto
    }

    /// Smoothed RTT, once there is a sample.
    pub fn srtt(&self) -> Option<Duration> {
        self.srtt_us.map(Duration::from_micros)
    }

    /// RTT variation.
    pub fn rttvar(&self) -> Duration {
        Duration::from_micros(self.rttvar_us)
    }

    /// How many RTT samples were taken.
    pub fn samples(&self) -> u64 {
        self.samples
    }

    /// How many times the RTO was doubled since the last new ACK.
    pub fn backoff(&self) -> u8 {
        self.backoff
    }

    /// RFC 6298 §2.2-2.3 with alpha = 1/8, beta = 1/4, K = 4, G = 1 ms.
    pub fn sample(&mut self, rtt: Duration) {
        let r = rtt.as_micros() as u64;
        self.changed = true;
        self.samples += 1;
        match self.srtt_us {
            None => {
                self.srtt_us = Some(r);
                self.rttvar_us = r / 2;
            }
            Some(srtt) => {
                let delta = srtt.abs_diff(r);
                self.rttvar_us = (3 * self.rttvar_us + delta) / 4;
                self.srtt_us = Some((7 * srtt + r) / 8);
            }
        }
        let srtt = self.srtt_us.unwrap_or(r);
        let rto = srtt + (4 * self.rttvar_us).max(1000);
        self.rto = Duration::from_micros(rto)
            .max(self.min_rto)
            .min(self.max_rto);
        self.update_span();
    }

    /// RFC 6298 §5.5: double the RTO on expiry.
    pub fn back_off(&mut self) {
        self.changed = true;
        self.backoff = self.backoff.saturating_add(1);
        self.update_span();
    }

    /// A new ACK ends the backoff (RFC 6298 §5.7 keeps the doubled value until a new sample;
    /// like Linux we return to the computed RTO once data is acknowledged).
    pub fn reset_backoff(&mut self) {
        // Called for every ACK that advances SND.UNA: nothing to work out when no backoff ran
        // (a backoff other than 0 came from `back_off`, which set `changed`).
        if self.backoff != 0 {
            self.backoff = 0;
            self.update_span();
        }
    }

    /// Whether a sample or a backoff changed the estimator since `new` made it (else it is
    /// the value `new` made).
    #[inline(always)]
    pub(super) fn changed(&self) -> bool {
        self.changed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `deadline` is `now + rto()` for every backoff, with RTOs and maxima that are not whole
    /// microseconds, a maximum far beyond any `u64` of microseconds, and a `now` near the end
    /// of time (saturating).
    #[test]
    fn deadline_equals_now_plus_rto() {
        let durations = [
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_micros(1),
            Duration::from_nanos(200_000_500),
            Duration::from_millis(200),
            Duration::from_secs(1),
            Duration::from_nanos(60_000_000_999),
            Duration::from_secs(120),
            Duration::MAX,
        ];
        let nows = [
            Instant::ZERO,
            Instant::from_micros(123_456_789),
            Instant::from_micros(u64::MAX - 5_000_000),
        ];
        for &initial_rto in &durations {
            for &max_rto in &durations {
                let cfg = TcpConfig {
                    initial_rto,
                    min_rto: Duration::from_nanos(1),
                    max_rto,
                    ..TcpConfig::default()
                };
                let mut rtt = RttEstimator::new(&cfg);
                for _ in 0..24 {
                    for &now in &nows {
                        assert_eq!(rtt.deadline(now), now + rtt.rto(), "{rtt:?} {now:?}");
                    }
                    rtt.back_off();
                }
            }
        }
    }

    /// `deadline` keeps equal to `now + rto()` through samples, backoffs (past the 20
    /// doublings `rto()` caps them at) and backoff resets, in any order, with a minimum and
    /// maximum that clamp the samples and are not whole microseconds.
    #[test]
    fn deadline_follows_samples_backoffs_and_resets() {
        let samples = [
            Duration::from_nanos(1),
            Duration::from_micros(700),
            Duration::from_nanos(30_000_500),
            Duration::from_millis(250),
            Duration::from_secs(3),
            Duration::from_secs(500),
        ];
        let nows = [
            Instant::ZERO,
            Instant::from_micros(987_654_321),
            Instant::from_micros(u64::MAX - 1_000),
        ];
        for (min_rto, max_rto) in [
            (Duration::from_millis(200), Duration::from_secs(60)),
            (
                Duration::from_nanos(1_500),
                Duration::from_nanos(120_000_000_777),
            ),
            (Duration::from_nanos(1), Duration::MAX),
        ] {
            let cfg = TcpConfig {
                min_rto,
                max_rto,
                ..TcpConfig::default()
            };
            let mut rtt = RttEstimator::new(&cfg);
            let check = |rtt: &RttEstimator| {
                for &now in &nows {
                    assert_eq!(rtt.deadline(now), now + rtt.rto(), "{rtt:?} {now:?}");
                }
            };
            check(&rtt);
            for (i, &s) in samples.iter().cycle().take(60).enumerate() {
                rtt.sample(s);
                check(&rtt);
                for _ in 0..(i % 4) * 7 {
                    rtt.back_off();
                    check(&rtt);
                }
                if i % 3 != 0 {
                    rtt.reset_backoff();
                    assert_eq!(rtt.backoff(), 0);
                    check(&rtt);
                }
            }
        }
    }
}
