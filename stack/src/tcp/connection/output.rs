//! Output: `poll_transmit` yields the next segment: a pending RST, a SYN, a pure ACK or
//! window update, or data (retransmission first, SACK recovery, then new data).

use super::*;

impl<A: Address> Connection<A> {
    /// The next segment to send, if any. The payload borrows the send buffer; emit it before
    /// calling any other method.
    pub fn poll_transmit(&mut self, now: Instant, counters: &mut Counters) -> Option<TcpRepr<'_>> {
        if let Some(rst) = self.rst_pending.take() {
            counters.resets_sent += 1;
            return Some(TcpRepr {
                src_port: self.tuple.local_port,
                dst_port: self.tuple.remote_port,
                control: TcpControl::Rst,
                seq_number: rst.seq,
                ack_number: rst.ack,
                ..TcpRepr::default()
            });
        }
        match self.state {
            State::Closed | State::Listen => None,
            State::SynSent | State::SynReceived => self.transmit_syn(now, counters),
            State::TimeWait => self.transmit_ack_only(now),
            _ => self.transmit_data(now, counters),
        }
    }

    /// [`Connection::poll_transmit`]'s answer when it is a bare FIN: nothing owed but the
    /// FIN at SND.NXT = SND.MAX (`pick_fin_only`'s pick, sent for the first time) and no
    /// SACK blocks to report, so the segment is FIN+ACK with no payload and timestamps as
    /// its only option. The same segment as a compact [`BareRepr`], with the same changes to
    /// the connection as `transmit_data` makes for that pick (RTO armed and RTT timed as for
    /// any first transmission, RFC 6298 §5.1; the ACK paid). None, with nothing changed, in
    /// every other case: the caller then asks `poll_transmit`. The unit test
    /// `bare_fin_matches_poll_transmit` compares the two over sender and receiver states.
    #[inline]
    pub fn poll_bare_fin(&mut self, now: Instant) -> Option<BareRepr> {
        let fin_seq = self.fin_seq();
        // No FIN queued first: what nearly every other segment fails at once.
        if !self.fin_queued
            || self.rst_pending.is_some()
            || !matches!(
                self.state,
                State::Established
                    | State::CloseWait
                    | State::FinWait1
                    | State::FinWait2
                    | State::Closing
                    | State::LastAck
            )
            || self.snd_nxt != fin_seq
            || self.snd_max != fin_seq
            || self.snd_una > fin_seq
            || self.force_probe
            || self.rtx_next.is_some()
            || self.recovery == Recovery::Sack
            || (self.sack_ok && self.rx.has_out_of_order())
        {
            return None;
        }
        // `transmit_data` for the pick { seq: SND.NXT, len: 0, fin, advance }: a first
        // transmission, one sequence number long.
        let seq = self.snd_nxt;
        let end = seq + 1;
        self.keepalive_probe = false;
        if self.rtt_probe.is_none() {
            self.rtt_probe = Some((end, now));
        }
        self.snd_nxt = end;
        self.snd_max = end;
        if self.rtx_at.is_none() {
            self.rtx_at = Some(self.rtt.deadline(now));
            self.persist = Persist::default();
        }
        self.last_send = now;
        let window_len = self.advertise_window();
        let timestamp = self.ts.map(|t| TcpTimestamp {
            tsval: self.ts_now(now),
            tsecr: t.recent,
        });
        self.note_ack_sent();
        Some(BareRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            seq_number: seq,
            ack_number: self.rcv_nxt,
            window_len,
            fin: true,
            timestamp,
        })
    }

    /// SACK blocks for our next segment (RFC 2018 §4): the most recently changed first.
    #[inline]
    pub(super) fn sack_ranges(&self) -> [Option<(SeqNumber, SeqNumber)>; 3] {
        if self.sack_ok && self.rx.has_out_of_order() {
            self.sack_blocks()
        } else {
            [None; 3]
        }
    }

    /// The blocks of [`Connection::sack_ranges`] when there is out-of-order data.
    #[inline(never)]
    fn sack_blocks(&self) -> [Option<(SeqNumber, SeqNumber)>; 3] {
        let mut ranges = [None; 3];
        for (slot, (s, e)) in ranges.iter_mut().zip(self.rx.recent_ranges(3)) {
            *slot = Some((self.rcv_nxt + s, self.rcv_nxt + e));
        }
        ranges
    }

    #[inline]
    pub(super) fn base_repr(&mut self, now: Instant) -> TcpRepr<'static> {
        let window = self.advertise_window();
        let sack_ranges = self.sack_ranges();
        TcpRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            // SND.MAX, not SND.NXT: after an RTO rewinds SND.NXT, an ACK from below the
            // peer's RCV.NXT would be unacceptable to it and only draw another ACK.
            seq_number: self.snd_max,
            ack_number: Some(self.rcv_nxt),
            window_len: window,
            sack_ranges,
            timestamp: self.ts.map(|t| TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: t.recent,
            }),
            ..TcpRepr::default()
        }
    }

    /// Every segment we send acknowledges RCV.NXT: what was owed is paid.
    pub(super) fn note_ack_sent(&mut self) {
        self.ack_pending = false;
        self.dup_acks_owed = 0;
        self.ack_at = None;
        self.rcv_unacked = 0;
        self.rcv_unacked_full = 0;
        self.last_ack_sent = self.rcv_nxt;
    }

    /// The window field for a non-SYN segment; moves RCV.ADV right but never left.
    pub(super) fn advertise_window(&mut self) -> u16 {
        let max = self.max_window();
        let right = self.rcv_nxt + max;
        if right > self.rcv_adv {
            // Receiver SWS avoidance (RFC 9293 §3.8.6.2.2): only move the right edge by at
            // least min(buffer/2, MSS), or to the full buffer (tested first: an empty
            // buffer, the common case, needs no threshold).
            let grow = right - self.rcv_adv;
            if max == self.rx.capacity() || grow >= self.rcv_sws_threshold() {
                self.rcv_adv = right;
            }
        }
        if self.rcv_adv < self.rcv_nxt {
            self.rcv_adv = self.rcv_nxt;
        }
        let wnd = (self.rcv_adv - self.rcv_nxt) >> self.rcv_wscale;
        wnd.min(65535) as u16
    }

    pub(super) fn transmit_ack_only(&mut self, now: Instant) -> Option<TcpRepr<'static>> {
        if !self.ack_pending {
            return None;
        }
        let repr = self.base_repr(now);
        self.note_ack_sent();
        self.stats_mut().pure_acks_sent += 1;
        Some(repr)
    }

    pub(super) fn transmit_syn(
        &mut self,
        now: Instant,
        counters: &mut Counters,
    ) -> Option<TcpRepr<'static>> {
        if self.snd_nxt != self.iss {
            // SYN in flight: only a challenge ACK can be owed (SYN-RECEIVED).
            if self.state == State::SynReceived && self.ack_pending {
                let mut r = self.base_repr(now);
                self.note_ack_sent();
                r.window_len = self.rx.free().min(65535) as u16;
                return Some(r);
            }
            return None;
        }
        let retransmit = self.snd_max != self.iss;
        self.snd_nxt = self.iss + 1;
        self.snd_max = self.snd_max.max(self.snd_nxt);
        if self.rtx_at.is_none() {
            self.rtx_at = Some(self.rtt.deadline(now));
        }
        if retransmit {
            counters.retransmits += 1;
            self.stats_mut().retransmits += 1;
            self.syn_retransmitted = true;
        } else {
            self.rtt_probe = Some((self.iss + 1, now));
        }
        self.note_ack_sent();
        let synack = self.state == State::SynReceived;
        if synack {
            counters.synacks_sent += 1;
        }
        // In SYN-SENT we offer timestamps with TSecr 0; in SYN-RECEIVED only if negotiated.
        let timestamp = match (synack, self.ts, self.cfg.timestamps) {
            (true, Some(t), _) => Some(TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: t.recent,
            }),
            (false, _, true) => Some(TcpTimestamp {
                tsval: self.ts_now(now),
                tsecr: 0,
            }),
            _ => None,
        };
        Some(TcpRepr {
            src_port: self.tuple.local_port,
            dst_port: self.tuple.remote_port,
            control: TcpControl::Syn,
            psh: false,
            seq_number: self.iss,
            ack_number: synack.then_some(self.rcv_nxt),
            // Never scaled in a SYN (RFC 7323 §2.2).
            window_len: self.rx.free().min(65535) as u16,
            window_scale: self.offered_wscale,
            max_seg_size: Some(self.cfg.mss),
            sack_permitted: if synack { self.sack_ok } else { self.cfg.sack },
            sack_ranges: [None; 3],
            timestamp,
            payload: &[],
        })
    }

    /// The segment owed outside the congestion window (fast retransmit, partial ACK):
    /// from `seq`, at most one MSS, never into SACKed data.
    pub(super) fn pick_owed(&mut self, mss: usize) -> Option<Pick> {
        let seq = self.rtx_next.take()?;
        if seq < self.snd_una || seq >= self.snd_max {
            return None;
        }
        Some(self.retransmission_at(seq, mss, self.snd_max))
    }

    /// A retransmission starting at `seq`, at most `mss` bytes, ending before `limit` and
    /// before the next SACKed range; with the FIN if it reaches it and the FIN was sent.
    pub(super) fn retransmission_at(&self, seq: SeqNumber, mss: usize, limit: SeqNumber) -> Pick {
        let fin_seq = self.fin_seq();
        let mut end = limit.min(fin_seq).min(seq + mss);
        if let Some(s) = self.scoreboard.next_sacked_start(seq) {
            end = end.min(s);
        }
        let len = end - seq;
        let fin = self.fin_queued && seq + len == fin_seq && self.snd_max > fin_seq;
        Pick {
            seq,
            len,
            fin,
            advance: false,
            probe: false,
        }
    }

    /// RFC 6675 §4 NextSeg for SACK recovery, gated by cwnd - pipe >= the segment.
    pub(super) fn pick_sack_recovery(&mut self, now: Instant, mss: usize) -> Option<Pick> {
        let cwnd = self.cc.window();
        let pipe = self.pipe();
        if pipe >= cwnd {
            self.cwnd_blocked = true;
            return None;
        }
        let room = cwnd - pipe;
        // Rule 1: the first lost byte above HighRxt.
        let mut rule3 = None;
        for hole in self.scoreboard.holes(self.snd_una, mss) {
            if hole.end <= self.high_rxt {
                continue;
            }
            let start = hole.start.max(self.high_rxt);
            if hole.lost {
                let p = self.retransmission_at(start, mss, hole.end);
                return (p.len <= room || room >= mss).then_some(p);
            }
            if rule3.is_none() {
                rule3 = Some(start);
            }
        }
        // Rule 2: new data, if the receiver's window allows.
        if let Some(p) = self.pick_from_snd_nxt(now, mss, room) {
            return Some(p);
        }
        // Rule 3: a hole not yet presumed lost.
        let start = rule3?;
        let p = self.retransmission_at(start, mss, self.snd_max);
        (p.len > 0 && (p.len <= room || room >= mss)).then_some(p)
    }

    /// The segment at SND.NXT: new data, or (after an RTO) go-back-N retransmission that
    /// skips SACKed ranges. Applies the receive window, the congestion window `cwnd_room`,
    /// sender SWS avoidance (RFC 9293 §3.8.6.2.1), Nagle, and zero-window probing.
    #[inline]
    pub(super) fn pick_from_snd_nxt(
        &mut self,
        now: Instant,
        mss: usize,
        cwnd_room: usize,
    ) -> Option<Pick> {
        match self.pick_fin_only() {
            Some(pick) => pick,
            None => self.pick_from_snd_nxt_full(now, mss, cwnd_room),
        }
    }

    /// `pick_from_snd_nxt`'s answer when nothing is unsent and nothing is to be resent from
    /// SND.NXT (SND.NXT = SND.MAX = the end of the queued data) and no probe is owed: at
    /// most the FIN. The full path gives the same result (len 0: no window, congestion
    /// window, Nagle or idle-restart rule applies), with less work for the bare FIN and for
    /// a pure ACK. None when the full path is needed.
    #[inline(always)]
    fn pick_fin_only(&self) -> Option<Option<Pick>> {
        let fin_seq = self.fin_seq();
        if self.snd_nxt != fin_seq || self.snd_nxt != self.snd_max || self.force_probe {
            return None;
        }
        Some(
            (self.fin_queued && self.snd_una <= fin_seq).then_some(Pick {
                seq: self.snd_nxt,
                len: 0,
                fin: true,
                advance: true,
                probe: false,
            }),
        )
    }

    /// [`Connection::pick_from_snd_nxt`] when there is data (or a probe) to consider.
    #[inline(never)]
    fn pick_from_snd_nxt_full(
        &mut self,
        now: Instant,
        mss: usize,
        cwnd_room: usize,
    ) -> Option<Pick> {
        // Never resend what the peer SACKed.
        while self.snd_nxt < self.snd_max {
            match self.scoreboard.sacked_end(self.snd_nxt) {
                Some(e) => self.snd_nxt = e.min(self.snd_max),
                None => break,
            }
        }
        let fin_seq = self.fin_seq();
        let avail = fin_seq - self.snd_nxt;
        let retransmitting = self.snd_nxt < self.snd_max;
        let right = self.snd_una + self.snd_wnd as usize;
        let mut room = right - self.snd_nxt;
        if retransmitting && (self.snd_nxt == self.snd_una || self.snd_nxt < right) {
            // Data below SND.MAX was inside a window the peer offered (and a receiver never
            // shrinks its right edge): retransmit it even if the window has since closed.
            room = room.max(self.snd_max - self.snd_nxt);
        }
        // A retransmission may run on into new data (e.g. a refused zero-window probe
        // byte followed by what the reopened window allows), never into SACKed data.
        let mut len = avail.min(mss).min(room);
        if retransmitting && let Some(s) = self.scoreboard.next_sacked_start(self.snd_nxt) {
            len = len.min(s - self.snd_nxt);
        }
        if self.force_probe && room == 0 && fin_seq > self.snd_una && self.rtx_at.is_none() {
            // Zero-window probe: one byte past the window (RFC 9293 §3.8.6.1): the byte at
            // SND.UNA if an earlier probe sent it, else the next new one.
            self.force_probe = false;
            self.stats_mut().zero_window_probes += 1;
            let seq = if self.snd_nxt > self.snd_una {
                self.snd_una
            } else {
                self.snd_nxt
            };
            return Some(Pick {
                seq,
                len: 1,
                fin: false,
                advance: seq == self.snd_nxt,
                probe: true,
            });
        }
        if len > cwnd_room {
            self.cwnd_blocked = true;
            len = 0;
        } else if avail > 0 && !retransmitting {
            self.cwnd_blocked = false;
        }
        let in_flight = self.snd_una != self.snd_max;
        if !retransmitting && len > 0 && len < mss && len < avail {
            // Sender SWS avoidance: a window-limited runt only if it is at least half the
            // largest window the peer offered (RFC 9293 §3.8.6.2.1 (3)).
            if len < (self.max_snd_wnd as usize / 2).max(1) && !self.force_probe {
                len = 0;
            }
        }
        if !retransmitting
            && len > 0
            && len < mss
            && self.cfg.nagle
            && in_flight
            && !self.fin_queued
            && !self.force_probe
        {
            // Nagle (RFC 896): one small segment in flight at a time.
            len = 0;
        }
        if len == 0 && self.force_probe && avail > 0 && room > 0 && !retransmitting {
            // SWS override timer (RFC 9293 §3.8.6.2.1 (4)): send what the window allows.
            len = room.min(mss).min(avail).min(cwnd_room.max(1));
        }
        self.force_probe = false;
        let fin = self.fin_queued && self.snd_nxt + len == fin_seq && self.snd_una <= fin_seq;
        if len == 0 && !fin {
            return None;
        }
        if !retransmitting && !in_flight && len > 0 {
            // RFC 5681 §4.1: restart from the initial window after an idle RTO.
            if now.saturating_since(self.last_send) > self.rtt.rto() {
                self.cc_mut().on_idle_restart(now, mss);
            }
        }
        Some(Pick {
            seq: self.snd_nxt,
            len,
            fin,
            advance: true,
            probe: false,
        })
    }

    /// The general choice of the next data segment: owed retransmission, SACK recovery, or
    /// from SND.NXT under the congestion window.
    #[inline(never)]
    fn pick_data(&mut self, now: Instant) -> Option<Pick> {
        // RFC 6691: options come out of the MSS. Without out-of-order data (no SACK blocks)
        // they are the timestamps or nothing (`eff_mss`), known without building the blocks.
        let mss = if self.sack_ok && self.rx.has_out_of_order() {
            let options = TcpRepr {
                sack_ranges: self.sack_ranges(),
                timestamp: self.ts.map(|_| TcpTimestamp::default()),
                ..TcpRepr::default()
            }
            .options_len();
            (self.snd_mss as usize).saturating_sub(options).max(1)
        } else {
            self.eff_mss()
        };
        match self.pick_owed(mss) {
            Some(p) => Some(p),
            None => match self.recovery {
                Recovery::Sack => self.pick_sack_recovery(now, mss),
                _ => {
                    let sacked = self.scoreboard.sacked_below(self.snd_nxt);
                    let flight = (self.snd_nxt - self.snd_una).saturating_sub(sacked);
                    let room = self.effective_cwnd().saturating_sub(flight);
                    self.pick_from_snd_nxt(now, mss, room)
                }
            },
        }
    }

    pub(super) fn transmit_data(
        &mut self,
        now: Instant,
        counters: &mut Counters,
    ) -> Option<TcpRepr<'_>> {
        // Nothing owed outside the window, not in SACK recovery, and nothing past SND.NXT but
        // the FIN: `pick_from_snd_nxt` would take its shortcut, which needs neither the MSS
        // nor the congestion window room.
        let quick = if self.rtx_next.is_none() && !matches!(self.recovery, Recovery::Sack) {
            self.pick_fin_only()
        } else {
            None
        };
        let pick = match quick {
            Some(pick) => pick,
            None => self.pick_data(now),
        };
        let Some(pick) = pick else {
            self.update_persist(now);
            if !self.keepalive_probe && !self.ack_pending {
                return None;
            }
            let mut repr = self.base_repr(now);
            if self.keepalive_probe {
                // RFC 1122 §4.2.3.6: SEG.SEQ = SND.NXT - 1 (SND.MAX here), no data: the peer
                // answers with an ACK whether or not it is synchronized with us.
                self.keepalive_probe = false;
                self.stats_mut().keepalive_probes += 1;
                repr.seq_number = SeqNumber(self.snd_max.0.wrapping_sub(1));
                self.note_ack_sent();
                self.stats_mut().pure_acks_sent += 1;
                return Some(repr);
            }
            let owed = self.dup_acks_owed;
            self.note_ack_sent();
            if owed > 1 {
                // Another duplicate ACK follows this one.
                self.dup_acks_owed = owed - 1;
                self.ack_pending = true;
            }
            self.stats_mut().pure_acks_sent += 1;
            return Some(repr);
        };
        self.keepalive_probe = false;
        let offset = pick.seq - self.tx_seq;
        let len = self.tx.contiguous_at(offset, pick.len).len();
        // A ring wrap can shorten the run: the FIN then waits for the next segment.
        let fin = pick.fin && len == pick.len;
        let seq_len = len + fin as usize;
        if seq_len == 0 && !self.ack_pending {
            return None;
        }
        let end = pick.seq + seq_len;
        if pick.probe {
            // Counted in zero_window_probes; the persist timer covers it.
        } else if pick.seq < self.snd_max {
            counters.retransmits += 1;
            self.stats_mut().retransmits += 1;
            self.stats_mut().bytes_retransmitted += len as u64;
            // Karn: a retransmission invalidates the timed segment.
            self.rtt_probe = None;
            if !pick.advance && end > self.high_rxt {
                self.high_rxt = end;
            }
        } else {
            self.stats_mut().bytes_sent += len as u64;
            if self.rtt_probe.is_none() {
                self.rtt_probe = Some((end, now));
            }
        }
        if pick.advance || pick.probe {
            self.snd_nxt = self.snd_nxt.max(end);
        }
        self.snd_max = self.snd_max.max(end);
        if !pick.probe && self.rtx_at.is_none() && seq_len > 0 {
            self.rtx_at = Some(self.rtt.deadline(now));
            self.persist = Persist::default();
        }
        if seq_len > 0 {
            self.last_send = now;
        } else {
            self.stats_mut().pure_acks_sent += 1;
        }
        let mut repr = self.base_repr(now);
        self.note_ack_sent();
        repr.seq_number = pick.seq;
        repr.control = if fin {
            TcpControl::Fin
        } else {
            TcpControl::None
        };
        repr.psh = len > 0 && offset + len == self.tx.len();
        repr.payload = self.tx.contiguous_at(offset, len);
        Some(repr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CompactSegment;
    use core::net::Ipv4Addr;

    fn established(queued: usize) -> Connection {
        established_with(&TcpConfig::default(), queued)
    }

    fn established_with(cfg: &TcpConfig, queued: usize) -> Connection {
        let tuple = FourTuple {
            local_addr: Ipv4Addr::new(10, 0, 0, 1),
            remote_addr: Ipv4Addr::new(10, 0, 0, 2),
            local_port: 40000,
            remote_port: 80,
        };
        let iss = SeqNumber(1000);
        let now = Instant::from_millis(1);
        let mut c = Connection::connect(cfg, tuple, iss, 0, now);
        let mut counters = Counters::default();
        assert!(c.poll_transmit(now, &mut counters).is_some(), "the SYN");
        let syn_ack = TcpRepr {
            src_port: 80,
            dst_port: 40000,
            control: TcpControl::Syn,
            seq_number: SeqNumber(5000),
            ack_number: Some(iss + 1),
            window_len: 65535,
            max_seg_size: Some(1460),
            ..TcpRepr::default()
        };
        c.handle_segment(now, &syn_ack, &mut counters);
        assert_eq!(c.state, State::Established);
        if queued > 0 {
            assert_eq!(c.send(&vec![7u8; queued]), Ok(queued));
        }
        c
    }

    /// `poll_bare_fin` answers exactly when `poll_transmit` would send a bare FIN without
    /// SACK blocks, with the same segment (as `BareRepr::repr`) and the same connection and
    /// counters after; otherwise it answers None and changes nothing. Over states, send
    /// queue positions (FIN queued or not, SND.NXT and SND.MAX below, at or past the FIN,
    /// SND.UNA), timestamps on and off, out-of-order data with SACK, the RTO and RTT probe
    /// armed or not, an ACK or keepalive probe owed, and one at a time: a probe forced, a
    /// RST pending, a retransmission owed, SACK recovery.
    #[test]
    fn bare_fin_matches_poll_transmit() {
        let now = Instant::from_millis(700);
        let (mut checked, mut bare_fins) = (0, 0);
        let states = [
            State::Established,
            State::CloseWait,
            State::FinWait1,
            State::FinWait2,
            State::Closing,
            State::LastAck,
            State::TimeWait,
            State::SynReceived,
        ];
        // Small buffers: the connections are compared through `Debug`, buffers included.
        let cfg = TcpConfig {
            send_buffer: 256,
            recv_buffer: 512,
            ..TcpConfig::default()
        };
        for queued in [0usize, 100] {
            let base = established_with(&cfg, queued);
            let start = base.tx_seq;
            for ts in [false, true] {
                for ooo in [false, true] {
                    let mut b = base.clone();
                    if ts {
                        b.ts = Some(Timestamps {
                            recent: 0xfffe_0001,
                            recent_at: now,
                            offset: 0x8000_0007,
                        });
                    }
                    if ooo {
                        b.sack_ok = true;
                        assert_eq!(b.rx.write(100, &[9u8; 10]), Ok(0));
                        assert!(b.rx.has_out_of_order());
                    }
                    for state in states {
                        for fin_queued in [false, true] {
                            let top = queued + fin_queued as usize;
                            for (nxt, max) in [
                                (queued / 2, queued),
                                (queued, queued),
                                (queued, top),
                                (top, top),
                                (queued / 2, top),
                            ] {
                                for una in [0, nxt] {
                                    for bits in 0u32..16 {
                                        for odd in 0..5 {
                                            let mut c = b.clone();
                                            c.state = state;
                                            c.fin_queued = fin_queued;
                                            c.snd_una = start + una;
                                            c.snd_nxt = start + nxt;
                                            c.snd_max = start + max;
                                            c.rtx_at = (bits & 1 != 0).then_some(now);
                                            c.rtt_probe = (bits & 2 != 0)
                                                .then_some((start, Instant::from_millis(3)));
                                            c.ack_pending = bits & 4 != 0;
                                            c.keepalive_probe = bits & 8 != 0;
                                            match odd {
                                                1 => c.force_probe = true,
                                                2 => {
                                                    c.rst_pending = Some(PendingRst {
                                                        seq: start,
                                                        ack: None,
                                                    })
                                                }
                                                3 => c.rtx_next = Some(start + una),
                                                4 => c.recovery = Recovery::Sack,
                                                _ => {}
                                            }
                                            let before = format!("{c:?}");
                                            let mut full = c.clone();
                                            let mut counters = Counters::default();
                                            let slow = full.poll_transmit(now, &mut counters);
                                            // A bare FIN without SACK blocks.
                                            let slow_bare = slow.is_some_and(|r| {
                                                r.control == TcpControl::Fin
                                                    && r.payload.is_empty()
                                                    && r.sack_ranges == [None; 3]
                                            });
                                            let slow = format!("{slow:?}");
                                            let fast = c.poll_bare_fin(now);
                                            // Taken in exactly these cases.
                                            let expected = odd == 0
                                                && fin_queued
                                                && nxt == queued
                                                && max == queued
                                                && !ooo
                                                && !matches!(
                                                    state,
                                                    State::TimeWait | State::SynReceived
                                                );
                                            assert_eq!(fast.is_some(), expected, "{before}");
                                            match fast {
                                                Some(bare) => {
                                                    assert_eq!(
                                                        format!("{:?}", Some(bare.repr())),
                                                        slow
                                                    );
                                                    assert_eq!(
                                                        format!("{c:?}"),
                                                        format!("{full:?}")
                                                    );
                                                    assert_eq!(
                                                        format!("{counters:?}"),
                                                        format!("{:?}", Counters::default())
                                                    );
                                                    // The last segment: nothing follows.
                                                    assert!(!c.wants_transmit());
                                                    bare_fins += 1;
                                                }
                                                None => {
                                                    assert_eq!(format!("{c:?}"), before);
                                                    // The full path may still send a bare
                                                    // FIN: as a probe, or again after an RTO.
                                                    assert!(
                                                        !slow_bare
                                                            || odd != 0
                                                            || nxt != queued
                                                            || max != queued,
                                                        "{before}\n{slow}"
                                                    );
                                                }
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
        assert_eq!(checked, 2 * 2 * 2 * 8 * 2 * 5 * 2 * 16 * 5);
        assert!(bare_fins > 500, "{bare_fins}");
    }

    /// The shortcut at the top of `pick_from_snd_nxt` gives the full path's pick and leaves
    /// the same connection state, over sender states around "nothing left but the FIN".
    #[test]
    fn pick_from_snd_nxt_shortcut_matches_the_full_path() {
        let now = Instant::from_millis(500);
        let mut checked = 0;
        for queued in [0usize, 1, 100, 3000] {
            let base = established(queued);
            let start = base.tx_seq;
            for fin_queued in [false, true] {
                let top = queued + fin_queued as usize;
                for nxt in [0, queued / 2, queued, top] {
                    for max in [nxt, queued, top] {
                        if max < nxt {
                            continue;
                        }
                        for force_probe in [false, true] {
                            for wnd in [0u32, 1, 65535] {
                                for cwnd_room in [0usize, 1, 1 << 20] {
                                    for rtx in [false, true] {
                                        let mut c = base.clone();
                                        c.fin_queued = fin_queued;
                                        c.snd_nxt = start + nxt;
                                        c.snd_max = start + max;
                                        c.force_probe = force_probe;
                                        c.snd_wnd = wnd;
                                        c.rtx_at = rtx.then_some(now);
                                        let mut full = c.clone();
                                        let mss = c.eff_mss();
                                        let a = c.pick_from_snd_nxt(now, mss, cwnd_room);
                                        let b = full.pick_from_snd_nxt_full(now, mss, cwnd_room);
                                        assert_eq!(format!("{a:?}"), format!("{b:?}"));
                                        assert_eq!(format!("{c:?}"), format!("{full:?}"));
                                        checked += 1;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(checked > 1000);
    }
}
