//! The connection slab: slots (hot [`SlotMeta`] beside the control blocks), the dirty list,
//! orphans, `settle` (what follows any change to a connection: gauges, events, timer,
//! TIME-WAIT hand-over, freeing), and the one place events reach the application's queue
//! (`Stack::emit_events`).

use super::egress::{Tx, transmit_conn};
use super::family::{HANDLE_V6, Resolve};
use super::{
    ConnCell, ConnHandle, NIL, NO_TIMER, OrphanLink, OrphanList, Owner, SM_ACCEPTED, SM_DIRTY,
    SM_LIVE, SM_MAC, SM_ORPHAN, SM_TIMER_DEFERRED, SM_TIMER_PENDING, SlotMeta, Stack, StackError,
    StackFamily, TIMER_TICK,
};
use crate::link::Link;
use crate::tcp::flow_table::FlowHash;
use crate::tcp::time_wait::TimeWaitInit;
use crate::tcp::{ConnTemplate, Connection, Counters, Event, FourTuple, State};
use crate::time::Instant;
use crate::wire::EthernetAddress;

impl<A: StackFamily> Stack<A> {
    // ---------------------------------------------------------------- events

    /// The one place events reach the application's queue ([`Stack::poll_event`]): `first`
    /// (an event the stack raises itself: `TimedOut` when the next hop never answered ARP),
    /// then the connection's own, in order. Only for a connection the application holds
    /// (accepted, or opened with `connect`): the others keep theirs until `accept`.
    #[inline]
    pub(super) fn emit_events(
        events: &mut super::api::EventQueue,
        index: u32,
        meta: &SlotMeta,
        conn: &mut Connection<A>,
        first: Option<Event>,
    ) {
        if !meta.has(SM_ACCEPTED) {
            return;
        }
        let handle = ConnHandle {
            index,
            generation: meta.generation,
        };
        if let Some(e) = first {
            events.push((handle, e));
        }
        // Usually none (settle, after collect_events): one test, no store.
        if conn.has_events() {
            for e in conn.take_events() {
                events.push((handle, e));
            }
        }
    }

    /// Moves the events of touched, accepted connections to the application's queue, so
    /// that they are visible between `receive` and `flush` (the rest of the bookkeeping
    /// waits for `settle`, after transmission).
    pub(super) fn collect_events(&mut self) {
        // No accepted slot on the list (`dirty_flags`): nothing to move.
        if self.dirty_flags & SM_ACCEPTED == 0 {
            return;
        }
        // The slices as locals: their pointers and lengths stay in registers across the
        // event pushes (which the compiler cannot tell from the vectors' own fields). The
        // blocks' slice cut to the metadata's length (the two are indexed alike, so equal):
        // a slot's metadata found, its block needs no bounds test of its own.
        let metas = &self.meta[..];
        let (conns, events) = (&mut self.conns[..metas.len()], &mut self.events);
        for &index in &self.dirty {
            let meta = &metas[index as usize];
            if !meta.has(SM_ACCEPTED) {
                continue;
            }
            // Accepted: live (a freed slot's flags are cleared), so no vacancy test.
            if let Some(c) = conns[index as usize].get_live_mut() {
                Self::emit_events(events, index, meta, c, None);
            }
        }
    }

    /// The next hop of slot `index` never answered (`ARP_ATTEMPTS` requests, see
    /// `neighbor.rs`): the connection is aborted and its application told `TimedOut`. The
    /// one place that acts on a neighbour give-up; egress reports it and settles the slot.
    pub(super) fn neighbor_unreachable(&mut self, now: Instant, index: u32) {
        if let Some(c) = self.conns[index as usize].get_mut() {
            c.abort(now);
            let meta = &self.meta[index as usize];
            Self::emit_events(&mut self.events, index, meta, c, Some(Event::TimedOut));
        }
        self.counters.timeouts += 1;
    }

    // ---------------------------------------------------------------- orphans

    /// Appends a slot to the orphan list (newest at the tail).
    pub(super) fn orphan_push(&mut self, index: u32) {
        Self::orphan_push_slot(
            &mut self.orphans,
            &mut self.counters,
            &mut self.meta[index as usize],
            index,
        );
    }

    /// [`Self::orphan_push`] for a caller that holds the slot's metadata already (and so
    /// cannot borrow the whole stack).
    #[inline(always)]
    pub(super) fn orphan_push_slot(
        orphans: &mut OrphanList,
        counters: &mut Counters,
        meta: &mut SlotMeta,
        index: u32,
    ) {
        meta.set(SM_ORPHAN, true);
        orphans.push_back(index);
        counters.orphans += 1;
    }

    /// Takes a slot off the orphan list (it finished, or is being reset).
    #[inline]
    pub(super) fn orphan_unlink(&mut self, index: u32) {
        let meta = &mut self.meta[index as usize];
        if !meta.has(SM_ORPHAN) {
            return;
        }
        meta.set(SM_ORPHAN, false);
        self.orphans.unlink(index);
        self.counters.orphans -= 1;
    }

    /// Resets the oldest orphans while there are more than `max_orphans` (like Linux's
    /// `tcp_max_orphans`, which resets rather than lets orphans eat memory).
    pub(super) fn enforce_orphan_limit(&mut self) {
        while self.counters.orphans as usize > self.cfg.max_orphans {
            let index = self.orphans.head;
            if index == NIL {
                break;
            }
            self.orphan_unlink(index);
            if let Some(c) = self.conns[index as usize].get_mut() {
                c.abort(self.now);
            }
            self.counters.orphan_overflows += 1;
            self.mark_dirty(index);
        }
    }

    // ---------------------------------------------------------------- slots

    /// Puts the connection `make` builds for `tuple` into a free slot. `make` runs only once
    /// the slot and the flow entry are secured, and builds the control block in place (no
    /// copy of it through the stack frame).
    ///
    /// `flow_held`: the flow entry for `tuple` exists already (a SYN-RECEIVED entry handed it
    /// over, see `release_syn_recv`) and is pointed at the new slot in place, instead of a
    /// removal and a re-insertion. On failure a held flow entry is removed.
    pub(super) fn insert_connection(
        &mut self,
        tuple: FourTuple<A>,
        peer_mac: Option<EthernetAddress>,
        accepted: bool,
        flow_held: bool,
        make: impl FnOnce(&ConnTemplate) -> Connection<A>,
    ) -> Result<ConnHandle, StackError> {
        let hash = self.flows.hash_of(&tuple);
        self.insert_connection_hashed(tuple, peer_mac, accepted, flow_held, hash, |t, cell| {
            // A vacant block is dropped (its buffers were returned already) and the new one
            // built in the empty cell.
            *cell = None;
            cell.get_or_insert_with(|| make(t));
        })
    }

    /// [`insert_connection`](Self::insert_connection) with the tuple's flow-table hash
    /// (`FlowTable::hash_of`), computed once by ingress for the segment. `build` puts the
    /// connection into the slot's cell: an empty one (`None`, a slot's first use) or one
    /// holding a vacant block (`Connection::vacate`), which it may reinitialise in place.
    pub(super) fn insert_connection_hashed(
        &mut self,
        tuple: FourTuple<A>,
        peer_mac: Option<EthernetAddress>,
        accepted: bool,
        flow_held: bool,
        hash: FlowHash,
        build: impl FnOnce(&ConnTemplate, &mut Option<Connection<A>>),
    ) -> Result<ConnHandle, StackError> {
        if self.live_connections >= self.cfg.max_connections {
            self.counters.conn_table_full += 1;
            if flow_held {
                self.flows.remove_hashed(&tuple, hash);
            }
            return Err(StackError::TableFull);
        }
        let index = match self.free_slots.pop() {
            Some(i) => i,
            None => {
                // Within the reserved capacity (max_connections): never reallocates.
                self.meta.push(SlotMeta::EMPTY);
                self.conns.push(ConnCell(None));
                self.flow_hashes.push(FlowHash::UNSET);
                self.orphans.links.push(OrphanLink {
                    prev: NIL,
                    next: NIL,
                });
                self.meta.len() as u32 - 1
            }
        };
        let value = Owner::Slot(index).encode();
        let flow_ok = if flow_held {
            self.flows.replace_hashed(&tuple, value, hash).is_some()
        } else {
            self.flows.insert_hashed(tuple, value, hash).is_ok()
        };
        if !flow_ok {
            self.free_slots.push(index);
            self.counters.conn_table_full += 1;
            return Err(StackError::TableFull);
        }
        let meta = &mut self.meta[index as usize];
        // The top bit names the family (`ConnHandle::is_v6`); the count wraps below it.
        let generation = (meta.generation.wrapping_add(1) & !HANDLE_V6) | A::HANDLE_TAG;
        // Dirty from the start: `mark_dirty`, without looking the slot up again (the reset
        // clears the bit, so the slot always goes on the dirty list here).
        *meta = SlotMeta {
            generation,
            flags: SM_LIVE | SM_DIRTY,
            ..SlotMeta::EMPTY
        };
        if let Some(mac) = peer_mac {
            meta.peer_mac = mac;
            meta.flags |= SM_MAC;
        }
        meta.set(SM_ACCEPTED, accepted);
        self.dirty_flags |= meta.flags;
        self.flow_hashes[index as usize] = hash;
        let cell = &mut self.conns[index as usize];
        debug_assert!(cell.get().is_none(), "a free slot holds no connection");
        build(&self.conn_template, &mut cell.0);
        debug_assert_eq!(cell.get().map(Connection::tuple), Some(tuple));
        self.live_connections += 1;
        self.dirty.push(index);
        Ok(ConnHandle { index, generation })
    }

    #[inline]
    pub(super) fn mark_dirty(&mut self, index: u32) {
        let meta = &mut self.meta[index as usize];
        if !meta.has(SM_DIRTY) {
            meta.flags |= SM_DIRTY;
            self.dirty_flags |= meta.flags;
            self.dirty.push(index);
        }
    }

    /// Sends what slot `index` has ready (`egress::transmit_conn`), then what follows any
    /// change to a connection: gauges, events, timers, TIME-WAIT migration, freeing. The
    /// slot's meta and block are looked up once for all of it. Clears the slot's SM_DIRTY
    /// (dispatch empties the list itself). False when the link ran out of TX frames: the
    /// slot stays dirty and unsettled.
    #[inline(always)]
    pub(super) fn transmit_and_settle<L: Link>(
        &mut self,
        now: Instant,
        index: u32,
        link: &mut L,
    ) -> bool {
        let mut transmit = true;
        let (meta, conn) = loop {
            let meta = &mut self.meta[index as usize];
            let Some(conn) = self.conns[index as usize].get_mut() else {
                meta.flags &= !(SM_DIRTY | SM_TIMER_DEFERRED);
                return true;
            };
            if transmit {
                match transmit_conn(
                    conn,
                    meta,
                    &self.neighbors,
                    &mut self.counters,
                    &self.cfg,
                    now,
                    link,
                ) {
                    Tx::Done => {}
                    Tx::NoBuffer => return false,
                    Tx::NoNeighbor => {
                        // Ask for it (or give up on it), then settle without sending.
                        let tuple = conn.tuple();
                        self.no_neighbor(now, index, &tuple);
                        transmit = false;
                        continue;
                    }
                }
            }
            break (meta, conn);
        };
        // Settled: a deadline `link_pending_timers` deferred to here is queued below.
        meta.flags &= !(SM_DIRTY | SM_TIMER_DEFERRED);
        let state = conn.state();
        if state != meta.last_state {
            crate::trace::debug!(conn = %conn.tuple(), from = %meta.last_state, to = %state, "state");
            if meta.last_state == State::Established {
                self.counters.established -= 1;
            }
            if state == State::Established {
                self.counters.established += 1;
            }
            meta.last_state = state;
        }
        let accepted = meta.has(SM_ACCEPTED);
        Self::emit_events(&mut self.events, index, meta, conn, None);
        // A finished connection stays (as a full control block) while the application still
        // has bytes to read from it; it is released once they are read or it is closed.
        let releasable = !accepted || meta.has(SM_ORPHAN) || conn.recv_queue() == 0;
        let finished = match state {
            State::Closed => releasable,
            State::TimeWait if releasable => {
                // The final ACK went out (settle runs after transmit): hand over to the table.
                let (_, rcv_wscale) = conn.window_scales();
                let wnd = (self.cfg.tcp.recv_buffer >> rcv_wscale).min(65535) as u16;
                let init = TimeWaitInit {
                    tuple: conn.tuple(),
                    snd_nxt: conn.snd_nxt(),
                    rcv_nxt: conn.rcv_nxt(),
                    ts_recent: conn.ts_recent(),
                    rcv_wnd: wnd,
                    rcv_wscale,
                };
                let expires = conn
                    .time_wait_until()
                    .unwrap_or(self.now + 2 * self.cfg.tcp.msl);
                self.counters.time_wait_inserts += 1;
                // A full table evicts its oldest entry; the table counts it
                // (`time_wait_table_full` in the snapshot).
                self.time_wait.insert(self.now, init, expires);
                true
            }
            _ => false,
        };
        if finished {
            if !accepted {
                conn.clear_events();
            } else if let Some(e) = conn.soft_error() {
                let h = ConnHandle {
                    index,
                    generation: meta.generation,
                };
                super::icmp::keep_soft_error(&mut self.soft_errors, h, e);
            }
            // Free the slot. The block stays in the cell, vacant (its buffers and
            // scoreboard returned as a drop would return them), for the slot's next passive
            // open to rewrite in place.
            conn.vacate();
            if meta.has(SM_ORPHAN) {
                self.orphans.unlink(index);
                self.counters.orphans -= 1;
            }
            if let Some(t) = meta.timer.take() {
                self.wheel.cancel(t);
            }
            meta.timer_at = NO_TIMER;
            // `last_state` is CLOSED or TIME-WAIT (set above): the ESTABLISHED gauge is
            // settled already. Only the generation stays (the dirty bit is clear).
            meta.last_state = State::Closed;
            meta.flags = 0;
            // The hash stored at insertion (no second hashing of the tuple) and the slot's
            // value (the tuple, on another line of the block, is not read).
            self.flows.remove_value_hashed(
                Owner::Slot(index).encode(),
                self.flow_hashes[index as usize],
            );
            self.free_slots.push(index);
            self.live_connections -= 1;
            return true;
        }
        // Compared as microseconds (`NO_TIMER` for none; `poll_at` never answers an instant
        // of `u64::MAX` µs), not as two `Option`s.
        let want = conn.poll_at();
        let want_at = want.map_or(NO_TIMER, Instant::total_micros);
        if want_at != meta.timer_at {
            if let Some(t) = meta.timer.take() {
                self.wheel.cancel(t);
            }
            meta.timer_at = want_at;
            if let Some(at) = want
                && !meta.has(SM_TIMER_PENDING)
            {
                if self.timers_pending.len() < self.timers_pending.capacity() {
                    // Linked into the wheel by the next `run_timers`, unless the slot is
                    // settled again or freed first (`link_pending_timers`). Pushed before
                    // the flag is set: no store between the room test and the push, which
                    // then tests the room no more.
                    self.timers_pending.push(index);
                    meta.flags |= SM_TIMER_PENDING;
                } else {
                    // The wheel holds max_connections + max_syn_recv nodes: one per slot, so
                    // it cannot be full here.
                    meta.timer = self.wheel.schedule(at, Owner::Slot(index).encode()).ok();
                }
            }
        }
        true
    }

    /// Slot `index` has something to send and no MAC for its next hop: asks for it, or
    /// aborts the connection when the neighbour protocol gave up. Cold and out of line: in
    /// the dirty loop of `dispatch` its code (the `waiting_arp` search) took registers and
    /// hoisted work into every slot's visit.
    #[cold]
    #[inline(never)]
    fn no_neighbor(&mut self, now: Instant, index: u32, tuple: &FourTuple<A>) {
        if self.await_neighbor(now, index, tuple) == Resolve::Unreachable {
            self.neighbor_unreachable(now, index);
        }
    }

    /// Links the deadlines `settle` left pending into the wheel, before `run_timers` expires
    /// it. A slot on the dirty list (touched by this receive batch, settled again by the
    /// coming `dispatch`) with a deadline that cannot fire in this batch is not linked: the
    /// common case is a connection in LAST-ACK whose retransmission deadline (armed after
    /// its FIN+ACK) would be linked here and cancelled a moment later when the peer's ACK
    /// frees the slot. Its entry is dropped too, the deadline forgotten (SM_TIMER_DEFERRED):
    /// the coming `settle` finds the connection's deadline differing and queues it again, or
    /// frees the slot, so no freed slot's entry waits for the next batch to be dropped (a
    /// receive that comes before that settle queues them again, `requeue_deferred`). A
    /// deadline that may be due now (its tick, rounded up as the wheel rounds it, not after
    /// `now`'s tick) is always linked, so it fires in this batch as an eagerly linked one
    /// would; within one tick the wheel's order is unspecified anyway. Entries of slots
    /// freed since (their flag cleared when `transmit_and_settle` frees them) are dropped.
    pub(super) fn link_pending_timers(&mut self, now: Instant) {
        let tick = TIMER_TICK.as_micros() as u64;
        // "Its tick is after now's": div_ceil(at, tick) > now / tick, which for integers (tick
        // > 0) is at > (now / tick) * tick: one compare per entry, no division.
        let now_tick_start = now.total_micros() / tick * tick;
        if self.timers_deferred {
            // Deferred by an earlier receive whose settle has not come (no `flush` since, or
            // it stopped on a full TX ring): queued again, to be linked or deferred below.
            let dirty = core::mem::take(&mut self.dirty);
            self.requeue_deferred(&dirty);
            self.dirty = dirty;
        }
        // Walked as a local (no reload of its length); nothing below queues a deadline.
        let mut pending = core::mem::take(&mut self.timers_pending);
        for &index in &pending {
            let meta = &mut self.meta[index as usize];
            if !meta.has(SM_TIMER_PENDING) {
                continue;
            }
            if meta.timer_at != NO_TIMER && meta.has(SM_DIRTY) && meta.timer_at > now_tick_start {
                // Deferred to the coming `settle` (see above).
                meta.flags = (meta.flags & !SM_TIMER_PENDING) | SM_TIMER_DEFERRED;
                meta.timer_at = NO_TIMER;
                self.timers_deferred = true;
                continue;
            }
            meta.flags &= !SM_TIMER_PENDING;
            if meta.timer_at != NO_TIMER {
                let at = Instant::from_micros(meta.timer_at);
                meta.timer = self.wheel.schedule(at, Owner::Slot(index).encode()).ok();
            }
        }
        pending.clear();
        self.timers_pending = pending;
    }

    /// The deadlines that `link_pending_timers` deferred to a `settle` that has not come
    /// yet (the slots in `dirty` with SM_TIMER_DEFERRED), queued again as the connections
    /// want them, so this timer stage links them (and fires one that is due) as it linked
    /// a kept entry before. Only when a receive follows a receive without a complete
    /// `dispatch` between them (several `receive` calls per `flush`, or a full TX ring).
    #[cold]
    fn requeue_deferred(&mut self, dirty: &[u32]) {
        self.timers_deferred = false;
        for &index in dirty {
            let meta = &mut self.meta[index as usize];
            if !meta.has(SM_TIMER_DEFERRED) {
                continue;
            }
            meta.flags &= !SM_TIMER_DEFERRED;
            let Some(at) = self.conns[index as usize]
                .get()
                .and_then(Connection::poll_at)
            else {
                continue;
            };
            meta.timer_at = at.total_micros();
            if self.timers_pending.len() < self.timers_pending.capacity() {
                meta.flags |= SM_TIMER_PENDING;
                self.timers_pending.push(index);
            } else {
                meta.timer = self.wheel.schedule(at, Owner::Slot(index).encode()).ok();
            }
        }
    }

    /// The earliest deadline still pending (not linked into the wheel yet), for `poll_at`.
    pub(super) fn pending_timer_deadline(&self) -> Option<Instant> {
        self.timers_pending
            .iter()
            .map(|&i| &self.meta[i as usize])
            .filter(|m| m.has(SM_TIMER_PENDING))
            .map(|m| m.timer_at)
            .min()
            .filter(|&at| at != NO_TIMER)
            .map(Instant::from_micros)
    }
}
