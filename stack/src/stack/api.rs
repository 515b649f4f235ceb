//! The application API: listeners and `accept`, active opens, and the per-connection calls
//! (`send`, `recv`, `close`, options). Each takes effect on the next poll (see the module
//! docs of [`super`]).

use super::{
    ConnHandle, Listener, ListenerId, SM_ACCEPTED, SM_DIRTY, SM_LIVE, SM_ORPHAN, Stack, StackError,
    StackFamily,
};
use crate::tcp::ports::PortState;
use crate::tcp::{Connection, Event, FourTuple, State};
use crate::time::{Duration, Instant};

impl<A: StackFamily> Stack<A> {
    // ---------------------------------------------------------------- application: setup

    /// Listens on `addr` (0.0.0.0 or `::` = every local address of the stack's family) with
    /// the default backlogs.
    pub fn listen(&mut self, addr: A::SocketAddr) -> Result<ListenerId, StackError> {
        let (syn, acc) = (self.cfg.syn_backlog, self.cfg.accept_backlog);
        self.listen_with_backlog(addr, syn, acc)
    }

    pub fn listen_with_backlog(
        &mut self,
        addr: A::SocketAddr,
        syn_backlog: usize,
        accept_backlog: usize,
    ) -> Result<ListenerId, StackError> {
        let (ip, port) = A::split(addr);
        if !ip.is_unspecified_addr() && !self.is_local(ip) {
            return Err(StackError::AddressNotLocal);
        }
        if self
            .listeners
            .iter()
            .any(|l| l.port == port && (l.addr == ip || l.addr.is_unspecified_addr()))
        {
            return Err(StackError::AddressInUse);
        }
        self.listeners.push(Listener {
            addr: ip,
            port,
            syn_backlog,
            accept_backlog,
            syn_queue_len: 0,
            accept_queue: Fifo::with_capacity(accept_backlog.min(1 << 16)),
            sending_cookies: false,
        });
        Ok(ListenerId(self.listeners.len() as u32 - 1))
    }

    /// Connections waiting in a listener's accept queue.
    pub fn accept_queue_len(&self, l: ListenerId) -> usize {
        self.listeners
            .get(l.0 as usize)
            .map_or(0, |l| l.accept_queue.len())
    }

    /// Takes the next established connection from the accept queue. Its events (Connected,
    /// and Readable/PeerClosed if data or FIN came already) follow in `poll_event`.
    /// `#[inline]`: an application calls it in a loop until `None`; inlined into that loop
    /// it needs no call frame of its own and returns the handle in registers.
    #[inline]
    pub fn accept(&mut self, l: ListenerId) -> Option<ConnHandle> {
        loop {
            let h = self.listeners.get_mut(l.0 as usize)?.accept_queue.pop()?;
            if !self.is_live(h) {
                continue; // died in the queue (reset, timed out)
            }
            let meta = &mut self.meta[h.index as usize];
            // Accepted, and dirty (`mark_dirty` without looking the slot up again).
            let was_dirty = meta.has(SM_DIRTY);
            meta.flags |= SM_ACCEPTED | SM_DIRTY;
            self.dirty_flags |= SM_ACCEPTED;
            if let Some(c) = self.conns[h.index as usize].get_live_mut() {
                Self::emit_events(&mut self.events, h.index, meta, c, None);
            }
            if !was_dirty {
                self.dirty.push(h.index);
            }
            return Some(h);
        }
    }

    /// Active open to `remote` from our first address (or `local_ip`).
    pub fn connect(
        &mut self,
        now: Instant,
        local_ip: Option<A>,
        remote: A::SocketAddr,
    ) -> Result<ConnHandle, StackError> {
        self.now = now;
        let local_ip = match local_ip {
            Some(ip) if self.is_local(ip) => ip,
            Some(_) => return Err(StackError::AddressNotLocal),
            None => *A::local_ips(&self.cfg)
                .first()
                .ok_or(StackError::AddressNotLocal)?,
        };
        if self.live_connections >= self.cfg.max_connections {
            self.counters.conn_table_full += 1;
            return Err(StackError::TableFull);
        }
        let (rip, rport) = A::split(remote);
        let flows = &self.flows;
        let tw = &self.time_wait;
        let msl2 = 2 * self.cfg.tcp.msl;
        let rss = self.cfg.rss.as_ref();
        let port = self
            .ports
            .allocate(local_ip, rip, rport, |p| {
                if rss.is_some_and(|r| !r.accepts(local_ip, p, rip, rport)) {
                    // Its replies would reach another core.
                    return PortState::InUse;
                }
                let t = FourTuple {
                    local_addr: local_ip,
                    remote_addr: rip,
                    local_port: p,
                    remote_port: rport,
                };
                if flows.contains_key(&t) {
                    return PortState::InUse;
                }
                match tw.get(&t) {
                    None => PortState::Free,
                    Some(e) => {
                        // Like Linux tcp_tw_reuse: safe when timestamps protect the new
                        // incarnation (RFC 6191 §2 on the peer side; PAWS) and the entry is
                        // at least one second old.
                        let expires = Instant::from_millis(u64::from(e.expiry_millis()));
                        let age = msl2.saturating_sub(expires.saturating_since(now));
                        PortState::TimeWait {
                            reusable: e.ts_recent().is_some() && age >= Duration::from_secs(1),
                        }
                    }
                }
            })
            .map_err(A::ports_exhausted)?;
        let tuple = FourTuple {
            local_addr: local_ip,
            remote_addr: rip,
            local_port: port,
            remote_port: rport,
        };
        if self.time_wait.remove(&tuple).is_some() {
            self.counters.time_wait_reuses += 1;
        }
        let (iss, ts_offset) = self.take_isn(now, &tuple);
        let mac = self.cached_neighbor(now, rip);
        let h = self.insert_connection(tuple, mac, true, false, |t| {
            Connection::connect(t.config(), tuple, iss, ts_offset, now)
        })?;
        self.counters.active_opens += 1;
        Ok(h)
    }

    // ---------------------------------------------------------------- application: data

    /// The handle names a slot that still holds its connection.
    fn is_live(&self, h: ConnHandle) -> bool {
        self.meta
            .get(h.index as usize)
            .is_some_and(|m| m.generation == h.generation && m.has(SM_LIVE))
    }

    /// The live slot `h` names: its metadata and its connection.
    #[inline(always)]
    fn live_slot<'a>(
        metas: &'a mut [super::SlotMeta],
        conns: &'a mut [super::ConnCell<A>],
        h: ConnHandle,
    ) -> Result<(&'a mut super::SlotMeta, &'a mut Connection<A>), StackError> {
        match metas.get_mut(h.index as usize) {
            Some(meta) if meta.generation == h.generation && meta.has(SM_LIVE) => {
                let conn = conns[h.index as usize]
                    .get_live_mut()
                    .ok_or(StackError::InvalidHandle)?;
                Ok((meta, conn))
            }
            _ => Err(StackError::InvalidHandle),
        }
    }

    /// After an application call: only a connection with something to do goes on the dirty
    /// list (an application that polls `recv` in a loop must not keep the stack busy). A
    /// slot on the list already needs no test.
    #[inline(always)]
    fn dirty_if_busy(
        dirty: &mut Vec<u32>,
        dirty_flags: &mut u8,
        index: u32,
        meta: &mut super::SlotMeta,
        conn: &Connection<A>,
        state_before: State,
    ) {
        if meta.has(SM_DIRTY) {
            return;
        }
        let busy = conn.wants_transmit()
            || conn.has_events()
            || matches!(conn.state(), State::Closed | State::TimeWait)
            || conn.state() != state_before
            || conn.poll_at() != meta.timer_deadline();
        if busy {
            meta.flags |= SM_DIRTY;
            *dirty_flags |= meta.flags;
            dirty.push(index);
        }
    }

    /// [`Self::dirty_if_busy`] out of line, for a fast path where the slot is usually dirty
    /// already (its register saves stay out of the fast path).
    #[cold]
    #[inline(never)]
    fn dirty_if_busy_cold(
        dirty: &mut Vec<u32>,
        dirty_flags: &mut u8,
        index: u32,
        meta: &mut super::SlotMeta,
        conn: &Connection<A>,
        state_before: State,
    ) {
        Self::dirty_if_busy(dirty, dirty_flags, index, meta, conn, state_before);
    }

    fn with_conn<R>(
        &mut self,
        h: ConnHandle,
        f: impl FnOnce(&mut Connection<A>, Instant) -> R,
    ) -> Result<R, StackError> {
        let now = self.now;
        let (meta, conn) = Self::live_slot(&mut self.meta, &mut self.conns, h)?;
        let state = conn.state();
        let r = f(conn, now);
        Self::dirty_if_busy(
            &mut self.dirty,
            &mut self.dirty_flags,
            h.index,
            meta,
            conn,
            state,
        );
        Ok(r)
    }

    /// Copies as much of `data` as fits into the send buffer.
    pub fn send(&mut self, h: ConnHandle, data: &[u8]) -> Result<usize, StackError> {
        self.with_conn(h, |c, _| c.send(data))?
            .map_err(StackError::Tcp)
    }

    /// Copies received bytes into `buf`.
    pub fn recv(&mut self, h: ConnHandle, buf: &mut [u8]) -> Result<usize, StackError> {
        self.with_conn(h, |c, _| c.recv(buf))
    }

    /// Received bytes at the front of the buffer, borrowed in place (zero-copy).
    pub fn recv_slice(&self, h: ConnHandle) -> Result<&[u8], StackError> {
        self.connection(h)
            .map(|c| c.recv_slice())
            .ok_or(StackError::InvalidHandle)
    }

    /// Marks `n` bytes of `recv_slice` as read.
    pub fn consume(&mut self, h: ConnHandle, n: usize) -> Result<(), StackError> {
        self.with_conn(h, |c, _| c.consume(n))
    }

    /// Half-close: FIN after the queued data; receiving continues.
    pub fn shutdown(&mut self, h: ConnHandle) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.shutdown(now))?
            .map_err(StackError::Tcp)
    }

    /// Closes both directions; the connection becomes an orphan until it finishes.
    #[inline]
    pub fn close(&mut self, h: ConnHandle) -> Result<(), StackError> {
        // The server's usual close (`Connection::close_in_close_wait`): what `close_general`
        // does for it, without its result and state tests. The connection stays alive
        // (CLOSE-WAIT or LAST-ACK), so it becomes an orphan. Every other case out of line.
        if let Ok((meta, conn)) = Self::live_slot(&mut self.meta, &mut self.conns, h) {
            let state = conn.state();
            if conn.close_in_close_wait() {
                if !meta.has(SM_DIRTY) {
                    Self::dirty_if_busy_cold(
                        &mut self.dirty,
                        &mut self.dirty_flags,
                        h.index,
                        meta,
                        conn,
                        state,
                    );
                }
                if !meta.has(SM_ORPHAN) {
                    Self::orphan_push_slot(&mut self.orphans, &mut self.counters, meta, h.index);
                    if self.counters.orphans as usize > self.cfg.max_orphans {
                        self.enforce_orphan_limit();
                    }
                }
                return Ok(());
            }
        }
        self.close_general(h)
    }

    /// [`Self::close`] in any other case.
    #[inline(never)]
    pub(super) fn close_general(&mut self, h: ConnHandle) -> Result<(), StackError> {
        // `with_conn`, with the slot's metadata held for the orphan test.
        let now = self.now;
        let (meta, conn) = Self::live_slot(&mut self.meta, &mut self.conns, h)?;
        let state = conn.state();
        let r = conn.close(now);
        let alive = !matches!(conn.state(), State::Closed | State::TimeWait);
        Self::dirty_if_busy(
            &mut self.dirty,
            &mut self.dirty_flags,
            h.index,
            meta,
            conn,
            state,
        );
        r.map_err(StackError::Tcp)?;
        if alive && !meta.has(SM_ORPHAN) {
            self.orphan_push(h.index);
            self.enforce_orphan_limit();
        }
        Ok(())
    }

    /// Aborts with RST.
    pub fn abort(&mut self, h: ConnHandle) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.abort(now))
    }

    /// Chooses one connection's congestion control algorithm (the default for every
    /// connection is `StackConfig::tcp.congestion`).
    pub fn set_congestion_algorithm(
        &mut self,
        h: ConnHandle,
        algorithm: crate::tcp::CongestionAlgorithm,
    ) -> Result<(), StackError> {
        self.with_conn(h, |c, _| c.set_congestion_algorithm(algorithm))
    }

    /// Turns Nagle's algorithm (RFC 9293 §3.7.4) on or off for one connection.
    pub fn set_nagle(&mut self, h: ConnHandle, on: bool) -> Result<(), StackError> {
        self.with_conn(h, |c, _| c.set_nagle(on))
    }

    /// Sets or clears one connection's keepalive (RFC 9293 §3.8.4).
    pub fn set_keepalive(
        &mut self,
        h: ConnHandle,
        keepalive: Option<crate::tcp::Keepalive>,
    ) -> Result<(), StackError> {
        self.with_conn(h, |c, now| c.set_keepalive(now, keepalive))
    }

    /// The large allocations, fixed for the stack's lifetime (TIME-WAIT ring, index and tags,
    /// flow table, slab, metadata): for [`crate::mem::advise_huge_pages`] right after
    /// construction.
    pub fn large_regions(&self) -> Vec<crate::mem::Region> {
        let [ring, index, tags] = self.time_wait.regions();
        vec![
            ring,
            index,
            tags,
            self.flows.region(),
            crate::mem::Region::of("conns", self.conns.as_ptr(), self.conns.capacity()),
            crate::mem::Region::of("meta", self.meta.as_ptr(), self.meta.capacity()),
        ]
    }

    /// The next application event.
    #[inline]
    pub fn poll_event(&mut self) -> Option<(ConnHandle, Event)> {
        self.events.pop()
    }
}

/// A first-in, first-out queue of small `Copy` items: a vector read from the front by an
/// index and emptied whole once read to the end (what an application that polls or accepts
/// until `None` always does). A push is a vector push and a read an index test and a load,
/// cheaper than a ring's wrapping arithmetic on both sides. Used for the application's
/// events ([`Stack::poll_event`]), each listener's accept queue ([`Stack::accept`]) and the
/// stateless replies (`Stack::push_control`, read in place by `transmit_control`).
///
/// Memory and time: a queue never read to the end is compacted (the read items dropped) when
/// its vector is full and at least half of it is read, and grown otherwise; so it holds at
/// most about four times its largest length, and a push costs amortized O(1) even when the
/// reader keeps it near full.
pub(super) struct Fifo<T> {
    items: Vec<T>,
    /// The next item to read: `items[read]`; `read ≤ items.len()`.
    read: usize,
}

/// The application's event queue.
pub(super) type EventQueue = Fifo<(ConnHandle, Event)>;

impl<T: Copy> Fifo<T> {
    pub(super) fn with_capacity(n: usize) -> Fifo<T> {
        Fifo {
            items: Vec::with_capacity(n),
            read: 0,
        }
    }

    /// Items pushed and not yet read.
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.items.len() - self.read
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> usize {
        self.items.capacity()
    }

    #[inline]
    pub(super) fn push(&mut self, e: T) {
        if self.items.len() == self.items.capacity() {
            self.make_room();
        }
        self.items.push(e);
    }

    /// Full: the read items dropped if they are at least half, or else the vector grown.
    #[cold]
    #[inline(never)]
    fn make_room(&mut self) {
        if self.read > 0 && self.read * 2 >= self.items.len() {
            self.items.drain(..self.read);
            self.read = 0;
        } else {
            self.items.reserve(1);
        }
    }

    /// The items pushed and not yet read, in order, in place.
    #[inline]
    pub(super) fn unread(&self) -> &[T] {
        &self.items[self.read..]
    }

    /// Marks the first `n` (≤ [`Fifo::len`]) unread items read.
    #[inline]
    pub(super) fn consume(&mut self, n: usize) {
        debug_assert!(n <= self.len());
        self.read += n;
    }

    /// Reads every item: empty again, from the start of the vector.
    #[inline]
    pub(super) fn clear(&mut self) {
        self.items.clear();
        self.read = 0;
    }

    #[inline]
    pub(super) fn pop(&mut self) -> Option<T> {
        match self.items.get(self.read) {
            Some(&e) => {
                self.read += 1;
                Some(e)
            }
            None => {
                // Read to the end: empty again, from the start of the vector.
                self.items.clear();
                self.read = 0;
                None
            }
        }
    }
}
