//! Input: one segment at a time, in the order of RFC 9293 §3.10.7 (SYN-SENT; then the
//! synchronized states: PAWS, sequence acceptability, RST, SYN, ACK, text, FIN), ACK
//! processing, loss recovery entry, receiving text and FIN.

use super::*;

impl<A: Address> Connection<A> {
    /// Processes one segment for this connection (RFC 9293 §3.10.7).
    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr, counters: &mut Counters) {
        if self.fast_segment(now, seg) {
            return;
        }
        self.handle_segment_full(now, seg, counters);
    }

    /// The common segment without data in ESTABLISHED (a pure ACK or a bare FIN that
    /// acknowledges everything we sent) or LAST-ACK (the ACK of our FIN), at RCV.NXT and
    /// with timestamps negotiated and a TSval not older than TS.Recent: the RFC 9293
    /// §3.10.7.4 steps that can act on it, in one pass. True when it was handled; false
    /// (nothing changed) sends it down [`Self::handle_segment_full`], which gives the same
    /// result for the segments taken here (`fast_path_matches_the_full_path`).
    #[inline(always)]
    fn fast_segment(&mut self, now: Instant, seg: &TcpRepr) -> bool {
        let (Some(ts), Some(seg_ts), Some(ack)) = (self.ts, seg.timestamp, seg.ack_number) else {
            return false;
        };
        let fin = match seg.control {
            TcpControl::None => false,
            TcpControl::Fin => true,
            _ => return false,
        };
        let seq = seg.seq_number;
        // At RCV.NXT a segment is always acceptable (first check), and a TSval not older
        // than TS.Recent passes PAWS (RFC 7323 §5.3 R1).
        if seq != self.rcv_nxt
            || !seg.payload.is_empty()
            || ack != self.snd_max
            || (seg_ts.tsval.wrapping_sub(ts.recent) as i32) < 0
        {
            return false;
        }
        match self.state {
            // All we sent acknowledged: no RTT sample, duplicate ACK, SACK or recovery
            // work in `process_ack`, only the window update.
            State::Established => {
                if ack != self.snd_una
                    || (self.sack_ok && seg.sack_ranges.iter().any(Option::is_some))
                {
                    return false;
                }
            }
            // The ACK of our FIN (`on_segment_ack`'s LAST-ACK case). RFC 5961 §5.2 cannot
            // call it too old: it is SND.MAX, at most the send window (< 2^30, RFC 7323 §2.3)
            // plus the FIN above SND.UNA, so not below SND.UNA - MAX.SND.WND. Handled to the
            // end here (nothing carried past the match).
            State::LastAck => {
                debug_assert!(
                    ack >= SeqNumber(self.snd_una.0.wrapping_sub(self.max_snd_wnd.max(1)))
                );
                // Our FIN is queued in LAST-ACK (both ways in set `fin_queued`, and only a
                // reinitialised block clears it), so the ACK of it is FIN + 1 alone.
                debug_assert!(self.fin_queued);
                if ack != self.fin_seq() + 1 {
                    return false;
                }
                self.fast_ts_recent(seq, seg_ts.tsval, now);
                // Fifth: ACK. `enter_closed` clears the persist state (`persist.unanswered`
                // with it) and the keepalive timer, and `arm_keepalive` does nothing in
                // LAST-ACK: neither is touched first.
                self.snd_una = ack;
                self.snd_nxt = ack;
                // `enter_closed(now, None)` from LAST-ACK, an open state, once our FIN went
                // out (ACK = SND.MAX = FIN + 1), less the stores of what is clear already, so
                // that the two cache lines they alone would touch are not: TIME-WAIT's and
                // FIN-WAIT-2's deadlines (neither state leads to LAST-ACK; a block starts
                // with both None) and the keepalive probe (each transmission of the FIN
                // cleared it, and the keepalive timer sets it only with nothing in flight,
                // while the FIN is in flight until this ACK).
                debug_assert!(
                    self.time_wait_until.is_none()
                        && self.fin_wait2_until.is_none()
                        && !self.keepalive_probe
                );
                self.state = State::Closed;
                self.rtx_at = None;
                self.persist = Persist::default();
                self.force_probe = false;
                self.ack_at = None;
                self.keepalive_at = None;
                self.rtx_next = None;
                self.ack_pending = false;
                self.push_event(Event::Closed);
                return true;
            }
            _ => return false,
        }
        self.fast_ts_recent(seq, seg_ts.tsval, now);
        // Fifth: ACK.
        self.persist.unanswered = 0;
        // The hot deadline first: it is armed only with keepalive on, so the configuration
        // (a cold line of the control block) is read only then.
        if self.keepalive_at.is_some() && self.cfg.keepalive.is_some() {
            self.arm_keepalive(now);
        }
        let window = (seg.window_len as u32) << self.snd_wscale;
        if self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack) {
            self.update_send_window(seq, ack, window);
        }
        // Eighth: the FIN, in order (this one, or one that came early and is now at
        // RCV.NXT). The state is ESTABLISHED here, so `receive_fin` would take it to
        // CLOSE-WAIT, and it runs at most once: it clears `rx_fin`. Written out for that
        // state alone (no TIME-WAIT entry from FIN-WAIT-2 to call).
        if (fin && self.rx_fin.is_none()) || self.rx_fin == Some(self.rcv_nxt) {
            debug_assert_eq!(self.state, State::Established);
            self.rx_fin = None;
            self.rcv_nxt += 1;
            self.ack_pending = true;
            self.state = State::CloseWait;
            self.push_event(Event::PeerClosed);
        }
        // `update_persist` does nothing unless the timer runs or data waits past SND.NXT.
        if self.persist.at.is_some() || self.snd_nxt < self.tx_seq + self.tx.len() {
            self.update_persist(now);
        }
        true
    }

    /// `fast_segment`'s TS.Recent update (RFC 7323 §4.3): timestamps are on there.
    #[inline(always)]
    fn fast_ts_recent(&mut self, seq: SeqNumber, tsval: u32, now: Instant) {
        if seq <= self.last_ack_sent
            && let Some(t) = self.ts.as_mut()
        {
            t.recent = tsval;
            t.recent_at = now;
        }
    }

    /// [`Self::handle_segment`] for any segment.
    #[inline(never)]
    pub(super) fn handle_segment_full(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        counters: &mut Counters,
    ) {
        match self.state {
            State::Closed | State::Listen => {}
            State::SynSent => self.on_segment_syn_sent(now, seg, counters),
            _ => {
                self.on_segment_synchronized(now, seg, counters);
                if self.state.is_synchronized() && self.state != State::TimeWait {
                    self.update_persist(now);
                }
            }
        }
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT.
    pub(super) fn on_segment_syn_sent(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        counters: &mut Counters,
    ) {
        let rst = seg.control == TcpControl::Rst;
        // First: the ACK must acknowledge our SYN.
        if let Some(ack) = seg.ack_number
            && (ack <= self.iss || ack > self.snd_max)
        {
            if !rst {
                self.rst_pending = Some(PendingRst {
                    seq: ack,
                    ack: None,
                });
            }
            return;
        }
        // Second: RST. Only with an acceptable ACK (RFC 5961 §3.2 keeps this rule).
        if rst {
            if seg.ack_number.is_some() {
                counters.resets_received += 1;
                self.tx.clear();
                self.enter_closed(now, Some(Event::Reset));
            }
            return;
        }
        // Fourth: SYN.
        if seg.control != TcpControl::Syn {
            return;
        }
        self.take_peer_syn(seg, now);
        match seg.ack_number {
            Some(ack) => {
                // Our SYN is acknowledged: ESTABLISHED.
                self.on_ack_advance(now, ack, seg.timestamp);
                self.snd_wl1 = seg.seq_number;
                self.snd_wl2 = ack;
                self.enter_established(now);
                self.ack_pending = true;
                if !seg.payload.is_empty() {
                    // Data on a SYN-ACK is legal; accept what fits.
                    self.receive_text(now, seg.seq_number + 1, seg.payload, false);
                }
            }
            None => {
                // Simultaneous open (RFC 9293 §3.5, Figure 8): SYN-RECEIVED, resend our SYN
                // with an ACK.
                self.state = State::SynReceived;
                self.snd_nxt = self.iss;
                self.rtx_at = None;
            }
        }
    }

    /// RFC 9293 §3.10.7.4: every state from SYN-RECEIVED on.
    pub(super) fn on_segment_synchronized(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        counters: &mut Counters,
    ) {
        let rst = seg.control == TcpControl::Rst;
        let mut syn = seg.control == TcpControl::Syn;
        let fin = seg.control == TcpControl::Fin;
        let mut seq = seg.seq_number;

        if syn && seq == self.irs {
            if self.state == State::SynReceived && seg.ack_number.is_none() {
                // The peer retransmitted its SYN: our SYN-ACK was lost. Send it again.
                self.snd_nxt = self.iss;
                return;
            }
            if self.state == State::SynReceived {
                // The SYN-ACK of a simultaneous open: its SYN is a duplicate we already hold,
                // its ACK completes our handshake (RFC 9293 Figure 8, line 6).
                syn = false;
                seq += 1;
            }
        }
        let seg_len = seg.payload.len() + syn as usize + fin as usize;

        // RFC 7323 §3.2: once timestamps are negotiated every non-RST segment carries TSopt;
        // one without is silently dropped.
        if self.ts.is_some() && seg.timestamp.is_none() && !rst {
            counters.ts_missing_drops += 1;
            return;
        }

        // PAWS (RFC 7323 §5.3 R1): a segment whose TSval is older than TS.Recent is an old
        // duplicate. The comparison is modulo 2^32 (§5.2), so it holds across the wrap of the
        // timestamp clock; TS.Recent older than 24 days is invalid (§5.5).
        let mut ts_older_ok = false;
        // TS.Recent's age matters only for an older TSval (here and in the update below).
        if let (Some(ts), Some(seg_ts)) = (self.ts, seg.timestamp)
            && (seg_ts.tsval.wrapping_sub(ts.recent) as i32) < 0
        {
            let recent_valid =
                now.saturating_since(ts.recent_at) < Duration::from_secs(24 * 24 * 3600);
            ts_older_ok = !recent_valid;
            if recent_valid && !rst {
                counters.paws_drops += 1;
                crate::trace::debug!(conn = %self.tuple, tsval = seg_ts.tsval, "drop: PAWS");
                self.ack_pending = true;
                return;
            }
        }

        // First: sequence number acceptability (RFC 9293 §3.10.7.4 table). A zero-length
        // segment exactly at the right edge is accepted too (as Linux does): a peer whose
        // send window we filled sends its ACKs there.
        let wnd = self.rcv_wnd();
        let in_window = |s: SeqNumber| s >= self.rcv_nxt && s < self.rcv_nxt + wnd;
        let acceptable = match (seg_len, wnd) {
            (0, 0) => seq == self.rcv_nxt,
            (0, _) => seq >= self.rcv_nxt && seq <= self.rcv_nxt + wnd,
            (_, 0) => false,
            (_, _) => in_window(seq) || in_window(seq + (seg_len - 1)),
        };
        // A zero-window probe or a segment exactly at RCV.NXT is still processed for its ACK
        // and RST; its data is trimmed below.
        let acceptable = acceptable || (wnd == 0 && seq == self.rcv_nxt);
        if !acceptable {
            if !rst {
                counters.unacceptable_segments += 1;
                crate::trace::debug!(conn = %self.tuple, seq = seq.0, "drop: out of window");
                if seg_len > 0 && seq + seg_len <= self.rcv_nxt {
                    self.stats_mut().duplicate_segments += 1;
                }
                self.ack_pending = true;
                // In TIME-WAIT a retransmitted FIN is below RCV.NXT: re-ACK and restart the
                // 2MSL timer (RFC 9293 §3.10.7.4, TIME-WAIT, FIN bit).
                if self.state == State::TimeWait && fin {
                    self.time_wait_until = Some(now + 2 * self.cfg.msl);
                }
            }
            return;
        }

        // TS.Recent update (RFC 7323 §4.3, §5.3 R3): from segments at or before
        // Last.ACK.sent whose TSval is not older, or any TSval once TS.Recent is invalid
        // (§5.5; Linux's `tcp_paws_check` does the same).
        if let (Some(ts), Some(seg_ts)) = (self.ts.as_mut(), seg.timestamp)
            && seq <= self.last_ack_sent
            && ((seg_ts.tsval.wrapping_sub(ts.recent) as i32) >= 0 || ts_older_ok)
        {
            ts.recent = seg_ts.tsval;
            ts.recent_at = now;
        }

        // Second: RST (RFC 5961 §3.2): exact match resets, in-window draws a challenge ACK.
        if rst {
            if seq == self.rcv_nxt {
                counters.resets_received += 1;
                self.tx.clear();
                let event = match self.state {
                    State::Closing | State::LastAck | State::TimeWait => None,
                    _ => Some(Event::Reset),
                };
                self.enter_closed(now, event);
            } else {
                self.challenge_ack(now, counters);
            }
            return;
        }

        // Fourth: SYN in a synchronized state (RFC 5961 §4.2): challenge ACK, never abort.
        if syn {
            self.challenge_ack(now, counters);
            return;
        }

        // Fifth: ACK.
        if !self.on_segment_ack(now, seg, seq, fin, counters) {
            return;
        }

        // Seventh and eighth: segment text and FIN.
        if !seg.payload.is_empty() || fin {
            match self.state {
                State::Established | State::FinWait1 | State::FinWait2 => {
                    if self.app_closed && !seg.payload.is_empty() && seq + seg_len > self.rcv_nxt {
                        // Nobody will read it: RST (RFC 9293 §3.10.7.4 / RFC 1122 §4.2.2.13).
                        self.abort(now);
                        return;
                    }
                    if seg.payload.is_empty() && seq == self.rcv_nxt {
                        // A bare FIN in order (`receive_text`'s first case, without the
                        // call): noted and at RCV.NXT, so received at once (as below).
                        if self.rx_fin.is_none() {
                            self.receive_fin(now);
                        }
                    } else {
                        self.receive_text(now, seq, seg.payload, fin);
                    }
                }
                // The peer already sent FIN: text after it is ignored.
                _ => {}
            }
        }
        if self.rx_fin == Some(self.rcv_nxt) {
            self.receive_fin(now);
        }
    }

    /// Fifth step for a synchronized state (RFC 9293 §3.10.7.4): the ACK field, with the
    /// SYN-RECEIVED → ESTABLISHED transition and the transitions on our FIN being acked.
    /// False when the segment's processing ends here.
    fn on_segment_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        seq: SeqNumber,
        fin: bool,
        counters: &mut Counters,
    ) -> bool {
        let Some(ack) = seg.ack_number else {
            return false;
        };
        // Anything acceptable from the peer shows it is alive.
        self.persist.unanswered = 0;
        // The hot deadline first: it is armed only with keepalive on, so the configuration
        // (a cold line of the control block) is read only then.
        if self.keepalive_at.is_some() && self.cfg.keepalive.is_some() {
            self.arm_keepalive(now);
        }
        if self.state == State::SynReceived {
            if self.snd_una < ack && ack <= self.snd_max {
                self.on_ack_advance(now, ack, seg.timestamp);
                let shift = if seg.control == TcpControl::Syn {
                    0
                } else {
                    self.snd_wscale
                };
                self.snd_wnd = (seg.window_len as u32) << shift;
                self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
                self.snd_wl1 = seq;
                self.snd_wl2 = ack;
                self.enter_established(now);
            } else {
                // <SEQ=SEG.ACK><CTL=RST>
                self.rst_pending = Some(PendingRst {
                    seq: ack,
                    ack: None,
                });
                return false;
            }
        }
        // RFC 5961 §5.2: an ACK for data we never sent gets an ACK and is dropped; one older
        // than the largest window the peer ever offered too.
        if ack > self.snd_max {
            self.ack_pending = true;
            return false;
        }
        let oldest = SeqNumber(self.snd_una.0.wrapping_sub(self.max_snd_wnd.max(1)));
        if ack < oldest {
            self.challenge_ack(now, counters);
            return false;
        }
        // RFC 9293 §3.10.7.4, LAST-ACK: "The only thing that can arrive in this state is an
        // acknowledgment of our FIN. If our FIN is now acknowledged, delete the TCB, enter the
        // CLOSED state, and return." Nothing `process_ack` would compute (RTT sample,
        // congestion window, SACK scoreboard, send window) outlives the TCB, so the ACK of
        // our FIN closes at once; `fin_acked` holds afterwards as on the long path.
        if self.state == State::LastAck && self.fin_queued && ack == self.fin_seq() + 1 {
            self.snd_una = ack;
            self.snd_nxt = ack;
            self.enter_closed(now, None);
            return false;
        }
        self.process_ack(now, seg, seq, ack, fin);

        match self.state {
            State::FinWait1 if self.fin_acked() => {
                self.state = State::FinWait2;
                if self.app_closed {
                    self.fin_wait2_until = Some(now + self.cfg.fin_wait2_timeout);
                }
            }
            State::Closing if self.fin_acked() => {
                self.enter_time_wait(now);
                return false;
            }
            State::LastAck if self.fin_acked() => {
                self.enter_closed(now, None);
                return false;
            }
            _ => {}
        }
        true
    }

    /// The ACK field of an acceptable segment (RFC 9293 §3.10.7.4 fifth step), with loss
    /// detection: SACK blocks, duplicate ACKs, recovery entry and exit, window update.
    pub(super) fn process_ack(
        &mut self,
        now: Instant,
        seg: &TcpRepr,
        seq: SeqNumber,
        ack: SeqNumber,
        fin: bool,
    ) {
        // The window field of a SYN is never scaled (RFC 7323 §2.2).
        let shift = if seg.control == TcpControl::Syn {
            0
        } else {
            self.snd_wscale
        };
        let window = (seg.window_len as u32) << shift;
        let window_update = self.snd_wl1 < seq || (self.snd_wl1 == seq && self.snd_wl2 <= ack);
        // RFC 5681 §2: a duplicate ACK carries no data, no SYN/FIN, acknowledges SND.UNA with
        // data outstanding, and does not change the window.
        let duplicate = ack == self.snd_una
            && seg.payload.is_empty()
            && !fin
            && self.snd_una != self.snd_max
            && window == self.snd_wnd
            && self.persist.at.is_none();

        // SACK blocks (RFC 2018 §4): the scoreboard first, relative to the new SND.UNA.
        let mut sacked_new = false;
        // Most ACKs carry no SACK block: three tests, not the iterator's loop.
        if self.sack_ok && seg.sack_ranges.iter().any(Option::is_some) {
            let base = ack.max(self.snd_una);
            for (l, r) in seg.sack_ranges.iter().flatten().copied() {
                if self.scoreboard.add(l, r, base, self.snd_max) {
                    sacked_new = true;
                    self.stats_mut().sack_blocks_received += 1;
                }
            }
        }

        if ack > self.snd_una {
            self.on_ack_advance(now, ack, seg.timestamp);
        } else if duplicate {
            self.on_duplicate_ack(now);
        }

        // RFC 6675 §5: SACK can reveal a loss before three duplicate ACKs arrive (and with
        // data-carrying ACKs, which never count as duplicates).
        if self.sack_ok
            && self.recovery == Recovery::None
            && sacked_new
            && self.snd_una >= self.recover
            && self.scoreboard.is_lost(self.snd_una, self.eff_mss())
            && self.state.is_synchronized()
        {
            self.enter_recovery(now);
        }

        // Window update (RFC 9293 §3.10.7.4, SND.WL1/WL2 rule).
        if window_update {
            self.update_send_window(seq, ack, window);
        }
    }

    /// The send window from a segment that passed the SND.WL1/WL2 rule.
    #[inline(always)]
    fn update_send_window(&mut self, seq: SeqNumber, ack: SeqNumber, window: u32) {
        self.snd_wnd = window;
        self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
        self.snd_wl1 = seq;
        self.snd_wl2 = ack;
        // The persist timer first: it seldom runs, and then the room need not be worked out
        // (the same result, both are plain reads).
        if self.persist.at.is_some() && (self.snd_una + self.snd_wnd as usize) - self.snd_nxt > 0 {
            // The window opened: leave persist. A probe byte the peer did not take is
            // sent again as ordinary data.
            self.persist = Persist::default();
            self.force_probe = false;
            if self.snd_una < self.snd_max && self.rtx_at.is_none() {
                self.snd_nxt = self.snd_una;
            }
        }
    }

    /// RFC 5681 §3.2 / RFC 6582 §3.2: a duplicate ACK.
    pub(super) fn on_duplicate_ack(&mut self, now: Instant) {
        self.dupacks += 1;
        self.stats_mut().dup_acks += 1;
        match self.recovery {
            Recovery::NewReno { cwnd } => {
                // Step 4: each further duplicate ACK means a segment left the network.
                self.recovery = Recovery::NewReno {
                    cwnd: cwnd + self.eff_mss(),
                };
            }
            Recovery::Sack => {}
            Recovery::None => {
                // RFC 6582 §3.2 step 1: only if the ACK covers more than `recover` (no fast
                // retransmit for duplicates caused by a go-back-N after an RTO).
                if self.dupacks as usize == DUP_THRESH && self.snd_una > self.recover {
                    self.enter_recovery(now);
                }
            }
        }
    }

    /// Fast retransmit: enter NewReno (RFC 6582) or SACK (RFC 6675) loss recovery.
    pub(super) fn enter_recovery(&mut self, now: Instant) {
        let mss = self.eff_mss();
        let flight = self.flight_size();
        self.cc_mut().on_congestion_event(now, flight, mss);
        self.recover = self.snd_max;
        self.high_rxt = self.snd_una;
        self.stats_mut().fast_retransmits += 1;
        // Karn: the timed segment may be retransmitted now.
        self.rtt_probe = None;
        self.recovery = if self.sack_ok {
            Recovery::Sack
        } else {
            // RFC 5681 §3.2 step 3: cwnd = ssthresh + 3 * SMSS.
            Recovery::NewReno {
                cwnd: self.cc.window() + DUP_THRESH * mss,
            }
        };
        // Retransmit the first unacknowledged segment at once, outside the window.
        self.rtx_next = Some(self.snd_una);
    }

    /// SND.UNA advances to `ack` (already checked: SND.UNA < ack <= SND.MAX).
    pub(super) fn on_ack_advance(
        &mut self,
        now: Instant,
        ack: SeqNumber,
        ts: Option<TcpTimestamp>,
    ) {
        let flight_before = self.flight_size();
        let acked = ack - self.snd_una;
        // Data bytes acknowledged (the SYN and FIN occupy sequence space but no buffer).
        let mut acked_data = 0;
        if ack > self.tx_seq {
            acked_data = (ack - self.tx_seq).min(self.tx.len());
            self.tx.consume(acked_data);
            self.tx_seq += acked_data;
        }
        self.snd_una = ack;
        if self.snd_nxt < ack {
            self.snd_nxt = ack;
        }
        if self.high_rxt < ack {
            self.high_rxt = ack;
        }
        self.scoreboard.advance(ack);
        if let Some(s) = self.rtx_next
            && s < ack
        {
            self.rtx_next = None;
        }
        // RTT sample: timestamps echo our clock (RFC 7323 §4.1); otherwise time one segment,
        // never a retransmitted one (Karn's rule, RFC 6298 §3).
        let mut sampled = false;
        if let (Some(t), Some(seg_ts)) = (self.ts, ts)
            && seg_ts.tsecr != 0
        {
            let sent = seg_ts.tsecr.wrapping_sub(t.offset);
            let elapsed = (now.total_millis() as u32).wrapping_sub(sent);
            if elapsed < 60_000 && self.rtx_count == 0 {
                self.rtt.sample(Duration::from_millis(elapsed as u64));
                sampled = true;
            }
        }
        if let Some((end, sent_at)) = self.rtt_probe
            && ack >= end
        {
            if !sampled {
                self.rtt.sample(now.saturating_since(sent_at));
            }
            self.rtt_probe = None;
        }
        self.rtx_count = 0;
        self.rtt.reset_backoff();
        self.dupacks = 0;

        let mss = self.eff_mss();
        match self.recovery {
            Recovery::None => {
                if acked_data > 0 && self.state.is_synchronized() {
                    let limited = self.cwnd_blocked || flight_before + 2 * mss >= self.cc.window();
                    let srtt = self.rtt.srtt();
                    self.cc_mut().on_ack(now, acked_data, mss, srtt, limited);
                }
            }
            Recovery::NewReno { cwnd } => {
                if ack >= self.recover {
                    // Full ACK (RFC 6582 §3.2 step 3): leave recovery.
                    self.recovery = Recovery::None;
                    let flight = self.flight_size();
                    self.cc_mut().on_recovery_exit(now, flight, mss);
                } else {
                    // Partial ACK (step 4): retransmit the next hole, deflate by the amount
                    // acknowledged, add back one SMSS if at least that much was acknowledged.
                    self.rtx_next = Some(ack);
                    self.stats_mut().partial_acks += 1;
                    let back = if acked >= mss { mss } else { 0 };
                    self.recovery = Recovery::NewReno {
                        cwnd: cwnd.saturating_sub(acked).max(mss) + back,
                    };
                }
            }
            Recovery::Sack => {
                if ack >= self.recover {
                    // RFC 6675 §5: the cumulative ACK covers RecoveryPoint.
                    self.recovery = Recovery::None;
                    let flight = self.flight_size();
                    self.cc_mut().on_recovery_exit(now, flight, mss);
                }
            }
        }

        // RFC 6298 §5.2-5.3: stop the timer when everything is acknowledged, else restart it.
        self.rtx_at = if self.snd_una < self.snd_max {
            Some(self.rtt.deadline(now))
        } else {
            None
        };
        if self.want_writable && self.tx.free() > 0 && self.can_send() {
            self.want_writable = false;
            self.push_event(Event::Writable);
        }
    }

    /// Seventh step: segment text (and the FIN at its end), trimmed to the window, stored in
    /// order or out of order; then the ACK policy (RFC 5681 §4.2, RFC 1122 §4.2.3.2).
    pub(super) fn receive_text(&mut self, now: Instant, seq: SeqNumber, payload: &[u8], fin: bool) {
        let end = seq + payload.len();
        // A bare FIN (or empty segment) in order: nothing to store, trim or acknowledge
        // early; the general path below gives the same result with the window arithmetic.
        if payload.is_empty() && seq == self.rcv_nxt {
            if fin && self.rx_fin.is_none() {
                self.rx_fin = Some(end);
            }
            return;
        }
        if !payload.is_empty() && end <= self.rcv_nxt {
            // Entirely old: the peer missed our ACK. Tell it at once.
            self.stats_mut().duplicate_segments += 1;
            self.ack_pending = true;
            return;
        }
        let (skip, offset) = if seq < self.rcv_nxt {
            (self.rcv_nxt - seq, 0)
        } else {
            (0, seq - self.rcv_nxt)
        };
        let data = &payload[skip.min(payload.len())..];
        // Trim to the window (never past the peer's FIN).
        let mut limit = self.rcv_wnd().min(self.rx.free());
        if let Some(f) = self.rx_fin {
            limit = limit.min(f - self.rcv_nxt);
        }
        let take = data.len().min(limit.saturating_sub(offset));
        let had_hole = self.rx.has_out_of_order();
        if take > 0 {
            match self.rx.write(offset, &data[..take]) {
                Ok(n) => {
                    if n > 0 {
                        self.rcv_nxt += n;
                        self.push_event(Event::Readable);
                    }
                }
                Err(_) => {
                    // Out of reassembly ranges: drop it, the peer retransmits.
                    self.stats_mut().out_of_order_dropped += 1;
                    self.ack_pending = true;
                    return;
                }
            }
        }
        if fin && take == data.len() && offset + take <= limit && self.rx_fin.is_none() {
            self.rx_fin = Some(end);
        }
        if payload.is_empty() {
            if offset > 0 {
                self.ack_pending = true;
            }
            return;
        }
        self.rcv_mss = self.rcv_mss.max(payload.len());
        if offset > 0 {
            // RFC 5681 §4.2: an out-of-order segment is acknowledged at once (with SACK).
            self.stats_mut().out_of_order_segments += 1;
            self.ack_pending = true;
            self.dup_acks_owed = self.dup_acks_owed.saturating_add(1).min(8);
        } else if had_hole || take < data.len() {
            // It filled (part of) a hole, or overran the window: acknowledge at once.
            self.ack_pending = true;
        } else {
            self.schedule_ack(now, take);
        }
    }

    /// Delayed ACK (RFC 1122 §4.2.3.2, RFC 5681 §4.2): at least every second full-sized
    /// segment, within `ack_delay`; at once during the quick-ACK start.
    pub(super) fn schedule_ack(&mut self, now: Instant, len: usize) {
        self.rcv_unacked += len;
        // A segment within 40 option bytes of the largest seen counts as full-sized.
        if len + 40 >= self.rcv_mss {
            self.rcv_unacked_full += 1;
        }
        if self.quick_acks > 0 {
            self.quick_acks -= 1;
            self.ack_pending = true;
        } else if self.cfg.ack_delay.is_zero()
            || self.rcv_unacked_full >= 2
            || self.rcv_unacked >= 2 * self.rcv_mss
        {
            self.ack_pending = true;
        } else if self.ack_at.is_none() {
            self.ack_at = Some(now + self.cfg.ack_delay);
        }
    }

    /// Eighth step: the peer's FIN, now that everything before it has arrived.
    #[inline(always)]
    pub(super) fn receive_fin(&mut self, now: Instant) {
        self.rx_fin = None;
        self.rcv_nxt += 1;
        // A FIN is acknowledged at once: nothing more will come to piggyback on.
        self.ack_pending = true;
        match self.state {
            State::SynReceived | State::Established => {
                self.state = State::CloseWait;
                self.push_event(Event::PeerClosed);
            }
            State::FinWait1 => {
                // Our FIN is not acknowledged yet (else we'd be in FIN-WAIT-2): CLOSING.
                self.state = State::Closing;
                self.push_event(Event::PeerClosed);
            }
            State::FinWait2 => {
                self.push_event(Event::PeerClosed);
                self.enter_time_wait(now);
            }
            _ => {}
        }
    }

    /// Arms or disarms the persist timer (RFC 9293 §3.8.6.1): armed while data waits, nothing
    /// is in flight under the retransmission timer, and the peer's window allows nothing
    /// worth sending (zero, or too small for sender SWS avoidance).
    pub(super) fn update_persist(&mut self, now: Instant) {
        let data_end = self.tx_seq + self.tx.len();
        let blocked = self.rtx_at.is_none()
            && self.snd_nxt < data_end
            && matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::Closing
                    | State::LastAck
            )
            && {
                let room = (self.snd_una + self.snd_wnd as usize) - self.snd_nxt;
                let unsent = data_end - self.snd_nxt;
                room == 0
                    || (room < unsent.min(self.eff_mss())
                        && room < (self.max_snd_wnd as usize / 2).max(1))
            };
        if !blocked {
            if self.persist.at.is_some() {
                self.persist = Persist::default();
            }
            return;
        }
        if self.persist.at.is_none() {
            self.persist.at = Some(now + self.persist_interval());
        }
    }

    /// The RTO, doubled for every probe (RFC 9293 §3.8.6.1 "exponential backoff").
    pub(super) fn persist_interval(&self) -> Duration {
        let base = self.rtt.base_rto().as_micros() as u64;
        let backed = base.saturating_mul(1u64 << self.persist.backoff.min(20));
        Duration::from_micros(backed).min(self.rtt.max_rto)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    const LOCAL: u16 = 40000;

    /// Debug output without the buffers' bytes (beyond what a buffer holds they are
    /// whatever its memory held before).
    fn strip_bytes(s: &str) -> String {
        let mut out = String::new();
        let mut rest = s;
        while let Some(i) = rest.find("bytes: [") {
            out.push_str(&rest[..i]);
            let j = rest[i..].find(']').unwrap();
            rest = &rest[i + j + 1..];
        }
        out.push_str(rest);
        out
    }

    /// Equal Debug output, or a panic showing where they part.
    fn same(a: &str, b: &str, s: &TcpRepr) {
        let (a, b) = (&strip_bytes(a), &strip_bytes(b));
        if a != b {
            let i = a.bytes().zip(b.bytes()).take_while(|(x, y)| x == y).count();
            let from = i.saturating_sub(200);
            panic!(
                "differ for {s:?}:\n fast {}\n full {}",
                &a[from..(i + 100).min(a.len())],
                &b[from..(i + 100).min(b.len())]
            );
        }
    }

    fn back(s: SeqNumber) -> SeqNumber {
        SeqNumber(s.0.wrapping_sub(1))
    }
    const REMOTE: u16 = 80;

    fn seg(control: TcpControl, seq: SeqNumber, ack: SeqNumber, tsval: u32) -> TcpRepr<'static> {
        TcpRepr {
            src_port: REMOTE,
            dst_port: LOCAL,
            control,
            seq_number: seq,
            ack_number: Some(ack),
            window_len: 1000,
            timestamp: Some(TcpTimestamp { tsval, tsecr: 0 }),
            ..TcpRepr::default()
        }
    }

    /// Connections in the states the fast path takes (and some it leaves), with
    /// timestamps and SACK negotiated.
    fn connections(keepalive: bool) -> Vec<Connection> {
        let tuple = FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: LOCAL,
            remote_port: REMOTE,
        };
        // Small buffers: the comparison prints them.
        let mut cfg = TcpConfig {
            send_buffer: 2048,
            recv_buffer: 2048,
            ..TcpConfig::default()
        };
        if keepalive {
            cfg.keepalive = Some(Keepalive::default());
        }
        let iss = SeqNumber(1000);
        let irs = SeqNumber(5000);
        let mut now = Instant::from_millis(1);
        let mut counters = Counters::default();
        let mut c = Connection::connect(&cfg, tuple, iss, 0, now);
        assert!(c.poll_transmit(now, &mut counters).is_some(), "the SYN");
        let syn_ack = TcpRepr {
            window_scale: Some(7),
            sack_permitted: true,
            max_seg_size: Some(1460),
            window_len: 65535,
            ..seg(TcpControl::Syn, irs, iss + 1, 100)
        };
        c.handle_segment(now, &syn_ack, &mut counters);
        assert_eq!(c.state, State::Established);
        while c.poll_transmit(now, &mut counters).is_some() {}
        let mut out = vec![c.clone()];
        // Data in flight.
        let mut d = c.clone();
        now += Duration::from_millis(1);
        d.send(&[1; 100]).unwrap();
        while d.poll_transmit(now, &mut counters).is_some() {}
        out.push(d.clone());
        // FIN-WAIT-1.
        let mut f = c.clone();
        f.close(now).unwrap();
        while f.poll_transmit(now, &mut counters).is_some() {}
        out.push(f);
        // LAST-ACK, with and without data before our FIN.
        for mut l in [c.clone(), d] {
            let fin = seg(TcpControl::Fin, l.rcv_nxt, l.snd_una, 101);
            l.handle_segment(now, &fin, &mut counters);
            assert_eq!(l.state, State::CloseWait);
            l.close(now).unwrap();
            while l.poll_transmit(now, &mut counters).is_some() {}
            assert_eq!(l.state, State::LastAck);
            out.push(l);
        }
        let mut more = Vec::new();
        for c in &out {
            // A FIN noted beyond RCV.NXT, and at RCV.NXT; persist armed; an older
            // Last.ACK.sent; the peer's right edge and SND.WL1/WL2 moved.
            let mut x = c.clone();
            x.rx_fin = Some(x.rcv_nxt + 3);
            more.push(x);
            let mut x = c.clone();
            x.rx_fin = Some(x.rcv_nxt);
            more.push(x);
            let mut x = c.clone();
            x.persist.at = Some(now);
            more.push(x);
            let mut x = c.clone();
            x.last_ack_sent = back(x.rcv_nxt);
            more.push(x);
            let mut x = c.clone();
            x.snd_wl1 = x.rcv_nxt + 1;
            x.snd_wnd = 0;
            more.push(x);
            // Probes unanswered and a keepalive deadline kept from ESTABLISHED (in LAST-ACK,
            // closing must clear both).
            let mut x = c.clone();
            x.persist.unanswered = 2;
            x.keepalive_at = Some(now + Duration::from_secs(7));
            more.push(x);
        }
        out.extend(more);
        out
    }

    /// `handle_segment` (fast path where it applies) leaves the connection and the
    /// counters exactly as the full path does, over many segments and states.
    #[test]
    fn fast_path_matches_the_full_path() {
        let now = Instant::from_millis(1000);
        let mut fast_taken = 0;
        let mut checked = 0;
        for keepalive in [false, true] {
            for c in connections(keepalive) {
                let recent = c.ts.unwrap().recent;
                let (nxt, una, max) = (c.rcv_nxt, c.snd_una, c.snd_max);
                for control in [
                    TcpControl::None,
                    TcpControl::Fin,
                    TcpControl::Syn,
                    TcpControl::Rst,
                ] {
                    for seq in [back(nxt), nxt, nxt + 1] {
                        for ack in [back(una), una, una + 1, max, max + 1] {
                            for tsval in [None, Some(recent - 1), Some(recent), Some(recent + 1)] {
                                for payload in [&b""[..], &b"x"[..]] {
                                    for window_len in [0u16, 1000] {
                                        for sack in [false, true] {
                                            let mut s = seg(control, seq, ack, 0);
                                            s.timestamp =
                                                tsval.map(|tsval| TcpTimestamp { tsval, tsecr: 0 });
                                            s.payload = payload;
                                            s.window_len = window_len;
                                            if sack {
                                                s.sack_ranges[0] = Some((una + 1, una + 2));
                                            }
                                            let mut fast = c.clone();
                                            let mut full = c.clone();
                                            let mut cf = Counters::default();
                                            let mut cs = Counters::default();
                                            if fast.clone().fast_segment(now, &s) {
                                                fast_taken += 1;
                                            }
                                            fast.handle_segment(now, &s, &mut cf);
                                            full.handle_segment_full(now, &s, &mut cs);
                                            same(&format!("{fast:?}"), &format!("{full:?}"), &s);
                                            assert_eq!(cf, cs, "{s:?}");
                                            assert_eq!(full.poll_at(), full.poll_at_all());
                                            // Nothing to send where `wants_transmit` says so.
                                            if !full.wants_transmit() {
                                                let mut c = Counters::default();
                                                let mut x = full.clone();
                                                assert!(x.poll_transmit(now, &mut c).is_none());
                                            }
                                            // And once the timers ran out.
                                            let later = now + Duration::from_secs(100_000);
                                            full.handle_timeout(later, &mut cs);
                                            assert_eq!(full.poll_at(), full.poll_at_all());
                                            if !full.wants_transmit() {
                                                let mut c = Counters::default();
                                                assert!(
                                                    full.poll_transmit(later, &mut c).is_none()
                                                );
                                            }
                                            checked += 1;
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        println!("fast path: {fast_taken} of {checked} segments");
        assert!(fast_taken > 500, "{fast_taken}");
    }

    /// `close` (its CLOSE-WAIT shortcut where it applies) leaves the connection as the
    /// general path does, in the fast path's states and after the peer's FIN with and
    /// without unread data.
    #[test]
    fn close_shortcut_matches_the_general_close() {
        let now = Instant::from_millis(1000);
        let mut counters = Counters::default();
        let mut taken = 0;
        let mut checked = 0;
        for keepalive in [false, true] {
            for c in connections(keepalive) {
                let recent = c.ts.unwrap().recent;
                let fin = seg(TcpControl::Fin, c.rcv_nxt, c.snd_max, recent);
                let mut variants = vec![c.clone()];
                for payload in [&b""[..], &b"abc"[..]] {
                    let mut w = c.clone();
                    w.handle_segment(now, &TcpRepr { payload, ..fin }, &mut counters);
                    variants.push(w.clone());
                    w.app_closed = true;
                    w.fin_queued = true;
                    variants.push(w);
                }
                for v in variants {
                    if v.state == State::CloseWait && v.rx.is_empty() {
                        taken += 1;
                    }
                    let (mut a, mut b) = (v.clone(), v.clone());
                    let ra = a.close(now);
                    let rb = if v.state == State::Closed {
                        Ok(())
                    } else {
                        b.close_general(now)
                    };
                    assert_eq!(ra, rb);
                    same(&format!("{a:?}"), &format!("{b:?}"), &fin);
                    checked += 1;
                }
            }
        }
        println!("close shortcut: {taken} of {checked}");
        assert!(taken > 10, "{taken}");
    }

    /// The fast path's close from LAST-ACK stores nothing into TIME-WAIT's and FIN-WAIT-2's
    /// deadlines or the keepalive probe flag: each is clear there once our FIN went out, also
    /// when the keepalive timer ran out in CLOSE-WAIT (a probe pending at the close) or in
    /// LAST-ACK itself, and after the FIN was retransmitted. The close then equals the full
    /// path's.
    #[test]
    fn last_ack_has_no_deadline_or_probe_left_for_the_fast_close() {
        let mut counters = Counters::default();
        let mut checked = 0;
        let idle = Keepalive::default().idle + Duration::from_secs(1);
        for c in connections(true) {
            if c.state != State::Established || c.rx_fin.is_some() || c.persist.at.is_some() {
                continue;
            }
            // Probe in CLOSE-WAIT, then close; close, then the timers (keepalive, RTO) run
            // in LAST-ACK once and twice.
            for (probe_first, timeouts) in [(true, 0), (false, 1), (false, 2)] {
                let mut now = Instant::from_millis(1000);
                let mut l = c.clone();
                let fin = seg(TcpControl::Fin, l.rcv_nxt, l.snd_una, 101);
                l.handle_segment(now, &fin, &mut counters);
                assert_eq!(l.state, State::CloseWait);
                while l.poll_transmit(now, &mut counters).is_some() {}
                if probe_first {
                    now += idle;
                    l.handle_timeout(now, &mut counters);
                    assert!(l.keepalive_probe || l.snd_una != l.snd_max);
                }
                l.close(now).unwrap();
                while l.poll_transmit(now, &mut counters).is_some() {}
                for _ in 0..timeouts {
                    now += idle;
                    l.handle_timeout(now, &mut counters);
                    while l.poll_transmit(now, &mut counters).is_some() {}
                    assert_eq!(l.poll_at(), l.poll_at_all());
                }
                assert_eq!(l.state, State::LastAck);
                assert_eq!(l.snd_max, l.fin_seq() + 1, "the FIN went out");
                assert!(l.time_wait_until.is_none());
                assert!(l.fin_wait2_until.is_none());
                assert!(!l.keepalive_probe);
                let recent = l.ts.unwrap().recent;
                let ack = seg(TcpControl::None, l.rcv_nxt, l.snd_max, recent);
                let (mut fast, mut full) = (l.clone(), l.clone());
                let (mut cf, mut cs) = (Counters::default(), Counters::default());
                assert!(l.clone().fast_segment(now, &ack), "{l:?}");
                fast.handle_segment(now, &ack, &mut cf);
                full.handle_segment_full(now, &ack, &mut cs);
                assert_eq!(fast.state, State::Closed);
                same(&format!("{fast:?}"), &format!("{full:?}"), &ack);
                assert_eq!(cf, cs);
                checked += 1;
            }
        }
        assert!(checked >= 6, "{checked}");
    }
}
