//! State transitions and the helpers input, timers and output share: windows, flight size,
//! pipe, challenge ACKs, our timestamp clock, keepalive arming.

use super::*;

impl<A: Address> Connection<A> {
    pub(super) fn stop_timers(&mut self) {
        self.rtx_at = None;
        self.persist = Persist::default();
        self.force_probe = false;
        self.ack_at = None;
        self.keepalive_at = None;
        self.keepalive_probe = false;
        self.fin_wait2_until = None;
        self.rtx_next = None;
    }

    pub(super) fn enter_closed(&mut self, _now: Instant, event: Option<Event>) {
        let was_open = self.state != State::Closed && self.state != State::TimeWait;
        self.state = State::Closed;
        self.stop_timers();
        self.time_wait_until = None;
        self.ack_pending = false;
        if let Some(e) = event {
            self.push_event(e);
        }
        if was_open {
            self.push_event(Event::Closed);
        }
    }

    /// [`Self::close`] in CLOSE-WAIT with nothing unread, the server's usual close after the
    /// peer's FIN: what the general path does for it (`shutdown`'s CLOSE-WAIT case: the FIN
    /// is queued and the state is LAST-ACK, RFC 9293 §3.10.4), in one test. False, with
    /// nothing changed, in any other case.
    #[inline(always)]
    pub(crate) fn close_in_close_wait(&mut self) -> bool {
        if self.state != State::CloseWait || !self.rx.is_empty() {
            return false;
        }
        self.app_closed = true;
        if !self.fin_queued {
            self.fin_queued = true;
            self.state = State::LastAck;
        }
        true
    }

    pub(super) fn enter_time_wait(&mut self, now: Instant) {
        self.state = State::TimeWait;
        self.stop_timers();
        self.time_wait_until = Some(now + 2 * self.cfg.msl);
        self.push_event(Event::Closed);
    }

    pub(super) fn enter_established(&mut self, now: Instant) {
        self.state = State::Established;
        self.soft_error = None;
        self.start_congestion_control();
        self.arm_keepalive(now);
        self.push_event(Event::Connected);
        if self.fin_queued {
            self.state = State::FinWait1;
        }
    }

    /// The handshake is done and the MSS known: the initial window (RFC 6928), or one segment
    /// if the SYN or SYN-ACK had to be retransmitted (RFC 5681 §3.1).
    pub(super) fn start_congestion_control(&mut self) {
        let mss = self.eff_mss();
        *self.cc_mut() = if self.syn_retransmitted {
            CongestionControl::with_window(self.cfg.congestion, mss, mss)
        } else {
            CongestionControl::new(self.cfg.congestion, mss)
        };
    }

    /// Record the peer's SYN: IRS and the options it offered (RFC 9293 §3.10.7.2-3).
    pub(super) fn take_peer_syn(&mut self, syn: &TcpRepr, now: Instant) {
        self.irs = syn.seq_number;
        self.rcv_nxt = syn.seq_number + 1;
        // Our SYN (or SYN-ACK) offers the unscaled free space (RFC 7323 §2.2).
        self.rcv_adv = self.rcv_nxt + self.rx.free().min(65535);
        self.last_ack_sent = self.rcv_nxt;
        // RFC 9293 §3.7.1: MSS defaults to 536; never above what our MTU allows.
        let peer_mss = syn.max_seg_size.unwrap_or(536).max(64);
        // An ICMP in SYN-SENT may have lowered the path MTU already (`icmp.rs`).
        self.snd_mss = peer_mss.min(self.cfg.mss).min(self.path_mss);
        // Window scaling only if both sides offer it (RFC 7323 §2.2).
        match (syn.window_scale, self.offered_wscale) {
            (Some(peer), Some(ours)) => {
                self.snd_wscale = peer.min(14);
                self.rcv_wscale = ours;
            }
            _ => {
                self.snd_wscale = 0;
                self.rcv_wscale = 0;
                self.offered_wscale = None;
            }
        }
        self.ts = match (syn.timestamp, self.cfg.timestamps) {
            (Some(t), true) => Some(Timestamps {
                recent: t.tsval,
                recent_at: now,
                offset: self.ts_offset,
            }),
            _ => None,
        };
        self.sack_ok = syn.sack_permitted && self.cfg.sack;
        // The window in a SYN is never scaled (RFC 7323 §2.2).
        self.snd_wnd = syn.window_len as u32;
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = syn.seq_number;
    }

    /// The largest window the receive buffer allows right now.
    pub(super) fn max_window(&self) -> usize {
        self.rx.free().min(65535usize << self.rcv_wscale)
    }

    /// Receive window for the acceptability test: what we advertised.
    pub(super) fn rcv_wnd(&self) -> usize {
        self.rcv_adv - self.rcv_nxt
    }

    /// RFC 9293 §3.8.6.2.2: the window grows in steps of at least min(buffer/2, MSS).
    pub(super) fn rcv_sws_threshold(&self) -> usize {
        (self.rx.capacity() / 2).min(self.cfg.mss as usize).max(1)
    }

    pub(super) fn fin_seq(&self) -> SeqNumber {
        self.tx_seq + self.tx.len()
    }

    pub(super) fn fin_acked(&self) -> bool {
        self.fin_queued && self.snd_una == self.fin_seq() + 1
    }

    pub(super) fn has_sendable(&self) -> bool {
        let unsent = self.tx_seq + self.tx.len();
        self.snd_nxt < unsent || (self.fin_queued && self.snd_nxt <= self.fin_seq())
    }

    /// Payload bytes per full-sized segment: the MSS less the timestamps option.
    pub(super) fn eff_mss(&self) -> usize {
        mss_after_options(self.snd_mss, self.ts.is_some())
    }

    pub(super) fn effective_cwnd(&self) -> usize {
        match self.recovery {
            Recovery::NewReno { cwnd } => cwnd,
            _ => self.cc.window(),
        }
    }

    /// RFC 5681 FlightSize: data sent and not yet acknowledged.
    pub(super) fn flight_size(&self) -> usize {
        self.snd_max - self.snd_una
    }

    /// RFC 6675 §4 SetPipe: octets presumed in the network. Unsacked octets not presumed
    /// lost count once, octets retransmitted in this recovery once more.
    pub(super) fn pipe(&self) -> usize {
        let mss = self.eff_mss();
        let mut pipe = 0;
        for hole in self.scoreboard.holes(self.snd_una, mss) {
            if !hole.lost {
                pipe += hole.end - hole.start;
            }
            let rtx_end = self.high_rxt.min(hole.end);
            if rtx_end > hole.start {
                pipe += rtx_end - hole.start;
            }
        }
        let top = self
            .scoreboard
            .high_sacked()
            .unwrap_or(self.snd_una)
            .max(self.snd_una);
        pipe + (self.snd_max - top)
    }

    pub(super) fn challenge_ack(&mut self, now: Instant, counters: &mut Counters) {
        if now.saturating_since(self.challenge_window) >= Duration::from_secs(1) {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.cfg.challenge_ack_limit {
            self.challenge_count += 1;
            self.ack_pending = true;
            counters.challenge_acks += 1;
            crate::trace::debug!(conn = %self.tuple, state = %self.state, "RFC 5961 challenge ACK");
        } else {
            counters.challenge_acks_suppressed += 1;
        }
    }

    pub(super) fn ts_now(&self, now: Instant) -> u32 {
        // A 1 ms clock (RFC 7323 §5.4 allows 1 ms .. 1 s per tick).
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }

    pub(super) fn arm_keepalive(&mut self, now: Instant) {
        if let Some(ka) = self.cfg.keepalive
            && matches!(
                self.state,
                State::Established | State::CloseWait | State::FinWait1 | State::FinWait2
            )
        {
            self.keepalive_at = Some(now + ka.idle);
            self.keepalive_sent = 0;
        }
    }
}

/// The payload room of a segment for a send MSS of `snd_mss`, less the 12 bytes a timestamp
/// option takes on every segment when timestamps are on (RFC 7323 §3.2); at least 1.
#[inline]
pub(super) fn mss_after_options(snd_mss: u16, timestamps: bool) -> usize {
    let options = if timestamps { 12 } else { 0 };
    usize::from(snd_mss).saturating_sub(options).max(1)
}
