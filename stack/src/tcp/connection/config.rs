//! Per-connection settings.

use crate::tcp::congestion::CongestionAlgorithm;
use crate::time::Duration;

/// Keepalive settings (RFC 1122 §4.2.3.6). Defaults are Linux's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// Silence before the first probe. Default 2 h.
    pub idle: Duration,
    /// Between unanswered probes. Default 75 s.
    pub interval: Duration,
    /// Unanswered probes before the connection ends with `TimedOut`. Default 9.
    pub probes: u8,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            probes: 9,
        }
    }
}

/// Per-connection configuration. Defaults are documented on each field.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TcpConfig {
    /// MSS we advertise and the largest payload we send: path MTU minus 40. Default 1460.
    pub mss: u16,
    /// Send buffer size in bytes. Default 64 KiB.
    pub send_buffer: usize,
    /// Receive buffer size in bytes; bounds the advertised window. Default 64 KiB.
    pub recv_buffer: usize,
    /// Offer window scaling (RFC 7323 §2). Default on.
    pub window_scaling: bool,
    /// Offer timestamps (RFC 7323 §3). Default on.
    pub timestamps: bool,
    /// Offer SACK (RFC 2018). Default on.
    pub sack: bool,
    /// Maximum segment lifetime; TIME-WAIT lasts 2×MSL. Default 30 s.
    pub msl: Duration,
    /// Initial retransmission timeout (RFC 6298 §2.1). Default 1 s.
    pub initial_rto: Duration,
    /// Lower bound of the RTO (RFC 6298 §2.4 says 1 s; Linux and we use 200 ms). Default 200 ms.
    pub min_rto: Duration,
    /// Upper bound of the RTO (RFC 6298 §2.5). Default 60 s.
    pub max_rto: Duration,
    /// SYN retransmissions before giving up (active open). Default 6.
    pub syn_retries: u8,
    /// SYN-ACK retransmissions before giving up (passive open). Default 5.
    pub synack_retries: u8,
    /// Data/FIN retransmissions, and unanswered zero-window probes, before giving up (Linux
    /// `tcp_retries2`). Default 15.
    pub data_retries: u8,
    /// How long an orphaned FIN-WAIT-2 connection waits for the peer's FIN. Default 60 s.
    pub fin_wait2_timeout: Duration,
    /// Challenge ACKs per connection per second (RFC 5961 §7). Default 10.
    pub challenge_ack_limit: u32,
    /// Congestion control algorithm. Default CUBIC.
    pub congestion: CongestionAlgorithm,
    /// Delayed ACK timeout (RFC 1122 §4.2.3.2: under 0.5 s); zero acknowledges every segment
    /// at once. Default 40 ms.
    pub ack_delay: Duration,
    /// Data segments acknowledged at once at connection start, so the peer's slow start is
    /// not slowed by delayed ACKs (Linux "quick ACK" mode). Default 16.
    pub quick_acks: u16,
    /// Nagle's algorithm (RFC 896, RFC 9293 §3.7.4): hold small segments while data is
    /// unacknowledged. Default off (latency-sensitive servers are our users).
    pub nagle: bool,
    /// Keepalive probing. Default off.
    pub keepalive: Option<Keepalive>,
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            send_buffer: 64 * 1024,
            recv_buffer: 64 * 1024,
            window_scaling: true,
            timestamps: true,
            sack: true,
            msl: Duration::from_secs(30),
            initial_rto: Duration::from_secs(1),
            min_rto: Duration::from_millis(200),
            max_rto: Duration::from_secs(60),
            syn_retries: 6,
            synack_retries: 5,
            data_retries: 15,
            fin_wait2_timeout: Duration::from_secs(60),
            challenge_ack_limit: 10,
            congestion: CongestionAlgorithm::Cubic,
            ack_delay: Duration::from_millis(40),
            quick_acks: 16,
            nagle: false,
            keepalive: None,
        }
    }
}

impl TcpConfig {
    /// The window scale shift we offer: the smallest that lets the receive buffer be advertised.
    pub fn offered_wscale(&self) -> Option<u8> {
        if !self.window_scaling {
            return None;
        }
        let mut shift = 0u8;
        while shift < 14 && (self.recv_buffer >> shift) > 65535 {
            shift += 1;
        }
        Some(shift)
    }
}
