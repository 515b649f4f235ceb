//! Ingress: frame parse and routing. One frame goes through [`Stack::process_frame`]: parse,
//! VLAN and MAC check, one flow-table lookup (`Route`), then its connection, SYN-RECEIVED entry
//! (`passive.rs`), or, on a miss for one of our addresses, the TIME-WAIT table and then the
//! listener. Pure SYNs that miss while the TIME-WAIT table has entries are parked and
//! drained at one point (see [`Stack::drain_pending_syns`]).

use super::{Owner, PendingSyn, SM_DIRTY, SM_MAC, Stack, StackFamily};
use crate::tcp::FourTuple;
use crate::tcp::flow_table::FlowHash;
use crate::tcp::time_wait::{self, TimeWaitEntry, TwHash};
use crate::time::Instant;
use crate::wire::frame::vid_of;
use crate::wire::{EthernetAddress, TcpControl, TcpFrame, TcpRepr, TcpTimestamp, VlanId};

/// Where a segment goes, after one flow-table lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A live connection's slot.
    Conn(u32),
    /// A compact SYN-RECEIVED entry.
    SynRecv(u32),
    /// No flow: the TIME-WAIT table, then the listeners (the address is one of ours).
    Miss,
}

/// What ingress does with one parsed TCP frame, decided before it touches any state but
/// counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Not for us (counted).
    Dropped,
    /// A pure SYN that missed the flow table while the TIME-WAIT table has entries: parked,
    /// with its flow-table hash.
    Park(FlowHash),
    /// A segment for its route, with its tuple's flow-table hash (reused if it inserts or
    /// hands over the flow entry).
    Deliver(Route, FlowHash),
}

/// A parked SYN's segment: the pure SYN (no ACK, no payload) as parsed, kept whole so that
/// its drain hands it on as it is (rebuilding it from a compact form cost more than the
/// larger copy). Only the payload's borrow of the frame is dropped: it is empty.
#[inline]
fn parked_segment(seg: &TcpRepr) -> TcpRepr<'static> {
    debug_assert!(seg.control == TcpControl::Syn && seg.ack_number.is_none());
    debug_assert!(seg.payload.is_empty());
    TcpRepr {
        src_port: seg.src_port,
        dst_port: seg.dst_port,
        control: TcpControl::Syn,
        psh: seg.psh,
        seq_number: seg.seq_number,
        ack_number: None,
        window_len: seg.window_len,
        window_scale: seg.window_scale,
        max_seg_size: seg.max_seg_size,
        sack_permitted: seg.sack_permitted,
        // Meaningless on a SYN (RFC 2018 §3: only SACK-permitted is exchanged on SYNs);
        // nothing on the passive side reads them.
        sack_ranges: [None; 3],
        timestamp: seg.timestamp,
        payload: &[],
    }
}

/// Whether `mac` is the broadcast address; out of line (see `classify`).
#[cold]
#[inline(never)]
fn is_broadcast_cold(mac: &EthernetAddress) -> bool {
    mac.is_broadcast()
}

/// `a != b` for two MACs, as a 4-byte and a 2-byte word xor-ed and or-ed into one test:
/// each word of one side is compared straight from memory (the derived `!=` assembled both
/// sides into 48-bit values first, three instructions more per frame).
#[inline(always)]
fn mac_differs(a: &EthernetAddress, b: &EthernetAddress) -> bool {
    let (a, b) = (&a.0, &b.0);
    let high =
        u32::from_ne_bytes([a[0], a[1], a[2], a[3]]) ^ u32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let low = u16::from_ne_bytes([a[4], a[5]]) ^ u16::from_ne_bytes([b[4], b[5]]);
    (high | u32::from(low)) != 0
}

/// A received segment's 4-tuple, our side local.
#[inline]
fn tuple_of<A: StackFamily>(f: &TcpFrame<'_, A::IpRepr>) -> FourTuple<A> {
    let (src, dst) = A::ip_addrs(&f.ip);
    FourTuple {
        local_addr: dst,
        remote_addr: src,
        local_port: f.tcp.dst_port,
        remote_port: f.tcp.src_port,
    }
}

impl<A: StackFamily> Stack<A> {
    #[inline]
    pub(super) fn is_local(&self, ip: A) -> bool {
        // A server stack usually has one address: one compare, not a binary search.
        match self.local_ips.as_slice() {
            [only] => *only == ip,
            ips => ips.binary_search(&ip).is_ok(),
        }
    }

    /// Ingress of one frame: classify, then act. This is the one place parked SYNs are
    /// drained during a batch (the end of the batch, in `receive`, is the other): before
    /// every frame but a dropped one, a live connection's segment, or another parked SYN
    /// (unless the parking is full).
    pub(super) fn process_frame(&mut self, now: Instant, frame: &[u8]) {
        self.counters.rx_frames += 1;
        // The parsed frame stays here (parsed in place into `slot`, no placeholder frame); the
        // steps below borrow it.
        let mut slot = None;
        match A::parse_frame(frame, &mut slot) {
            Ok(f) => {
                let f = &*f;
                crate::trace::segment!(src = %A::ip_addrs(&f.ip).0, sport = f.tcp.src_port, dport = f.tcp.dst_port, seq = f.tcp.seq_number.0, len = f.tcp.payload.len(), "rx segment");
                match self.classify(f) {
                    Step::Park(hash) => {
                        if self.pending_syns.len() == self.pending_syns.capacity() {
                            self.drain_pending_syns(now);
                        }
                        self.park(f, hash);
                    }
                    Step::Deliver(route, hash) => {
                        if !matches!(route, Route::Conn(_)) {
                            self.drain_pending_syns(now);
                        }
                        self.deliver(now, tuple_of(f), &f.tcp, f.eth.src_addr, route, hash)
                    }
                    Step::Dropped => {}
                }
            }
            Err(crate::wire::Error::Unsupported) => {
                self.drain_pending_syns(now);
                A::process_other(self, now, frame);
            }
            Err(_e) => {
                self.counters.rx_dropped_malformed += 1;
                crate::trace::debug!(reason = %_e, len = frame.len(), "drop: malformed frame");
            }
        }
    }

    /// Parks a pure SYN (the parking has room: `process_frame` drained it otherwise). Inline:
    /// out of line it cost a call and six register saves per parked SYN (18 per lifecycle
    /// with a full TIME-WAIT table), and inline it costs nothing measurable without one.
    #[inline]
    fn park(&mut self, f: &TcpFrame<'_, A::IpRepr>, hash: FlowHash) {
        self.pending_syns.push(PendingSyn {
            tuple: tuple_of(f),
            seg: parked_segment(&f.tcp),
            peer_mac: f.eth.src_addr,
            hash,
        });
    }

    /// The step for a parsed TCP frame.
    #[inline]
    fn classify(&mut self, f: &TcpFrame<'_, A::IpRepr>) -> Step {
        let seg = &f.tcp;
        let tuple = tuple_of(f);
        // Our VLAN (VID 0 when none, which untagged and priority-tagged frames carry).
        if vid_of(f.vlan) != self.cfg.vlan.map_or(0, VlanId::get) {
            self.counters.rx_vlan_mismatch += 1;
            return Step::Dropped;
        }
        // The destination address is checked only when the flow table misses (below): a
        // tuple in the table always has one of our addresses.
        // Our MAC first; the broadcast test only for a frame that is not (out of line, so
        // that it is not computed for every frame alongside).
        if mac_differs(&f.eth.dst_addr, &self.cfg.mac) && !is_broadcast_cold(&f.eth.dst_addr) {
            self.counters.rx_not_ours += 1;
            return Step::Dropped;
        }
        let hash = self.flows.hash_of(&tuple);
        let route = self.route(&tuple, hash);
        if route == Route::Miss {
            if !self.is_local(tuple.local_addr) {
                self.counters.rx_not_ours += 1;
                return Step::Dropped;
            }
            // With the TIME-WAIT table empty there is nothing to look up (and so, as SYNs are
            // parked only while it has entries, normally nothing parked).
            if !self.time_wait.is_empty()
                && seg.control == TcpControl::Syn
                && seg.ack_number.is_none()
                && seg.payload.is_empty()
            {
                return Step::Park(hash);
            }
        }
        Step::Deliver(route, hash)
    }

    /// The flow-table lookup.
    #[inline]
    fn route(&self, tuple: &FourTuple<A>, hash: FlowHash) -> Route {
        match self.flows.get_hashed(tuple, hash).map(Owner::decode) {
            Some(Owner::Slot(index)) => Route::Conn(index),
            Some(Owner::SynRecv(index)) => Route::SynRecv(index),
            None => Route::Miss,
        }
    }

    /// Hands a routed segment to its connection, SYN-RECEIVED entry, or TIME-WAIT entry and
    /// listener. Neither parks nor drains, so it is never re-entered.
    #[inline(always)]
    fn deliver(
        &mut self,
        now: Instant,
        tuple: FourTuple<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        route: Route,
        hash: FlowHash,
    ) {
        match route {
            Route::SynRecv(index) => self.segment_for_syn_recv(now, index, seg, peer_mac, hash),
            Route::Conn(index) => {
                // A flow entry names a live slot (`settle` removes it when it vacates the
                // block): no vacancy test.
                // The slot's metadata indexed before the segment's call (its reference kept
                // across it), not bounds-checked again after it.
                let meta = &mut self.meta[index as usize];
                let live = match self.conns[index as usize].get_live_mut() {
                    Some(c) => {
                        c.handle_segment(now, seg, &mut self.counters);
                        true
                    }
                    None => false,
                };
                // The peer's MAC (first segment only) and `mark_dirty`, in one visit of the
                // slot's metadata.
                let was = meta.flags;
                let mut set = SM_DIRTY;
                if live && was & SM_MAC == 0 {
                    meta.peer_mac = peer_mac;
                    set |= SM_MAC;
                }
                meta.flags = was | set;
                if was & SM_DIRTY == 0 {
                    self.dirty_flags |= was;
                    self.dirty.push(index);
                }
            }
            // With the TIME-WAIT table empty, straight to the listener (the tuple is then
            // built once, for the call: measured, the joined path spilled it and copied it
            // again).
            Route::Miss if self.time_wait.is_empty() => {
                self.segment_for_listener(now, tuple, seg, peer_mac, hash)
            }
            Route::Miss => {
                // One probe of the TIME-WAIT table (RFC 6191 for a SYN; a retransmitted FIN
                // or a stray segment for a closed connection otherwise).
                let e = self
                    .time_wait
                    .get_hashed(&tuple, TwHash::from_flow(hash))
                    .copied();
                self.deliver_miss(now, tuple, seg, peer_mac, hash, e);
            }
        }
    }

    /// A segment that missed the flow table, with its TIME-WAIT entry if there is one: the
    /// entry first, then (if it gave way, or there was none) the listener.
    #[inline(always)]
    fn deliver_miss(
        &mut self,
        now: Instant,
        tuple: FourTuple<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
        hash: FlowHash,
        time_wait: Option<TimeWaitEntry<A>>,
    ) {
        if let Some(e) = time_wait
            && self.segment_for_time_wait(now, &tuple, e, seg, peer_mac)
        {
            return;
        }
        self.segment_for_listener(now, tuple, seg, peer_mac, hash);
    }

    /// Processes the parked SYNs, in arrival order, as if each had been processed when it
    /// arrived.
    ///
    /// Why they wait: each new SYN must probe the TIME-WAIT table (RFC 6191), and with
    /// millions of entries that probe is a cache miss, often a TLB miss too, that the SYN's
    /// processing then waits for. Loading the buckets of a whole batch first, in a tight loop,
    /// keeps many of those misses in flight at once.
    ///
    /// Where: `process_frame` (before any frame that is not a live connection's segment,
    /// and when the parking is full) and `receive` (end of the batch), nowhere else.
    ///
    /// Why the result is the same: parking only reorders a SYN after segments that hit live
    /// connections (the only ones processed while SYNs wait). Those touch nothing a SYN reads
    /// or writes (flow entries, SYN queue, accept queue, TIME-WAIT table, stateless replies;
    /// slots are freed only after transmission). Every other segment, every non-TCP frame and
    /// the end of the receive batch drain the parked SYNs first, and each parked SYN is routed
    /// again from the flow table when an earlier SYN of the same drain may have made its
    /// entry (so a duplicate SYN in the same batch finds the entry the first one made).
    ///
    /// What is reused: a parked SYN missed the flow table when it was parked, and until the
    /// drain only live connections' segments ran, which neither add nor remove flow entries.
    /// In the drain, a SYN adds (at most) its own tuple's entry. So a parked SYN is looked up
    /// again only when a 64-bit filter of the flow hashes delivered earlier in this drain has
    /// its hash's bit; otherwise it is still a miss, and its parking-time flow hash is used
    /// as it is, for the TIME-WAIT table too (built with the flow table's seed, so the same
    /// hash: `TwHash::from_flow`).
    #[inline]
    pub(super) fn drain_pending_syns(&mut self, now: Instant) {
        if !self.pending_syns.is_empty() {
            self.route_pending_syns(now);
        }
    }

    #[inline(never)]
    fn route_pending_syns(&mut self, now: Instant) {
        const _: () = assert!(super::PENDING_SYNS <= 64);
        let mut pending = core::mem::take(&mut self.pending_syns);
        self.time_wait
            .prefetch(pending.iter().map(|p| TwHash::from_flow(p.hash)));
        // Which parked SYNs' tuples may be in TIME-WAIT, one bit each: a walk of the tags
        // alone (their lines were just loaded), in one loop that keeps the table's fields in
        // registers. Almost every new SYN's walk ends at an empty bucket: its tuple is not in
        // the table, and nothing in this drain can add it (entries are inserted only by
        // `settle` and `insert_time_wait`; a SYN at most removes its own tuple's, RFC 6191),
        // so its delivery skips the probe. The others probe the table when delivered, as
        // before.
        let mut may_hold = 0u64;
        for (k, p) in pending.iter().enumerate() {
            if self.time_wait.may_hold(TwHash::from_flow(p.hash)) {
                may_hold |= 1 << k;
            }
        }
        #[cfg(debug_assertions)]
        let inserts = self.time_wait.stats().inserts;
        let mut delivered = 0u64;
        // By reference: each parked SYN is read where it lies, not moved out first.
        for p in &pending {
            let bit = 1u64 << (p.hash.get() & 63);
            let route = if delivered & bit != 0 {
                self.route(&p.tuple, p.hash)
            } else {
                debug_assert_eq!(self.route(&p.tuple, p.hash), Route::Miss);
                Route::Miss
            };
            delivered |= bit;
            let probe = may_hold & 1 != 0;
            may_hold >>= 1;
            if route == Route::Miss {
                #[cfg(debug_assertions)]
                debug_assert_eq!(self.time_wait.stats().inserts, inserts);
                let e = if probe {
                    self.time_wait
                        .get_hashed(&p.tuple, TwHash::from_flow(p.hash))
                        .copied()
                } else {
                    debug_assert!(self.time_wait.get(&p.tuple).is_none());
                    None
                };
                self.deliver_miss(now, p.tuple, &p.seg, p.peer_mac, p.hash, e);
            } else {
                self.deliver(now, p.tuple, &p.seg, p.peer_mac, route, p.hash);
            }
        }
        pending.clear();
        self.pending_syns = pending;
    }

    /// A segment for a 4-tuple in TIME-WAIT (RFC 9293 §3.10.7.4, TIME-WAIT; RFC 6191).
    /// Returns false when the TIME-WAIT entry gave way to a new SYN (which the listener then
    /// handles).
    pub(super) fn segment_for_time_wait(
        &mut self,
        now: Instant,
        tuple: &FourTuple<A>,
        e: TimeWaitEntry<A>,
        seg: &TcpRepr,
        peer_mac: EthernetAddress,
    ) -> bool {
        // RFC 7323 §5.3 R1: a segment whose TSval is older than TS.Recent is an old duplicate.
        // Like Linux (`tcp_timewait_state_process`), it gets an ACK; unlike Linux, it does not
        // restart the 2MSL timer, so replayed old segments cannot keep an entry alive. A RST
        // is never dropped by PAWS; a SYN is judged by RFC 6191 below (which compares the
        // timestamps itself).
        let stale = match (e.ts_recent(), seg.timestamp) {
            (Some(recent), Some(ts)) => (ts.tsval.wrapping_sub(recent) as i32) < 0,
            _ => false,
        };
        let syn = seg.control == TcpControl::Syn && seg.ack_number.is_none();
        if stale && !syn && seg.control != TcpControl::Rst {
            self.counters.paws_drops += 1;
            self.time_wait_ack(now, tuple, &e, peer_mac);
            return true;
        }
        match seg.control {
            TcpControl::Rst => {
                // RFC 9293: a RST in TIME-WAIT closes (deletes) the connection.
                if seg.seq_number == e.rcv_nxt() {
                    self.counters.resets_received += 1;
                    self.time_wait.remove(tuple);
                }
                return true;
            }
            TcpControl::Syn if seg.ack_number.is_none() => {
                if time_wait::syn_may_reuse(&e, seg.seq_number, seg.timestamp) {
                    self.time_wait.remove(tuple);
                    self.counters.time_wait_reuses += 1;
                    return false;
                }
            }
            TcpControl::Fin => {
                // A retransmitted FIN: re-ACK and restart the 2MSL timer.
                if seg.seq_number + seg.payload.len() + 1 == e.rcv_nxt() {
                    self.time_wait.restart(tuple, now + 2 * self.cfg.tcp.msl);
                    self.counters.time_wait_fin_acks += 1;
                }
            }
            _ => {
                // A duplicate pure ACK needs no answer; anything else gets the ACK.
                if seg.payload.is_empty() && seg.seq_number == e.rcv_nxt() {
                    return true;
                }
            }
        }
        self.time_wait_ack(now, tuple, &e, peer_mac);
        true
    }

    /// The ACK a TIME-WAIT entry answers with: `<SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>`.
    fn time_wait_ack(
        &mut self,
        now: Instant,
        tuple: &FourTuple<A>,
        e: &TimeWaitEntry<A>,
        peer_mac: EthernetAddress,
    ) {
        let repr = TcpRepr {
            src_port: tuple.local_port,
            dst_port: tuple.remote_port,
            seq_number: e.snd_nxt(),
            ack_number: Some(e.rcv_nxt()),
            window_len: e.rcv_wnd(),
            timestamp: e.ts_recent().map(|recent| TcpTimestamp {
                tsval: self.ts_now(now, tuple),
                tsecr: recent,
            }),
            ..TcpRepr::default()
        };
        self.reply(tuple, peer_mac, repr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `mac_differs` is `!=`: equal MACs, each byte differing alone (in both words), the
    /// broadcast and zero addresses.
    #[test]
    fn mac_differs_is_ne() {
        let base = EthernetAddress([0x02, 0x10, 0x20, 0x30, 0x40, 0x50]);
        let mut macs = vec![base, EthernetAddress([0xff; 6]), EthernetAddress([0; 6])];
        for i in 0..6 {
            for bit in [0x01, 0x80] {
                let mut m = base;
                m.0[i] ^= bit;
                macs.push(m);
            }
        }
        for a in &macs {
            for b in &macs {
                assert_eq!(mac_differs(a, b), a != b, "{a} vs {b}");
            }
        }
    }
}
