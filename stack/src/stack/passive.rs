//! The passive open: listeners, the SYN queue of compact [`SynRecvEntry`]s (SYN-ACK, retries,
//! removal), SYN cookies when the queue is full (RFC 4987 §3.6), and the final ACK (or cookie
//! ACK) that makes a connection (`Connection::from_handshake`) and queues it for `accept`.

use super::syn_fifo::SynTimer;
use super::{
    AcceptOverflow, Control, Owner, SR_LIVE, Stack, StackFamily, SynCookieMode, SynRecvEntry,
};
use crate::tcp::connection::{CompactOpen, PassiveOpen};
use crate::tcp::flow_table::FlowHash;
use crate::tcp::syncookie::{self, CookieOptions};
use crate::tcp::{ConnTemplate, Connection, FourTuple};
use crate::time::Instant;
use crate::wire::{EthernetAddress, SeqNumber, SynAckRepr, TcpControl, TcpRepr, TcpTimestamp};

impl<A: StackFamily> Stack<A> {
    /// The listener for a segment to `addr`:`port`: one bound to that address, else one
    /// bound to the wildcard address.
    #[inline]
    pub(super) fn find_listener(&self, addr: A, port: u16) -> Option<usize> {
        // One listener (the common server): one test, the same answer as the two scans.
        if let [l] = self.listeners.as_slice() {
            return (l.port == port && (l.addr == addr || l.addr.is_unspecified_addr()))
                .then_some(0);
        }
        self.listeners
            .iter()
            .position(|l| l.port == port && l.addr == addr)
            .or_else(|| {
                self.listeners
                    .iter()
                    .position(|l| l.port == port && l.addr.is_unspecified_addr())
            })
    }

    pub(super) fn segment_for_listener(
        &mut self,
        now: Instant,
        tuple: FourTuple<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        hash: FlowHash,
    ) {
        let Some(li) = self.find_listener(tuple.local_addr, tuple.local_port) else {
            crate::trace::debug!(conn = %tuple, "drop: no listener (RST sent)");
            self.listener_reset(&tuple, peer_mac, seg);
            return;
        };
        match (seg.control, seg.ack_number) {
            (TcpControl::Rst, _) => {}
            (TcpControl::Syn, None) => self.listener_syn(now, li, tuple, seg, peer_mac, hash),
            (TcpControl::Syn, Some(_)) => self.listener_reset(&tuple, peer_mac, seg),
            (_, Some(_)) => self.listener_cookie_ack(now, li, tuple, seg, peer_mac, hash),
            (_, None) => {} // RFC 9293 §3.10.7.2: anything else without ACK is dropped
        }
    }

    /// [`Stack::reset`] out of line: the listener's resets are rare, and inlined each
    /// brought its own copy of the control queue's push into `segment_for_listener`.
    #[inline(never)]
    fn listener_reset(&mut self, tuple: &FourTuple<A>, peer_mac: EthernetAddress, seg: &TcpRepr) {
        self.reset(tuple, peer_mac, seg);
    }

    pub(super) fn syn_options(&self, seg: &TcpRepr) -> CookieOptions {
        CookieOptions {
            wscale: if self.cfg.tcp.window_scaling {
                seg.window_scale
            } else {
                None
            },
            sack_permitted: seg.sack_permitted && self.cfg.tcp.sack,
            timestamps: seg.timestamp.is_some() && self.cfg.tcp.timestamps,
        }
    }

    pub(super) fn listener_syn(
        &mut self,
        now: Instant,
        li: usize,
        tuple: FourTuple<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        hash: FlowHash,
    ) {
        self.counters.syns_received += 1;
        let l = &mut self.listeners[li];
        let queue_full = l.syn_queue_len >= l.syn_backlog
            || (self.free_syn_recv.is_empty() && self.syn_recv.len() >= self.cfg.max_syn_recv);
        // The common SYN: room in the queue, and no cookie now nor a change of the cookie mode
        // to note (the decision below gives the same answer): counted in the listener's queue
        // through the reference at hand, not indexed again after the decision's stores.
        let common = !queue_full
            && match self.cfg.syn_cookies {
                SynCookieMode::Always => false,
                SynCookieMode::WhenFull => !l.sending_cookies,
                SynCookieMode::Off => true,
            };
        if common {
            l.syn_queue_len += 1;
        } else {
            let use_cookie = match self.cfg.syn_cookies {
                SynCookieMode::Always => true,
                SynCookieMode::WhenFull => {
                    self.note_cookie_mode(li, queue_full);
                    queue_full
                }
                SynCookieMode::Off => {
                    if queue_full {
                        self.counters.syn_queue_overflows += 1;
                        crate::trace::debug!(conn = %tuple, "drop: SYN queue full");
                        return;
                    }
                    false
                }
            };
            if use_cookie {
                self.listener_syn_cookie(now, tuple, seg, peer_mac);
                return;
            }
            // Counted here (taken back on the two failures below).
            self.listeners[li].syn_queue_len += 1;
        }
        // A compact SYN-RECEIVED entry.
        let index = match self.free_syn_recv.pop() {
            Some(i) => i,
            None => {
                self.syn_recv.push(SynRecvEntry {
                    open: CompactOpen {
                        tuple,
                        iss: SeqNumber(0),
                        ts_recent: 0,
                        ts_offset: 0,
                        peer_mss: 0,
                        peer_wscale: CompactOpen::<A>::NO_WSCALE,
                        flags: 0,
                    },
                    irs: SeqNumber(0),
                    timer: SynTimer::None,
                    peer_mac,
                    listener: 0,
                    flags: 0,
                    retries: 0,
                });
                self.syn_recv.len() as u32 - 1
            }
        };
        if self
            .flows
            .insert_hashed(tuple, Owner::SynRecv(index).encode(), hash)
            .is_err()
        {
            self.free_syn_recv.push(index);
            self.listeners[li].syn_queue_len -= 1;
            self.counters.conn_table_full += 1;
            return;
        }
        let (iss, ts_offset) = self.take_isn(now, &tuple);
        let rto = self.cfg.tcp.initial_rto;
        // The first deadline (`now + rto`) goes to the FIFO (`syn_fifo.rs`), the wheel when
        // that is full.
        let timer = match self.syn_fifo.push(now, index) {
            Some(t) => t,
            None => match self
                .wheel
                .schedule(now + rto, Owner::SynRecv(index).encode())
            {
                Ok(t) => SynTimer::Wheel(t),
                Err(_) => {
                    // Cannot happen (the wheel has a node per entry), but stays defined and
                    // counted.
                    self.flows.remove(&tuple);
                    self.free_syn_recv.push(index);
                    self.listeners[li].syn_queue_len -= 1;
                    self.counters.conn_table_full += 1;
                    return;
                }
            },
        };
        // The SYN's options read here, after the calls above: nothing derived from them
        // stays live across those calls.
        let opts = self.syn_options(seg);
        let peer_mss = seg.max_seg_size.unwrap_or(536);
        let flags = if opts.sack_permitted {
            CompactOpen::<A>::SACK
        } else {
            0
        } | if opts.timestamps {
            CompactOpen::<A>::TS
        } else {
            0
        };
        self.syn_recv[index as usize] = SynRecvEntry {
            open: CompactOpen {
                tuple,
                iss,
                ts_recent: seg.timestamp.map_or(0, |t| t.tsval),
                ts_offset,
                peer_mss,
                peer_wscale: opts.wscale.unwrap_or(CompactOpen::<A>::NO_WSCALE),
                flags,
            },
            irs: seg.seq_number,
            timer,
            peer_mac,
            listener: li as u16,
            flags: SR_LIVE,
            retries: 0,
        };
        self.counters.syn_recv += 1;
        self.send_synack(now, index);
    }

    /// A SYN answered with a SYN cookie (RFC 4987 §3.6): no state kept. Out of line: the
    /// cookie path stays out of the common SYN's code (and its queue push out of line too).
    #[inline(never)]
    fn listener_syn_cookie(
        &mut self,
        now: Instant,
        tuple: FourTuple<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) {
        let opts = self.syn_options(seg);
        let peer_mss = seg.max_seg_size.unwrap_or(536);
        let cookie = self
            .cookies
            .generate(now, &tuple, seg.seq_number, peer_mss, opts);
        let mss = syncookie::MSS_TABLE
            .iter()
            .rev()
            .find(|&&m| m <= peer_mss)
            .copied()
            .unwrap_or(syncookie::MSS_TABLE[0]);
        let tsval = cookie
            .tsval_low_bits
            .map(|bits| syncookie::encode_tsval(self.ts_now(now, &tuple), bits));
        // The same compact entry and emitter as a SYN-RECEIVED entry's SYN-ACK.
        let repr = self.synack(
            &tuple,
            cookie.isn,
            seg.seq_number,
            opts,
            tsval.zip(seg.timestamp.map(|t| t.tsval)),
            mss.min(self.cfg.tcp.mss),
        );
        self.counters.syn_cookies_sent += 1;
        self.counters.synacks_sent += 1;
        self.push_control(Control::SynAck {
            dst_mac: peer_mac,
            src_ip: tuple.local_addr,
            dst_ip: tuple.remote_addr,
            repr,
        });
    }

    pub(super) fn entry_options(e: &SynRecvEntry<A>) -> CookieOptions {
        CookieOptions {
            wscale: e.open.wscale(),
            sack_permitted: e.open.sack_permitted(),
            timestamps: e.open.timestamps(),
        }
    }

    /// Queues the SYN-ACK of entry `index`: the first one, and each retransmission (its
    /// timer, or a retransmitted SYN).
    pub(super) fn send_synack(&mut self, now: Instant, index: u32) {
        // The entry read in place, not copied out whole.
        let c = self.synack_control(now, &self.syn_recv[index as usize]);
        self.counters.synacks_sent += 1;
        self.push_control(c);
    }

    /// The SYN-ACK of a SYN-RECEIVED entry, queued compact (`Control::SynAck`, not a
    /// `TcpRepr`): the same segment for the first one and every retransmission.
    #[inline(always)]
    fn synack_control(&self, now: Instant, e: &SynRecvEntry<A>) -> Control<A> {
        let opts = Self::entry_options(e);
        let ts = opts.timestamps.then(|| {
            let tsval = (now.total_millis() as u32).wrapping_add(e.open.ts_offset);
            (tsval, e.open.ts_recent)
        });
        let o = &e.open;
        let repr = self.synack(&o.tuple, o.iss, e.irs, opts, ts, self.cfg.tcp.mss);
        Control::SynAck {
            dst_mac: e.peer_mac,
            src_ip: o.tuple.local_addr,
            dst_ip: o.tuple.remote_addr,
            repr,
        }
    }

    /// A SYN-ACK for a SYN with sequence number `irs` (RFC 9293 §3.10.7.2), in the compact
    /// form the control queue holds (`Control::SynAck`).
    #[inline]
    fn synack(
        &self,
        tuple: &FourTuple<A>,
        iss: SeqNumber,
        irs: SeqNumber,
        opts: CookieOptions,
        ts: Option<(u32, u32)>,
        mss: u16,
    ) -> SynAckRepr {
        // Offered only in reply to an offer (RFC 7323 §2.2), by the rule our SYNs use.
        // (`cfg.tcp.offered_wscale()`, computed once: the stack's configuration is fixed.)
        let our_wscale = opts.wscale.and(self.conn_template.offered_wscale());
        SynAckRepr {
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq_number: iss,
            ack_number: irs + 1,
            window_len: self.conn_template.synack_window(),
            max_seg_size: mss,
            window_scale: our_wscale,
            sack_permitted: opts.sack_permitted,
            timestamp: ts.map(|(tsval, tsecr)| TcpTimestamp { tsval, tsecr }),
        }
    }

    pub(super) fn remove_syn_recv(&mut self, index: u32) {
        self.release_syn_recv(index, false);
    }

    /// Frees a SYN-RECEIVED entry; its flow-table entry too unless `keep_flow` (then the
    /// caller hands it to a connection: `insert_connection` with `flow_held`).
    #[inline(always)]
    fn release_syn_recv(&mut self, index: u32, keep_flow: bool) {
        if let Some(li) = self.release_syn_entry(index, keep_flow) {
            self.listeners[li].syn_queue_len -= 1;
        }
    }

    /// [`Stack::release_syn_recv`] but for the listener's queue count, which the caller takes
    /// back: the entry's listener, or `None` if the entry was not live (nothing done).
    #[inline(always)]
    fn release_syn_entry(&mut self, index: u32, keep_flow: bool) -> Option<usize> {
        let e = &mut self.syn_recv[index as usize];
        if e.flags & SR_LIVE == 0 {
            return None;
        }
        e.flags = 0;
        let (timer, li) = (e.timer, e.listener as usize);
        e.timer = SynTimer::None;
        if !keep_flow {
            let tuple = e.open.tuple;
            self.flows.remove(&tuple);
        }
        match timer {
            SynTimer::Wheel(t) => {
                self.wheel.cancel(t);
            }
            // Its ticket goes stale; `run_syn_fifo` drops it (see `syn_fifo.rs`).
            SynTimer::Fifo(_) | SynTimer::None => {}
        }
        self.free_syn_recv.push(index);
        self.counters.syn_recv -= 1;
        Some(li)
    }

    /// Keeps the FIFO's front ticket live, so that its deadline is exact.
    #[inline]
    fn trim_syn_fifo(&mut self) {
        let entries = &self.syn_recv;
        self.syn_fifo
            .trim(|i, seq| entries[i as usize].timer == SynTimer::Fifo(seq));
    }

    /// Fires the due first deadlines of the FIFO (before the wheel's timers: neither
    /// kind of timeout touches the other's state, and both only queue output), then drops
    /// the stale tickets at the front, those of entries that ingress released since the last
    /// call, so that `poll_at` reads an exact deadline. (Entries whose timer is on the wheel
    /// leave no ticket behind.)
    pub(super) fn run_syn_fifo(&mut self, now: Instant) {
        while let Some((index, seq)) = self.syn_fifo.pop_due(now) {
            let e = &mut self.syn_recv[index as usize];
            if e.timer == SynTimer::Fifo(seq) {
                e.timer = SynTimer::None;
                self.syn_recv_timeout(now, index);
            }
        }
        self.trim_syn_fifo();
    }

    pub(super) fn syn_recv_timeout(&mut self, now: Instant, index: u32) {
        let e = &mut self.syn_recv[index as usize];
        if e.flags & SR_LIVE == 0 {
            return;
        }
        e.retries += 1;
        if e.retries > self.cfg.tcp.synack_retries {
            self.counters.timeouts += 1;
            self.counters.syn_recv_timeouts += 1;
            self.remove_syn_recv(index);
            return;
        }
        // RFC 6298 §5.5 backoff on the SYN-ACK too.
        let rto = self.cfg.tcp.initial_rto * (1u32 << e.retries.min(16));
        let rto = rto.min(self.cfg.tcp.max_rto);
        match self
            .wheel
            .schedule(now + rto, Owner::SynRecv(index).encode())
        {
            Ok(t) => self.syn_recv[index as usize].timer = SynTimer::Wheel(t),
            Err(_) => {
                self.remove_syn_recv(index);
                return;
            }
        }
        self.counters.retransmits += 1;
        self.send_synack(now, index);
    }

    #[inline(always)]
    pub(super) fn segment_for_syn_recv(
        &mut self,
        now: Instant,
        index: u32,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        hash: FlowHash,
    ) {
        // The fields the tests read, not the whole entry copied out: the rest is read in
        // place where it is used (the entry stays as it is until the next SYN reuses it).
        let e = &self.syn_recv[index as usize];
        let (irs, iss, flags, ts_recent, li) = (
            e.irs,
            e.open.iss,
            e.open.flags,
            e.open.ts_recent,
            e.listener as usize,
        );
        match (seg.control, seg.ack_number) {
            (TcpControl::Rst, _) => {
                // RFC 9293 §3.10.7.4 / RFC 5961: only an exact RST removes the entry.
                if seg.seq_number == irs + 1 {
                    self.counters.resets_received += 1;
                    self.remove_syn_recv(index);
                }
            }
            (TcpControl::Syn, None) => {
                if seg.seq_number == irs {
                    // Retransmitted SYN: our SYN-ACK was lost.
                    self.counters.retransmits += 1;
                    self.send_synack(now, index);
                }
            }
            (TcpControl::Syn, Some(_)) => {}
            (_, None) => {}
            (_, Some(ack)) => {
                if flags & CompactOpen::<A>::TS != 0
                    && !self.final_ack_passes_paws(now, index, ts_recent, seg, peer_mac)
                {
                    return;
                }
                if ack != iss + 1 {
                    // <SEQ=SEG.ACK><CTL=RST> (RFC 9293 §3.10.7.4, SYN-RECEIVED).
                    let tuple = self.syn_recv[index as usize].open.tuple;
                    self.reset(&tuple, peer_mac, seg);
                    return;
                }
                if seg.seq_number != irs + 1 {
                    return;
                }
                let l = &mut self.listeners[li];
                if l.accept_queue.len() >= l.accept_backlog {
                    self.counters.accept_queue_overflows += 1;
                    if self.cfg.accept_overflow == AcceptOverflow::Reset {
                        let tuple = self.syn_recv[index as usize].open.tuple;
                        self.remove_syn_recv(index);
                        self.reset(&tuple, peer_mac, seg);
                    }
                    // Drop: the entry stays, its SYN-ACK is retried and the client's ACK
                    // to it may find room.
                    return;
                }
                if self.live_connections >= self.cfg.max_connections {
                    // Like a full accept queue with Drop: keep the entry, retry later.
                    self.counters.conn_table_full += 1;
                    return;
                }
                // The entry's handshake copied whole (a few wide moves) before the release.
                let open = self.syn_recv[index as usize].open;
                // The listener's queue count taken back through the reference at hand (the
                // entry is live: a flow entry names a SYN-RECEIVED entry only while it is),
                // then the entry released; its flow goes straight to the connection
                // (`establish_passive`).
                l.syn_queue_len -= 1;
                let _was_live = self.release_syn_entry(index, true);
                debug_assert_eq!(_was_live, Some(li));
                self.establish_passive::<true>(now, li, seg, peer_mac, &open, hash);
            }
        }
    }

    /// RFC 7323 for the final ACK of a handshake that negotiated timestamps: without TSopt
    /// it is dropped (§3.2); with a TSval older than the SYN's (TS.Recent) it is an old
    /// duplicate, dropped and answered with an ACK (§5.3 R1), as Linux's `tcp_check_req`
    /// does. A RST never comes here. The passing test inline, the rest out of line.
    #[inline(always)]
    pub(super) fn final_ack_passes_paws(
        &mut self,
        now: Instant,
        index: u32,
        ts_recent: u32,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) -> bool {
        match seg.timestamp {
            Some(ts) if (ts.tsval.wrapping_sub(ts_recent) as i32) >= 0 => true,
            _ => {
                self.final_ack_fails_paws(now, index, seg, peer_mac);
                false
            }
        }
    }

    /// [`Stack::final_ack_passes_paws`] said no: counted, and an old duplicate answered.
    #[inline(never)]
    fn final_ack_fails_paws(
        &mut self,
        now: Instant,
        index: u32,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) {
        let e = self.syn_recv[index as usize];
        let Some(ts) = seg.timestamp else {
            self.counters.ts_missing_drops += 1;
            return;
        };
        debug_assert!((ts.tsval.wrapping_sub(e.open.ts_recent) as i32) < 0);
        self.counters.paws_drops += 1;
        let repr = TcpRepr {
            src_port: e.open.tuple.local_port,
            dst_port: e.open.tuple.remote_port,
            seq_number: e.open.iss + 1,
            ack_number: Some(e.irs + 1),
            window_len: self.cfg.tcp.recv_buffer.min(65535) as u16,
            timestamp: Some(TcpTimestamp {
                tsval: (now.total_millis() as u32).wrapping_add(e.open.ts_offset),
                tsecr: e.open.ts_recent,
            }),
            ..TcpRepr::default()
        };
        self.reply(&e.open.tuple, peer_mac, repr);
    }

    /// Records whether listener `li` answers SYNs with cookies now (`WhenFull` mode); a change
    /// is counted and traced, as Linux logs "Possible SYN flooding on port N. Sending
    /// cookies." (RFC 4987 §3.6: cookies only while the queue is full).
    fn note_cookie_mode(&mut self, li: usize, cookies: bool) {
        let l = &mut self.listeners[li];
        if l.sending_cookies == cookies {
            return;
        }
        l.sending_cookies = cookies;
        self.counters.syn_cookie_mode_changes += 1;
        let (port, queued, backlog) = (l.port, l.syn_queue_len, l.syn_backlog);
        if cookies {
            crate::trace::debug!(
                port,
                queued,
                backlog,
                "SYN queue full: sending SYN cookies (possible SYN flood)"
            );
        } else {
            crate::trace::debug!(port, queued, backlog, "SYN queue has room: cookies off");
        }
        let _ = (port, queued, backlog); // used only by the trace build
    }

    /// An ACK for a listener with no SYN-RECEIVED entry: a SYN cookie, or garbage. Out of
    /// line, like the cookie SYN (`listener_syn_cookie`).
    #[inline(never)]
    pub(super) fn listener_cookie_ack(
        &mut self,
        now: Instant,
        li: usize,
        tuple: FourTuple<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        hash: FlowHash,
    ) {
        if self.cfg.syn_cookies == SynCookieMode::Off || seg.control == TcpControl::Syn {
            self.reset(&tuple, peer_mac, seg);
            return;
        }
        let Some(ack) = seg.ack_number else {
            return;
        };
        let client_isn = SeqNumber(seg.seq_number.0.wrapping_sub(1));
        let cookie = SeqNumber(ack.0.wrapping_sub(1));
        let tsecr = seg.timestamp.map(|t| t.tsecr);
        match self
            .cookies
            .validate(now, &tuple, client_isn, cookie, tsecr)
        {
            Err(_) => {
                self.counters.syn_cookies_rejected += 1;
                self.reset(&tuple, peer_mac, seg);
            }
            Ok(res) => {
                if self.listeners[li].accept_queue.len() >= self.listeners[li].accept_backlog {
                    self.counters.accept_queue_overflows += 1;
                    if self.cfg.accept_overflow == AcceptOverflow::Reset {
                        self.reset(&tuple, peer_mac, seg);
                    }
                    return;
                }
                if self.live_connections >= self.cfg.max_connections {
                    // The client retransmits (its data, or its ACK on our next segment):
                    // the cookie stays valid for the rest of its period.
                    self.counters.conn_table_full += 1;
                    return;
                }
                self.counters.syn_cookies_validated += 1;
                // The cookie says whether the SYN negotiated timestamps (its option bits ride
                // in our TSval, which only an ACK with TSopt echoes); the SYN's TSval is gone,
                // so TS.Recent starts at the final ACK's.
                let open = PassiveOpen {
                    tuple,
                    iss: cookie,
                    peer_mss: res.mss,
                    wscale: res.opts.wscale,
                    sack_permitted: res.opts.sack_permitted,
                    ts_recent: seg
                        .timestamp
                        .filter(|_| res.opts.timestamps)
                        .map(|t| t.tsval),
                    ts_offset: self.isn.ts_offset(&tuple),
                };
                let open = CompactOpen::from(&open);
                self.establish_passive::<false>(now, li, seg, peer_mac, &open, hash);
            }
        }
    }

    /// `FLOW_HELD`: the tuple's flow entry exists (handed over by the SYN-RECEIVED entry); a
    /// constant, so that each caller gets its own copy without the test (a cookie ACK's is
    /// out of the common path). `hash`: the tuple's flow-table hash.
    pub(super) fn establish_passive<const FLOW_HELD: bool>(
        &mut self,
        now: Instant,
        li: usize,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        open: &CompactOpen<A>,
        hash: FlowHash,
    ) {
        // A vacant block (the slot's last connection) is rewritten in place; an empty cell
        // gets the block built into it.
        let make = |t: &ConnTemplate, cell: &mut Option<Connection<A>>| match cell {
            Some(c) => c.reinit_passive(t, open, seg, now),
            None => {
                cell.get_or_insert_with(|| {
                    Connection::from_template(t, &open.to_passive(), seg, now)
                });
            }
        };
        let Ok(h) =
            self.insert_connection_hashed(open.tuple, Some(peer_mac), false, FLOW_HELD, hash, make)
        else {
            return;
        };
        self.counters.passive_opens += 1;
        // Data or FIN riding on the final ACK.
        if (!seg.payload.is_empty() || seg.control == TcpControl::Fin)
            && let Some(c) = self.conns[h.index as usize].get_mut()
        {
            c.handle_segment(now, seg, &mut self.counters);
        }
        self.listeners[li].accept_queue.push(h);
    }
}
