//! One core's polling loop: its AF_XDP socket, its stack, its application instance.
//!
//! # One iteration
//! 1. read the clock (once: every packet of the iteration shares `now`);
//! 2. `Stack::receive`: a batch of frames other cores handed over, then of the socket's
//!    (handing those owned by another core to it, see [`super::handoff`]); due timers;
//! 3. accept every new connection, then hand every event to the application;
//! 4. `App::on_tick`; progress pending next-hop resolutions;
//! 5. transmit what the callbacks queued (`Stack::flush`: one TX kick);
//! 6. every few iterations' worth of time: control commands and a counter snapshot
//!    (channels, never per packet);
//! 7. when idle and the poll mode is [`PollMode::Idle`], after `idle_spins` empty
//!    iterations, wait for the socket to become readable (bounded by `idle_wait`).
//!
//! With [`PollMode::PreferBusy`] each iteration starts with a `recvfrom(MSG_DONTWAIT)` on the
//! socket, which runs the device's receive NAPI on this core (see
//! [`crate::afxdp::busy_poll`]): one syscall per iteration, never per frame.
//!
//! # Work accounting
//! Each iteration's wall time (clock to clock, in ns) is added to `loop_ns`, and to `busy_ns`
//! when the iteration did something (received, accepted, delivered an event or transmitted).
//! `busy_ns / loop_ns` over a window is the core's share of time spent on work rather than on
//! empty polls; it costs no extra clock read. Time inside idle waits (`poll(2)`, idle mode
//! only) is also added to `wait_ns` (two clock reads per wait, never per frame), so
//! `loop_ns - busy_ns - wait_ns` is the time spent spinning on empty rings.
//!
//! # Frames of other cores
//! With more than one queue, the socket is read through a [`HandoffLink`]: a segment for an
//! ephemeral port another core owns (the reply to that core's active open, arriving here
//! because the peer's hash picked this queue) is copied into that core's bounded queue, and
//! the frames other cores queued for this one are received before the socket's. A core in
//! [`PollMode::Idle`] does not wait on its socket while frames are queued for it.
//!
//! # Shutdown
//! On [`Command::Stop`]: every connection the application holds gets FIN (`close`, which
//! aborts those with unread bytes) or RST, per [`ShutdownPolicy`]; the loop keeps polling,
//! without calling the application, until the table is empty and TX has completed, or the
//! drain time is up (then the rest are reset). The socket is handed back to the engine,
//! which detaches the XDP program before the socket is freed.

use std::net::{Ipv6Addr, SocketAddrV4, SocketAddrV6};
use std::sync::Arc;
use std::time::Instant as StdInstant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::app::{App, AppEvent, Core6, CoreState, Io};
use super::handoff::{Handoff, HandoffLink, Ownership};
use super::neighbor::Resolver;
use super::stats::{CoreStats, Ipv6Stats, SNAPSHOT_INTERVAL, add_counters};
use super::{PollMode, ShutdownPolicy};
use crate::afxdp::{XskLink, busy_poll};
use crate::capture::{CaptureLink, PcapFile};
use crate::link::Link;
use crate::stack::{ConnHandle, ListenerId, Stack, StackConfig, is_ipv6_frame};
use crate::tcp::time_wait::TimeWaitInit;
use crate::tcp::{Event, FourTuple};
use crate::time::{Duration, Instant};
use crate::wire::SeqNumber;

/// A call into one core's application, made on that core's thread.
pub type CoreCall<A> = Box<dyn FnOnce(&mut A, &mut Io<'_>) + Send>;

/// Control messages to a core.
pub(crate) enum Command<A> {
    Stop,
    Call(CoreCall<A>),
}

/// Control messages from a core.
pub(crate) enum Report {
    Ready,
    Failed(u32, String),
    /// Boxed: a snapshot is several hundred bytes, the other reports a word or two.
    Stats(Box<CoreStats>),
    StopRequested,
}

pub(crate) struct WorkerSetup {
    pub queue: u32,
    pub queues: u32,
    pub cpu: Option<usize>,
    pub iface: String,
    pub stack: StackConfig,
    pub listen: Vec<SocketAddrV4>,
    /// With IPv6 addresses: the IPv6 stack's configuration (`ips6` set) and its listeners.
    pub stack6: Option<StackConfig>,
    pub listen6: Vec<SocketAddrV6>,
    pub poll: PollMode,
    pub idle_spins: u32,
    pub idle_wait: Duration,
    pub shutdown: ShutdownPolicy,
    pub epoch: StdInstant,
    /// The queues between cores, with more than one queue (`None`: a single core).
    pub hub: Option<Arc<Handoff>>,
    /// Which core owns which of our active opens.
    pub owners: Ownership,
    /// Synthetic TIME-WAIT entries over all queues (see `EngineConfig::prefill_time_wait`).
    pub prefill_time_wait: u64,
    /// This queue's capture file ([`super::EngineConfig::capture`]).
    pub capture: Option<PcapFile>,
}

/// Receives one batch: through the handoff queues when the engine has several cores; on a
/// dual-stack core, IPv6 frames (the socket's and those handed over) go to the IPv6 stack on
/// the way ([`SplitLink`]).
fn receive<L: Link>(
    setup: &WorkerSetup,
    core: &mut CoreState,
    link: &mut L,
    now: Instant,
) -> usize {
    let CoreState {
        stack, v6, handoff, ..
    } = core;
    let me = setup.queue;
    let owners = &setup.owners;
    match (&setup.hub, v6.as_deref_mut()) {
        (None, None) => stack.receive(now, link),
        (Some(hub), None) => stack.receive(
            now,
            &mut HandoffLink {
                link,
                me,
                hub,
                owners,
                stats: handoff,
            },
        ),
        (None, Some(v6)) => {
            let n = stack.receive(
                now,
                &mut SplitLink {
                    link,
                    v6: &mut v6.stack,
                    now,
                },
            );
            v6.stack.finish_receive(now);
            n
        }
        (Some(hub), Some(v6)) => {
            let n = stack.receive(
                now,
                &mut SplitLink {
                    link: &mut HandoffLink {
                        link,
                        me,
                        hub,
                        owners,
                        stats: handoff,
                    },
                    v6: &mut v6.stack,
                    now,
                },
            );
            v6.stack.finish_receive(now);
            n
        }
    }
}

/// The link as a dual-stack core's IPv4 stack sees it: every IPv6 frame is given to the
/// IPv6 stack instead (its ingress only; the engine then ends the IPv6 stack's batch with
/// [`Stack::finish_receive`]). Only built when the engine has IPv6 addresses.
struct SplitLink<'a, L> {
    link: &'a mut L,
    v6: &'a mut Stack<Ipv6Addr>,
    now: Instant,
}

impl<L: Link> Link for SplitLink<'_, L> {
    fn max_frame_len(&self) -> usize {
        self.link.max_frame_len()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let v6 = &mut *self.v6;
        let now = self.now;
        self.link.receive(budget, |frame| {
            if is_ipv6_frame(frame) {
                v6.receive_frame(now, frame);
            } else {
                f(frame);
            }
        })
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        self.link.transmit(f)
    }

    fn flush(&mut self) {
        self.link.flush();
    }
}

/// A link whose `flush` does nothing: a dual-stack core's IPv6 stack transmits through it,
/// and the IPv4 stack's flush right after kicks TX once for both.
struct NoKick<'a, L>(&'a mut L);

impl<L: Link> Link for NoKick<'_, L> {
    fn max_frame_len(&self) -> usize {
        self.0.max_frame_len()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, f: F) -> usize {
        self.0.receive(budget, f)
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        self.0.transmit(f)
    }

    fn flush(&mut self) {}
}

/// The link with the application's frame hooks ([`App::FRAME_HOOKS`]) in the path.
struct HookedLink<'a, L, A> {
    link: &'a mut L,
    app: &'a mut A,
}

impl<L: Link, A: App> Link for HookedLink<'_, L, A> {
    fn max_frame_len(&self) -> usize {
        self.link.max_frame_len()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let app = &mut *self.app;
        self.link.receive(budget, |frame| {
            if !app.on_rx_frame(frame) {
                f(frame);
            }
        })
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        let app = &mut *self.app;
        self.link.transmit(|buf| {
            let n = f(buf);
            app.on_tx_frame(&buf[..n.min(buf.len())]);
            n
        })
    }

    fn flush(&mut self) {
        self.link.flush();
    }
}

/// Receives one batch, through the application's frame hooks when it has them.
fn receive_hooked<L: Link, A: App>(
    setup: &WorkerSetup,
    core: &mut CoreState,
    link: &mut L,
    app: &mut A,
    now: Instant,
) -> usize {
    if A::FRAME_HOOKS {
        receive(setup, core, &mut HookedLink { link, app }, now)
    } else {
        receive(setup, core, link, now)
    }
}

/// Transmits: first the raw frames of [`Io::send_frame`] (dropped when no TX frame is
/// free), then the stack's segments, through the frame hooks when the application has them.
fn flush_hooked<L: Link, A: App>(core: &mut CoreState, link: &mut L, app: &mut A, now: Instant) {
    let mut at = 0;
    for &n in &core.raw_lens {
        let frame = &core.raw[at..at + n];
        at += n;
        link.transmit(|buf| {
            buf[..n].copy_from_slice(frame);
            n
        });
    }
    core.raw.clear();
    core.raw_lens.clear();
    if let Some(v6) = core.v6.as_deref_mut() {
        if A::FRAME_HOOKS {
            v6.stack
                .flush(now, &mut NoKick(&mut HookedLink { link, app }));
        } else {
            v6.stack.flush(now, &mut NoKick(link));
        }
    }
    if A::FRAME_HOOKS {
        core.stack.flush(now, &mut HookedLink { link, app });
    } else {
        core.stack.flush(now, link);
    }
}

/// The first address of the synthetic TIME-WAIT peers: 198.18.0.0/15 (RFC 2544 benchmark
/// space), 2^17 addresses.
const PREFILL_NET: u32 = u32::from_be_bytes([198, 18, 0, 0]);
const PREFILL_ADDRS: u64 = 1 << 17;

/// The remote end of synthetic TIME-WAIT entry `i` (over all queues): address
/// `198.18.0.0 + i mod 2^17`, port `1024 + i / 2^17`. Distinct for every `i` below
/// 2^17 × 64,512 (≈ 8.4 G).
pub(crate) fn prefill_peer(i: u64) -> SocketAddrV4 {
    let ip = PREFILL_NET + (i % PREFILL_ADDRS) as u32;
    let port = 1024 + (i / PREFILL_ADDRS) as u16;
    SocketAddrV4::new(ip.into(), port)
}

/// Inserts this queue's share of the synthetic TIME-WAIT entries (entries `queue`,
/// `queue + queues`, ... below `total`, capped at the table's capacity), against the first
/// listening address. Returns how many were inserted.
fn prefill_time_wait(stack: &mut Stack, s: &WorkerSetup, now: Instant) -> u64 {
    let Some(local) = s.listen.first() else {
        return 0;
    };
    let queues = u64::from(s.queues.max(1));
    let share = s
        .prefill_time_wait
        .saturating_sub(u64::from(s.queue))
        .div_ceil(queues);
    let share = share.min(stack.time_wait_table().capacity() as u64);
    for k in 0..share {
        let peer = prefill_peer(u64::from(s.queue) + k * queues);
        let tuple = FourTuple {
            local_addr: *local.ip(),
            remote_addr: *peer.ip(),
            local_port: local.port(),
            remote_port: peer.port(),
        };
        // Sequence numbers and timestamps as a finished connection might leave them.
        let seq = (k as u32).wrapping_mul(2_654_435_761);
        stack.insert_time_wait(
            now,
            TimeWaitInit {
                tuple,
                snd_nxt: SeqNumber(seq),
                rcv_nxt: SeqNumber(seq ^ 0x5555_5555),
                ts_recent: Some(seq >> 1),
                rcv_wnd: 65535,
                rcv_wscale: 7,
            },
        );
    }
    share
}

fn clock(epoch: StdInstant) -> Instant {
    Instant::from_micros(epoch.elapsed().as_micros() as u64)
}

/// Loop counters that go into a snapshot.
#[derive(Debug, Clone, Copy, Default)]
struct LoopCounts {
    loops: u64,
    waits: u64,
    busy_ns: u64,
    loop_ns: u64,
    wait_ns: u64,
}

fn snapshot(s: &WorkerSetup, core: &CoreState, link: &XskLink, n: &LoopCounts) -> CoreStats {
    let LoopCounts {
        loops,
        waits,
        busy_ns,
        loop_ns,
        wait_ns,
    } = *n;
    let ipv6 = core.v6.as_deref().map(|v6| Ipv6Stats {
        counters: v6.stack.counters(),
        connections: v6.stack.connection_count() as u64,
    });
    let mut counters = core.stack.counters();
    let mut neighbor = core.resolver.stats();
    if let (Some(st), Some(v6)) = (&ipv6, core.v6.as_deref()) {
        add_counters(&mut counters, &st.counters);
        let r = v6.resolver.stats();
        neighbor.refreshes += r.refreshes;
        neighbor.changes += r.changes;
        neighbor.failures += r.failures;
    }
    CoreStats {
        queue: s.queue,
        core: s.cpu,
        counters,
        xsk: link.stats(),
        zero_copy: link.is_zero_copy(),
        connections: (core.stack.connection_count()
            + core
                .v6
                .as_deref()
                .map_or(0, |v6| v6.stack.connection_count())) as u64,
        time_wait_capacity: core.stack.time_wait_table().capacity() as u64,
        time_wait_reserved_bytes: core.stack.time_wait_table().memory_bytes() as u64,
        loops,
        idle_waits: waits,
        busy_ns,
        loop_ns,
        wait_ns,
        // Only in snapshots (a getsockopt), never per iteration.
        napi_id: busy_poll::incoming_napi_id(link.fd()).unwrap_or(0),
        handoff: core.handoff,
        neighbor,
        ipv6,
    }
}

/// Runs one core until `Stop` (or until the command channel closes). Returns the socket, for
/// the engine to free after detaching XDP, and the final counters.
pub(crate) fn run<A: App>(
    mut setup: WorkerSetup,
    link: XskLink,
    make_app: &(dyn Fn(u32) -> A + Send + Sync),
    commands: Receiver<Command<A>>,
    reports: Sender<Report>,
) -> (XskLink, CoreStats) {
    // Two instances of the loop: with capture off the socket is used directly, so the
    // capture costs nothing at all when off (not even a branch).
    match setup.capture.take() {
        None => run_on(setup, link, make_app, commands, reports),
        Some(pcap) => {
            let (link, stats) = run_on(
                setup,
                CaptureLink::new(link, Some(pcap)),
                make_app,
                commands,
                reports,
            );
            // Dropping the capture wrapper writes out its last batch.
            (link.into_inner(), stats)
        }
    }
}

/// The socket under the link a core polls: the AF_XDP socket itself, or the socket inside
/// the capture wrapper.
pub(crate) trait CoreLink: Link {
    fn xsk(&self) -> &XskLink;
    fn xsk_mut(&mut self) -> &mut XskLink;
}

impl CoreLink for XskLink {
    fn xsk(&self) -> &XskLink {
        self
    }
    fn xsk_mut(&mut self) -> &mut XskLink {
        self
    }
}

impl CoreLink for CaptureLink<XskLink> {
    fn xsk(&self) -> &XskLink {
        self.inner()
    }
    fn xsk_mut(&mut self) -> &mut XskLink {
        self.inner_mut()
    }
}

/// Transparent huge pages for the stacks' large tables (TIME-WAIT ring and index, flow table,
/// slab), advised before they fill: a random probe of a 10 M-entry TIME-WAIT index then costs a
/// cache miss without a page walk (docs/lifecycle-cost.md). Advice only: where the kernel has no
/// transparent huge pages the tables stay on 4 KiB pages, said once (queue 0).
fn advise_huge_pages(core: &CoreState, queue: u32) {
    let mut regions = core.stack.large_regions();
    if let Some(v6) = &core.v6 {
        regions.extend(v6.stack.large_regions());
    }
    if let Err(e) = crate::mem::advise_huge_pages(&regions)
        && queue == 0
    {
        eprintln!("xtcp: huge pages for the stack's tables unavailable ({e}); using normal pages");
    }
}

fn run_on<A: App, L: CoreLink>(
    setup: WorkerSetup,
    mut link: L,
    make_app: &(dyn Fn(u32) -> A + Send + Sync),
    commands: Receiver<Command<A>>,
    reports: Sender<Report>,
) -> (L, CoreStats) {
    if let Some(id) = setup.cpu {
        // Failing to pin is not fatal (the CPU may be offline): the loop still works.
        core_affinity::set_for_current(core_affinity::CoreId { id });
    }
    let now = clock(setup.epoch);
    let mut core = CoreState::new(
        Stack::new(setup.stack.clone(), now),
        Resolver::new(&setup.iface),
        now,
        setup.queue,
        setup.queues,
        link.max_frame_len(),
    );
    let mut listeners: Vec<ListenerId> = Vec::with_capacity(setup.listen.len());
    for &addr in &setup.listen {
        match core.stack.listen(addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                let _ = reports.send(Report::Failed(setup.queue, format!("listen {addr}: {e}")));
                let stats = snapshot(&setup, &core, link.xsk(), &LoopCounts::default());
                return (link, stats);
            }
        }
    }
    if let Some(cfg6) = &setup.stack6 {
        let mut v6 = Box::new(Core6 {
            stack: Stack::new_v6(cfg6.clone(), now),
            resolver: Resolver::new(&setup.iface),
            listeners: Vec::with_capacity(setup.listen6.len()),
        });
        for &addr in &setup.listen6 {
            match v6.stack.listen(addr) {
                Ok(l) => v6.listeners.push(l),
                Err(e) => {
                    let _ =
                        reports.send(Report::Failed(setup.queue, format!("listen {addr}: {e}")));
                    let stats = snapshot(&setup, &core, link.xsk(), &LoopCounts::default());
                    return (link, stats);
                }
            }
        }
        core.v6 = Some(v6);
    }
    advise_huge_pages(&core, setup.queue);
    if setup.prefill_time_wait > 0 {
        let n = prefill_time_wait(&mut core.stack, &setup, clock(setup.epoch));
        eprintln!(
            "xtcp: queue {}: prefilled {n} synthetic TIME-WAIT entries (198.18.0.0/15, for benchmarks)",
            setup.queue
        );
    }
    let mut app = make_app(setup.queue);
    app.on_start(&mut Io { core: &mut core });
    let _ = reports.send(Report::Ready);

    let mut failed = Vec::new();
    let mut n = LoopCounts::default();
    let mut idle = 0u32;
    let mut next_snapshot = now;
    let mut stop_reported = false;
    let prefer_busy = matches!(setup.poll, PollMode::PreferBusy(_));
    let mut prev_ns = setup.epoch.elapsed().as_nanos() as u64;
    let mut prev_busy = false;
    loop {
        let ns = setup.epoch.elapsed().as_nanos() as u64;
        let now = Instant::from_micros(ns / 1000);
        let spent = ns.saturating_sub(prev_ns);
        n.loop_ns += spent;
        if prev_busy {
            n.busy_ns += spent;
        }
        prev_ns = ns;
        core.now = now;
        core.wake = None;
        n.loops += 1;
        if prefer_busy {
            // Run the device's receive NAPI here; errors other than "nothing to do" are
            // not expected and would only mean frames arrive through the softirq path.
            let _ = busy_poll::drive(link.xsk().fd());
        }
        // Receive and run timers first, let the application react, then transmit once: its
        // replies ride on the ACKs the received segments owe (one segment instead of two).
        let mut busy = receive_hooked(&setup, &mut core, &mut link, &mut app, now) > 0;

        for &l in &listeners {
            while let Some(h) = core.stack.accept(l) {
                core.track(h);
                app.on_event(&mut Io { core: &mut core }, AppEvent::Accepted(h));
                busy = true;
            }
        }
        busy |= deliver_events(&mut app, &mut core);
        if core.v6.is_some() {
            busy |= accept_and_deliver_v6(&mut app, &mut core);
        }
        app.on_tick(&mut Io { core: &mut core });
        core.resolver.poll(&mut core.stack, now, &mut failed);
        if let Some(v6) = core.v6.as_deref_mut() {
            let at = failed.len();
            v6.resolver.poll(&mut v6.stack, now, &mut failed);
            for h in &mut failed[at..] {
                *h = h.shifted(core.base6);
            }
        }
        if !failed.is_empty() {
            for h in failed.drain(..) {
                let _ = Io { core: &mut core }.abort(h);
                core.untrack(h);
                app.on_event(&mut Io { core: &mut core }, AppEvent::TimedOut(h));
            }
        }
        if !core.raw_lens.is_empty() || core.poll_at().is_some_and(|t| t <= now) {
            flush_hooked(&mut core, &mut link, &mut app, now);
            busy = true;
        }

        match commands.try_recv() {
            Ok(Command::Call(f)) => {
                f(&mut app, &mut Io { core: &mut core });
                flush_hooked(&mut core, &mut link, &mut app, now);
            }
            Ok(Command::Stop) | Err(TryRecvError::Disconnected) => break,
            Err(TryRecvError::Empty) => {}
        }
        if now >= next_snapshot {
            next_snapshot = now + SNAPSHOT_INTERVAL;
            // A full channel means the engine is not reading: dropping a snapshot is fine.
            let _ = reports.try_send(Report::Stats(Box::new(snapshot(
                &setup,
                &core,
                link.xsk(),
                &n,
            ))));
        }
        if core.stop_requested && !stop_reported {
            stop_reported = true;
            let _ = reports.send(Report::StopRequested);
        }

        prev_busy = busy;
        if busy {
            idle = 0;
        } else if setup.poll == PollMode::Idle {
            idle = idle.saturating_add(1);
            let handed = setup
                .hub
                .as_ref()
                .is_some_and(|h| h.has_pending(setup.queue));
            let resolving = !core.resolver.is_idle()
                || core.v6.as_deref().is_some_and(|v6| !v6.resolver.is_idle());
            if idle >= setup.idle_spins && !resolving && !handed {
                idle_wait(&setup, &core, &mut link, &mut n, now);
            }
        }
    }

    drain(&setup, &mut core, &mut link);
    let stats = snapshot(&setup, &core, link.xsk(), &n);
    (link, stats)
}

/// Idle mode: waits on the socket, no later than the next timer (the wheel ticks in
/// milliseconds) and at most `idle_wait`; the time waited is counted in `wait_ns`. An
/// application deadline ([`Io::wake_at`]) that comes first ends the wait with microsecond
/// resolution, [`APP_WAKE_SPIN`] early.
fn idle_wait<L: CoreLink>(
    setup: &WorkerSetup,
    core: &CoreState,
    link: &mut L,
    n: &mut LoopCounts,
    now: Instant,
) {
    let until = core
        .poll_at()
        .map_or(setup.idle_wait, |t| t.saturating_since(now))
        .min(setup.idle_wait);
    let before = setup.epoch.elapsed().as_nanos() as u64;
    match core.wake.map(|w| w.saturating_since(now)) {
        Some(app) if app < until => {
            if app <= APP_WAKE_SPIN {
                return;
            }
            n.waits += 1;
            let _ = super::sys::wait_readable(link.xsk().fd(), app - APP_WAKE_SPIN);
        }
        _ => {
            let ms = until.as_millis() as i32;
            if ms == 0 {
                return;
            }
            n.waits += 1;
            let _ = link.xsk_mut().wait_readable(ms);
        }
    }
    n.wait_ns += (setup.epoch.elapsed().as_nanos() as u64).saturating_sub(before);
}

/// How long before an application deadline an idle wait ends: the rest is spun, since a
/// timed sleep overshoots by tens of microseconds on a VM.
const APP_WAKE_SPIN: Duration = Duration::from_micros(30);

/// Hands every pending stack event to the application. Returns whether there were any.
fn deliver_events<A: App>(app: &mut A, core: &mut CoreState) -> bool {
    let mut any = false;
    while let Some((h, e)) = core.stack.poll_event() {
        any = true;
        let ev = match e {
            Event::Connected => {
                // Passive connections were announced as `Accepted` already.
                if core.stack.connection(h).is_some_and(|c| c.is_passive()) {
                    continue;
                }
                AppEvent::Connected(h)
            }
            Event::Readable => AppEvent::Readable(h),
            Event::Writable => AppEvent::Writable(h),
            Event::PeerClosed => AppEvent::PeerClosed(h),
            Event::Closed => AppEvent::Closed(h),
            Event::Reset => AppEvent::Reset(h),
            Event::TimedOut => AppEvent::TimedOut(h),
        };
        if matches!(
            ev,
            AppEvent::Closed(_) | AppEvent::Reset(_) | AppEvent::TimedOut(_)
        ) {
            core.untrack(h);
        }
        app.on_event(&mut Io { core }, ev);
    }
    any
}

/// A dual-stack core's IPv6 half: accepts on its listeners, then hands every event of its
/// stack to the application, with handles shifted into the application's numbering
/// ([`CoreState::base6`]). Returns whether there was anything.
fn accept_and_deliver_v6<A: App>(app: &mut A, core: &mut CoreState) -> bool {
    let mut any = false;
    let n = core.v6.as_deref().map_or(0, |v6| v6.listeners.len());
    for i in 0..n {
        loop {
            let Some(v6) = core.v6.as_deref_mut() else {
                return any;
            };
            let l = v6.listeners[i];
            let Some(h) = v6.stack.accept(l) else {
                break;
            };
            let h = core.app_handle6(h);
            core.track(h);
            app.on_event(&mut Io { core: &mut *core }, AppEvent::Accepted(h));
            any = true;
        }
    }
    loop {
        let Some(v6) = core.v6.as_deref_mut() else {
            return any;
        };
        let Some((h, e)) = v6.stack.poll_event() else {
            return any;
        };
        any = true;
        let passive = v6.stack.connection(h).is_some_and(|c| c.is_passive());
        let h = core.app_handle6(h);
        if let Some(ev) = app_event(h, e, passive) {
            if matches!(
                ev,
                AppEvent::Closed(_) | AppEvent::Reset(_) | AppEvent::TimedOut(_)
            ) {
                core.untrack(h);
            }
            app.on_event(&mut Io { core: &mut *core }, ev);
        }
    }
}

/// The application's event for stack event `e` of connection `h` (`None` for the
/// `Connected` of a passive open, announced as `Accepted` already).
fn app_event(h: ConnHandle, e: Event, passive: bool) -> Option<AppEvent> {
    Some(match e {
        Event::Connected if passive => return None,
        Event::Connected => AppEvent::Connected(h),
        Event::Readable => AppEvent::Readable(h),
        Event::Writable => AppEvent::Writable(h),
        Event::PeerClosed => AppEvent::PeerClosed(h),
        Event::Closed => AppEvent::Closed(h),
        Event::Reset => AppEvent::Reset(h),
        Event::TimedOut => AppEvent::TimedOut(h),
    })
}

/// The shutdown drain (see the module docs).
fn drain<L: CoreLink>(setup: &WorkerSetup, core: &mut CoreState, link: &mut L) {
    let handles: Vec<_> = core.live.iter().flatten().copied().collect();
    let (fin, drain_for) = match setup.shutdown {
        ShutdownPolicy::Fin { drain } => (true, drain),
        ShutdownPolicy::Rst => (false, Duration::from_millis(100)),
    };
    let end_all = |core: &mut CoreState, fin: bool| {
        for &h in &handles {
            let mut io = Io { core: &mut *core };
            let _ = if fin { io.close(h) } else { io.abort(h) };
        }
    };
    end_all(core, fin);
    let start = clock(setup.epoch);
    let mut reset_rest = false;
    loop {
        let now = clock(setup.epoch);
        // As `Stack::poll`, with the handoff queues: the last ACKs of our closes may arrive
        // on another core's queue.
        receive(setup, core, link, now);
        flush_both(core, link, now);
        while core.stack.poll_event().is_some() {}
        let mut done = core.stack.connection_count() == 0;
        if let Some(v6) = core.v6.as_deref_mut() {
            while v6.stack.poll_event().is_some() {}
            done &= v6.stack.connection_count() == 0;
        }
        if done && link.xsk().tx_in_flight() == 0 {
            break;
        }
        if now.saturating_since(start) >= drain_for {
            if reset_rest || done {
                break;
            }
            // Out of time: reset whatever is left, and give the RSTs a moment to leave.
            reset_rest = true;
            end_all(core, false);
            flush_both(core, link, now);
        }
        std::hint::spin_loop();
    }
}

/// Transmits both stacks' segments (the IPv6 stack's first, without its own TX kick).
fn flush_both<L: Link>(core: &mut CoreState, link: &mut L, now: Instant) {
    if let Some(v6) = core.v6.as_deref_mut() {
        v6.stack.flush(now, &mut NoKick(link));
    }
    core.stack.flush(now, link);
}

#[cfg(test)]
#[path = "worker_tests.rs"]
mod tests;
