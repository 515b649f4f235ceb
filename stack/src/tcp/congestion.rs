//! Congestion control: NewReno (RFC 5681, RFC 6928 initial window, RFC 3465 appropriate byte
//! counting) and CUBIC (RFC 9438), behind one small trait and dispatched statically through
//! [`CongestionControl`] (an enum, not a `Box<dyn>`: no allocation, inlinable).
//!
//! # Contract
//! The controller owns `cwnd` and `ssthresh`, in bytes. The connection owns loss detection and
//! recovery (fast retransmit, NewReno partial ACKs, SACK recovery) and tells the controller
//! what happened:
//! - [`Controller::on_ack`] for bytes newly acknowledged outside loss recovery;
//! - [`Controller::on_congestion_event`] once per loss episode detected by duplicate ACKs or
//!   SACK (enters fast recovery: `ssthresh` and `cwnd` are reduced);
//! - [`Controller::on_recovery_exit`] when recovery ends (a full ACK);
//! - [`Controller::on_retransmit_timeout`] on an RTO (`cwnd` falls to the loss window);
//! - [`Controller::on_idle_restart`] when sending resumes after an idle period longer than
//!   the RTO (RFC 5681 §4.1).
//!
//! Nothing here reads a clock: CUBIC's epoch is measured in the `now` the caller passes.

use crate::time::{Duration, Instant};

/// Which algorithm a connection uses. Default CUBIC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CongestionAlgorithm {
    /// RFC 5681 with RFC 6582 recovery (the recovery lives in the connection).
    NewReno,
    /// RFC 9438.
    #[default]
    Cubic,
}

/// What every congestion controller implements. All sizes are bytes; `mss` is the sender's
/// maximum segment size.
pub trait Controller {
    /// The congestion window.
    fn window(&self) -> usize;
    /// The slow start threshold.
    fn ssthresh(&self) -> usize;
    /// `acked` bytes were newly acknowledged outside loss recovery. `cwnd_limited` says
    /// whether the sender was using its window (the window does not grow otherwise, RFC 7661
    /// §4.2 and RFC 9438 §5.8); `srtt` is the smoothed RTT if known.
    fn on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        mss: usize,
        srtt: Option<Duration>,
        cwnd_limited: bool,
    );
    /// A loss detected by duplicate ACKs or SACK: reduce (RFC 5681 §3.2 step 2; RFC 9438
    /// §4.6). `flight` is the data outstanding when the loss was detected.
    fn on_congestion_event(&mut self, now: Instant, flight: usize, mss: usize);
    /// Fast recovery ended; `flight` is what is still outstanding.
    fn on_recovery_exit(&mut self, now: Instant, flight: usize, mss: usize);
    /// The retransmission timer expired (RFC 5681 §3.1 eq. 4, RFC 9438 §4.8).
    fn on_retransmit_timeout(&mut self, now: Instant, flight: usize, mss: usize);
    /// Sending restarts after an idle period longer than the RTO (RFC 5681 §4.1).
    fn on_idle_restart(&mut self, now: Instant, mss: usize);
}

/// RFC 6928 §2: IW = min(10 * MSS, max(2 * MSS, 14600)).
pub fn initial_window(mss: usize) -> usize {
    (10 * mss).min((2 * mss).max(14600))
}

/// RFC 3465 §2.2: in slow start, grow by at most L * SMSS per ACK, with L = 2.
const ABC_LIMIT: usize = 2;

fn slow_start(cwnd: usize, ssthresh: usize, acked: usize, mss: usize) -> usize {
    let grown = cwnd + acked.min(ABC_LIMIT * mss);
    // Never overshoot ssthresh by more than the increment (RFC 5681 §3.1 allows either).
    grown.min(ssthresh.max(cwnd + mss))
}

// ------------------------------------------------------------------------------- NewReno

/// RFC 5681 slow start and congestion avoidance with byte counting (RFC 3465).
#[derive(Debug, Clone, Copy)]
pub struct NewReno {
    cwnd: usize,
    ssthresh: usize,
    /// Bytes acknowledged in congestion avoidance since `cwnd` last grew.
    bytes_acked: usize,
}

impl NewReno {
    pub fn new(mss: usize) -> NewReno {
        NewReno {
            cwnd: initial_window(mss),
            // RFC 5681 §3.1: "arbitrarily high".
            ssthresh: usize::MAX / 2,
            bytes_acked: 0,
        }
    }
}

/// RFC 5681 §3.1 eq. 4: ssthresh = max(FlightSize / 2, 2 * SMSS).
fn half_flight(flight: usize, mss: usize) -> usize {
    (flight / 2).max(2 * mss)
}

impl Controller for NewReno {
    fn window(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn on_ack(
        &mut self,
        _now: Instant,
        acked: usize,
        mss: usize,
        _srtt: Option<Duration>,
        cwnd_limited: bool,
    ) {
        if !cwnd_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, self.ssthresh, acked, mss);
            return;
        }
        // RFC 3465 §2.1: one SMSS per window of acknowledged bytes.
        self.bytes_acked += acked;
        if self.bytes_acked >= self.cwnd {
            self.bytes_acked -= self.cwnd;
            self.cwnd += mss;
        }
    }
    fn on_congestion_event(&mut self, _now: Instant, flight: usize, mss: usize) {
        self.ssthresh = half_flight(flight, mss);
        self.cwnd = self.ssthresh;
        self.bytes_acked = 0;
    }
    fn on_recovery_exit(&mut self, _now: Instant, flight: usize, mss: usize) {
        // RFC 6582 §3.2 step 3, option 1: min(ssthresh, FlightSize + SMSS).
        self.cwnd = self.ssthresh.min(flight + mss).max(mss);
    }
    fn on_retransmit_timeout(&mut self, _now: Instant, flight: usize, mss: usize) {
        self.ssthresh = half_flight(flight, mss);
        self.cwnd = mss;
        self.bytes_acked = 0;
    }
    fn on_idle_restart(&mut self, _now: Instant, mss: usize) {
        self.cwnd = self.cwnd.min(initial_window(mss));
    }
}

// --------------------------------------------------------------------------------- CUBIC

/// RFC 9438 §5.1: C = 0.4.
const CUBIC_C: f64 = 0.4;
/// RFC 9438 §4.6: beta_cubic = 0.7.
const CUBIC_BETA: f64 = 0.7;

/// CUBIC (RFC 9438): window growth as a cubic function of the time since the last
/// congestion event, with the Reno-friendly region (§4.3) and fast convergence (§4.7).
#[derive(Debug, Clone, Copy)]
pub struct Cubic {
    cwnd: usize,
    ssthresh: usize,
    /// W_max in segments: the window just before the last reduction.
    w_max: f64,
    /// Start of the current congestion avoidance epoch.
    epoch_start: Option<Instant>,
    /// K in seconds (§4.2).
    k: f64,
    /// W_est in segments: the Reno-friendly estimate (§4.3).
    w_est: f64,
    /// Fractional segments of growth not yet applied to `cwnd`.
    carry: f64,
}

impl Cubic {
    pub fn new(mss: usize) -> Cubic {
        Cubic {
            cwnd: initial_window(mss),
            ssthresh: usize::MAX / 2,
            w_max: 0.0,
            epoch_start: None,
            k: 0.0,
            w_est: 0.0,
            carry: 0.0,
        }
    }

    /// W_max, in segments (for tests and diagnostics).
    pub fn w_max(&self) -> f64 {
        self.w_max
    }

    /// K, in seconds (for tests and diagnostics).
    pub fn k(&self) -> f64 {
        self.k
    }

    /// §4.6-4.7: remember W_max (with fast convergence) and compute the reduced window.
    fn reduce(&mut self, mss: usize) -> usize {
        let cwnd_seg = self.cwnd as f64 / mss as f64;
        // Fast convergence: a flow whose window shrank since the last event releases
        // bandwidth to newcomers.
        self.w_max = if cwnd_seg < self.w_max {
            cwnd_seg * (1.0 + CUBIC_BETA) / 2.0
        } else {
            cwnd_seg
        };
        self.epoch_start = None;
        self.carry = 0.0;
        ((self.cwnd as f64 * CUBIC_BETA) as usize).max(2 * mss)
    }
}

impl Controller for Cubic {
    fn window(&self) -> usize {
        self.cwnd
    }
    fn ssthresh(&self) -> usize {
        self.ssthresh
    }
    fn on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        mss: usize,
        srtt: Option<Duration>,
        cwnd_limited: bool,
    ) {
        if !cwnd_limited {
            return;
        }
        if self.cwnd < self.ssthresh {
            self.cwnd = slow_start(self.cwnd, self.ssthresh, acked, mss);
            return;
        }
        let mss_f = mss as f64;
        let cwnd_seg = self.cwnd as f64 / mss_f;
        let epoch = match self.epoch_start {
            Some(t) => t,
            None => {
                // §4.2: a new epoch starts at the first ACK in congestion avoidance.
                self.epoch_start = Some(now);
                if self.w_max <= cwnd_seg {
                    self.k = 0.0;
                    self.w_max = cwnd_seg;
                } else {
                    self.k = ((self.w_max - cwnd_seg) / CUBIC_C).cbrt();
                }
                self.w_est = cwnd_seg;
                now
            }
        };
        let rtt = srtt.unwrap_or(Duration::from_millis(100)).as_secs_f64();
        let t = now.saturating_since(epoch).as_secs_f64();
        let acked_seg = acked as f64 / mss_f;
        // §4.3: the Reno-friendly estimate, alpha = 3(1-beta)/(1+beta) below W_max.
        let alpha = if self.w_est < self.w_max {
            3.0 * (1.0 - CUBIC_BETA) / (1.0 + CUBIC_BETA)
        } else {
            1.0
        };
        self.w_est += alpha * acked_seg / cwnd_seg;
        let w_cubic = |t: f64| CUBIC_C * (t - self.k).powi(3) + self.w_max;
        let increase = if w_cubic(t) < self.w_est {
            // Reno-friendly region: follow W_est.
            (self.w_est - cwnd_seg).max(0.0)
        } else {
            // §4.4-4.5: aim at W_cubic one RTT ahead, at most 1.5 * cwnd.
            let target = w_cubic(t + rtt).clamp(cwnd_seg, 1.5 * cwnd_seg);
            (target - cwnd_seg) / cwnd_seg * acked_seg
        };
        self.carry += increase * mss_f;
        if self.carry >= 1.0 {
            let whole = self.carry as usize;
            self.cwnd += whole;
            self.carry -= whole as f64;
        }
    }
    fn on_congestion_event(&mut self, _now: Instant, _flight: usize, mss: usize) {
        let reduced = self.reduce(mss);
        self.ssthresh = reduced;
        self.cwnd = reduced;
    }
    fn on_recovery_exit(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.cwnd = self.ssthresh.max(2 * mss);
    }
    fn on_retransmit_timeout(&mut self, _now: Instant, _flight: usize, mss: usize) {
        self.ssthresh = self.reduce(mss);
        self.cwnd = mss;
    }
    fn on_idle_restart(&mut self, _now: Instant, mss: usize) {
        self.cwnd = self.cwnd.min(initial_window(mss));
        self.epoch_start = None;
    }
}

// ---------------------------------------------------------------------------- dispatch

/// A connection's congestion controller: the algorithms behind one enum.
#[derive(Debug, Clone, Copy)]
pub enum CongestionControl {
    NewReno(NewReno),
    Cubic(Cubic),
}

impl CongestionControl {
    pub fn new(algorithm: CongestionAlgorithm, mss: usize) -> CongestionControl {
        match algorithm {
            CongestionAlgorithm::NewReno => CongestionControl::NewReno(NewReno::new(mss)),
            CongestionAlgorithm::Cubic => CongestionControl::Cubic(Cubic::new(mss)),
        }
    }

    /// A controller whose window starts at `cwnd` instead of the initial window (e.g. one
    /// segment after a lost SYN, RFC 5681 §3.1).
    pub fn with_window(algorithm: CongestionAlgorithm, mss: usize, cwnd: usize) -> Self {
        let mut c = CongestionControl::new(algorithm, mss);
        match &mut c {
            CongestionControl::NewReno(r) => r.cwnd = cwnd.max(mss),
            CongestionControl::Cubic(r) => r.cwnd = cwnd.max(mss),
        }
        c
    }

    pub fn algorithm(&self) -> CongestionAlgorithm {
        match self {
            CongestionControl::NewReno(_) => CongestionAlgorithm::NewReno,
            CongestionControl::Cubic(_) => CongestionAlgorithm::Cubic,
        }
    }
}

/// Static dispatch: a `match` per call, no vtable.
macro_rules! dispatch {
    ($self:ident, $c:ident => $e:expr) => {
        match $self {
            CongestionControl::NewReno($c) => $e,
            CongestionControl::Cubic($c) => $e,
        }
    };
}

impl Controller for CongestionControl {
    #[inline]
    fn window(&self) -> usize {
        dispatch!(self, c => c.window())
    }
    #[inline]
    fn ssthresh(&self) -> usize {
        dispatch!(self, c => c.ssthresh())
    }
    #[inline]
    fn on_ack(
        &mut self,
        now: Instant,
        acked: usize,
        mss: usize,
        srtt: Option<Duration>,
        cwnd_limited: bool,
    ) {
        dispatch!(self, c => c.on_ack(now, acked, mss, srtt, cwnd_limited))
    }
    #[inline]
    fn on_congestion_event(&mut self, now: Instant, flight: usize, mss: usize) {
        dispatch!(self, c => c.on_congestion_event(now, flight, mss))
    }
    #[inline]
    fn on_recovery_exit(&mut self, now: Instant, flight: usize, mss: usize) {
        dispatch!(self, c => c.on_recovery_exit(now, flight, mss))
    }
    #[inline]
    fn on_retransmit_timeout(&mut self, now: Instant, flight: usize, mss: usize) {
        dispatch!(self, c => c.on_retransmit_timeout(now, flight, mss))
    }
    #[inline]
    fn on_idle_restart(&mut self, now: Instant, mss: usize) {
        dispatch!(self, c => c.on_idle_restart(now, mss))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: usize = 1000;

    #[test]
    fn initial_window_follows_rfc_6928() {
        assert_eq!(initial_window(1460), 14600);
        assert_eq!(initial_window(536), 5360);
        assert_eq!(initial_window(9000), 18000);
    }

    #[test]
    fn newreno_slow_start_counts_bytes_with_limit() {
        let mut c = NewReno::new(MSS);
        let t = Instant::ZERO;
        assert_eq!(c.window(), 10 * MSS);
        // A stretch ACK of 5 segments grows by at most 2 (ABC, L = 2).
        c.on_ack(t, 5 * MSS, MSS, None, true);
        assert_eq!(c.window(), 12 * MSS);
        // Not cwnd-limited: no growth.
        c.on_ack(t, MSS, MSS, None, false);
        assert_eq!(c.window(), 12 * MSS);
        c.on_congestion_event(t, 12 * MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (6 * MSS, 6 * MSS));
        // Congestion avoidance: one MSS per window of acknowledged bytes.
        for _ in 0..5 {
            c.on_ack(t, MSS, MSS, None, true);
        }
        assert_eq!(c.window(), 6 * MSS);
        c.on_ack(t, MSS, MSS, None, true);
        assert_eq!(c.window(), 7 * MSS);
        c.on_retransmit_timeout(t, 8 * MSS, MSS);
        assert_eq!((c.window(), c.ssthresh()), (MSS, 4 * MSS));
    }

    #[test]
    fn cubic_reduces_by_beta_and_regrows_to_w_max_after_k() {
        let mut c = Cubic::new(MSS);
        let t0 = Instant::ZERO;
        // Leave slow start at 100 segments.
        c.cwnd = 100 * MSS;
        c.on_congestion_event(t0, 100 * MSS, MSS);
        assert_eq!(c.window(), 70 * MSS);
        assert_eq!(c.w_max(), 100.0);
        // K = cbrt(30 / 0.4) = 4.217 s.
        let rtt = Duration::from_millis(100);
        let mut now = t0;
        // ACK a window per RTT for K seconds: the window approaches W_max from below.
        while now < Instant::from_millis(4200) {
            now += rtt;
            let w = c.window();
            for _ in 0..w / MSS {
                c.on_ack(now, MSS, MSS, Some(rtt), true);
            }
        }
        assert!((c.k() - 4.217).abs() < 0.01, "K = {}", c.k());
        let w = c.window() as f64 / MSS as f64;
        assert!((95.0..=101.0).contains(&w), "cwnd at K: {w} segments");
        // A second loss below W_max triggers fast convergence.
        c.cwnd = 90 * MSS;
        c.on_congestion_event(now, 90 * MSS, MSS);
        assert_eq!(c.w_max(), 90.0 * 1.7 / 2.0);
    }

    #[test]
    fn dispatch_reaches_the_chosen_algorithm() {
        let mut c = CongestionControl::new(CongestionAlgorithm::NewReno, MSS);
        assert_eq!(c.algorithm(), CongestionAlgorithm::NewReno);
        c.on_congestion_event(Instant::ZERO, 10 * MSS, MSS);
        assert_eq!(c.window(), 5 * MSS);
        let mut c = CongestionControl::new(CongestionAlgorithm::default(), MSS);
        assert_eq!(c.algorithm(), CongestionAlgorithm::Cubic);
        c.on_congestion_event(Instant::ZERO, 10 * MSS, MSS);
        assert_eq!(c.window(), 7 * MSS);
    }
}
