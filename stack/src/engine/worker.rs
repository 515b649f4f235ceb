//! One core's polling loop: its AF_XDP socket, its stack, its application instance.
//!
//! # One iteration
//! 1. read the clock (once: every packet of the iteration shares `now`);
//! 2. `Stack::poll`: receive a batch, run due timers, transmit, flush;
//! 3. accept every new connection, then hand every event to the application;
//! 4. `App::on_tick`; progress pending next-hop resolutions;
//! 5. transmit what the callbacks queued (`Stack::flush`: one TX kick);
//! 6. every few iterations' worth of time: control commands and a counter snapshot
//!    (channels, never per packet);
//! 7. when idle and busy polling is off, after `idle_spins` empty iterations, wait for the
//!    socket to become readable (bounded by `idle_wait`).
//!
//! # Shutdown
//! On [`Command::Stop`]: every connection the application holds gets FIN (`close`, which
//! aborts those with unread bytes) or RST, per [`ShutdownPolicy`]; the loop keeps polling,
//! without calling the application, until the table is empty and TX has completed, or the
//! drain time is up (then the rest are reset). The socket is handed back to the engine,
//! which detaches the XDP program before the socket is freed.

use std::net::SocketAddrV4;
use std::time::Instant as StdInstant;

use crossbeam_channel::{Receiver, Sender, TryRecvError};

use super::ShutdownPolicy;
use super::app::{App, AppEvent, CoreState, Io};
use super::neighbor::Resolver;
use super::stats::{CoreStats, SNAPSHOT_INTERVAL};
use crate::afxdp::XskLink;
use crate::capture::{CaptureLink, PcapFile};
use crate::link::Link;
use crate::stack::{ListenerId, Stack, StackConfig};
use crate::tcp::Event;
use crate::time::{Duration, Instant};

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
    pub busy_poll: bool,
    pub idle_spins: u32,
    pub idle_wait: Duration,
    pub shutdown: ShutdownPolicy,
    pub epoch: StdInstant,
    /// This queue's capture file ([`super::EngineConfig::capture`]).
    pub capture: Option<PcapFile>,
}

fn clock(epoch: StdInstant) -> Instant {
    Instant::from_micros(epoch.elapsed().as_micros() as u64)
}

fn snapshot(
    s: &WorkerSetup,
    core: &CoreState,
    link: &XskLink,
    loops: u64,
    waits: u64,
) -> CoreStats {
    CoreStats {
        queue: s.queue,
        core: s.cpu,
        counters: core.stack.counters(),
        xsk: link.stats(),
        zero_copy: link.is_zero_copy(),
        connections: core.stack.connection_count() as u64,
        loops,
        idle_waits: waits,
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
    let mut core = CoreState {
        stack: Stack::new(setup.stack.clone(), now),
        resolver: Resolver::new(&setup.iface),
        now,
        queue: setup.queue,
        queues: setup.queues,
        live: Vec::new(),
        stop_requested: false,
    };
    let mut listeners: Vec<ListenerId> = Vec::with_capacity(setup.listen.len());
    for &addr in &setup.listen {
        match core.stack.listen(addr) {
            Ok(l) => listeners.push(l),
            Err(e) => {
                let _ = reports.send(Report::Failed(setup.queue, format!("listen {addr}: {e}")));
                let stats = snapshot(&setup, &core, link.xsk(), 0, 0);
                return (link, stats);
            }
        }
    }
    let mut app = make_app(setup.queue);
    app.on_start(&mut Io { core: &mut core });
    let _ = reports.send(Report::Ready);

    let mut failed = Vec::new();
    let (mut loops, mut waits, mut idle) = (0u64, 0u64, 0u32);
    let mut next_snapshot = now;
    let mut stop_reported = false;
    loop {
        let now = clock(setup.epoch);
        core.now = now;
        loops += 1;
        // Receive and run timers first, let the application react, then transmit once: its
        // replies ride on the ACKs the received segments owe (one segment instead of two).
        let mut busy = core.stack.receive(now, &mut link) > 0;

        for &l in &listeners {
            while let Some(h) = core.stack.accept(l) {
                core.track(h);
                app.on_event(&mut Io { core: &mut core }, AppEvent::Accepted(h));
                busy = true;
            }
        }
        busy |= deliver_events(&mut app, &mut core);
        app.on_tick(&mut Io { core: &mut core });
        if !core.resolver.is_idle() {
            core.resolver.poll(&mut core.stack, now, &mut failed);
            for h in failed.drain(..) {
                let _ = core.stack.abort(h);
                core.untrack(h);
                app.on_event(&mut Io { core: &mut core }, AppEvent::TimedOut(h));
            }
        }
        if core.stack.poll_at().is_some_and(|t| t <= now) {
            core.stack.flush(now, &mut link);
            busy = true;
        }

        match commands.try_recv() {
            Ok(Command::Call(f)) => {
                f(&mut app, &mut Io { core: &mut core });
                core.stack.flush(now, &mut link);
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
                loops,
                waits,
            ))));
        }
        if core.stop_requested && !stop_reported {
            stop_reported = true;
            let _ = reports.send(Report::StopRequested);
        }

        if busy {
            idle = 0;
        } else if !setup.busy_poll {
            idle = idle.saturating_add(1);
            if idle >= setup.idle_spins && core.resolver.is_idle() {
                // Sleep no later than the next timer (the wheel ticks in milliseconds).
                let until = core
                    .stack
                    .poll_at()
                    .map_or(setup.idle_wait, |t| t.saturating_since(now))
                    .min(setup.idle_wait);
                let ms = until.as_millis() as i32;
                if ms > 0 {
                    waits += 1;
                    let _ = link.xsk_mut().wait_readable(ms);
                }
            }
        }
    }

    drain(&setup, &mut core, &mut link);
    let stats = snapshot(&setup, &core, link.xsk(), loops, waits);
    (link, stats)
}

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

/// The shutdown drain (see the module docs).
fn drain<L: CoreLink>(setup: &WorkerSetup, core: &mut CoreState, link: &mut L) {
    let handles: Vec<_> = core.live.iter().flatten().copied().collect();
    let (fin, drain_for) = match setup.shutdown {
        ShutdownPolicy::Fin { drain } => (true, drain),
        ShutdownPolicy::Rst => (false, Duration::from_millis(100)),
    };
    for &h in &handles {
        let _ = if fin {
            core.stack.close(h)
        } else {
            core.stack.abort(h)
        };
    }
    let start = clock(setup.epoch);
    let mut reset_rest = false;
    loop {
        let now = clock(setup.epoch);
        core.stack.poll(now, link);
        while core.stack.poll_event().is_some() {}
        let done = core.stack.connection_count() == 0;
        if done && link.xsk().tx_in_flight() == 0 {
            break;
        }
        if now.saturating_since(start) >= drain_for {
            if reset_rest || done {
                break;
            }
            // Out of time: reset whatever is left, and give the RSTs a moment to leave.
            reset_rest = true;
            for &h in &handles {
                let _ = core.stack.abort(h);
            }
            core.stack.flush(now, link);
        }
        std::hint::spin_loop();
    }
}
