//! [`SimCore`]: any engine [`App`] (callback or [`RtApp`](super::RtApp)) on the deterministic
//! simulator, called the way an engine core calls it, so `xtcp::rt` and applications built on
//! it are tested and measured without AF_XDP, root or a clock.

use std::net::SocketAddrV4;

use crate::engine::app::CoreState;
use crate::engine::neighbor::Resolver;
use crate::engine::{App, AppEvent, Io};
use crate::link::memory::MemoryLink;
use crate::sim::Host;
use crate::stack::{ListenerId, Stack, StackError};
use crate::tcp::Event;
use crate::time::Instant;

/// One simulated engine core: a stack, its listeners, and an application.
///
/// Each [`Host::poll`] is one engine loop iteration (see `engine::worker`): receive and run
/// timers; announce accepted connections (`Accepted`), then every stack event; `on_tick`;
/// transmit. `on_start` runs at the first poll. Active opens (`Io::connect`) need the peer's
/// MAC in the stack's neighbour table (the simulator has no kernel to ask). As on the
/// engine, at most one [`RtApp`](super::RtApp) may exist per thread at a time.
pub struct SimCore<A: App> {
    core: CoreState,
    listeners: Vec<ListenerId>,
    app: A,
    started: bool,
}

impl<A: App> SimCore<A> {
    /// A core over `stack`, listening on `listen`, running `app`.
    pub fn new(mut stack: Stack, listen: &[SocketAddrV4], app: A) -> Result<Self, StackError> {
        let listeners = listen
            .iter()
            .map(|&a| stack.listen(a))
            .collect::<Result<Vec<_>, _>>()?;
        let now = Instant::ZERO;
        Ok(SimCore {
            core: CoreState::new(stack, Resolver::new("sim"), now, 0, 1, 1514),
            listeners,
            app,
            started: false,
        })
    }

    /// The application.
    pub fn app(&mut self) -> &mut A {
        &mut self.app
    }

    /// The stack.
    pub fn stack(&self) -> &Stack {
        &self.core.stack
    }

    /// Whether the application asked the engine to stop.
    pub fn stop_requested(&self) -> bool {
        self.core.stop_requested
    }
}

impl<A: App> Host for SimCore<A> {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.core.now = now;
        if !self.started {
            self.started = true;
            self.app.on_start(&mut Io {
                core: &mut self.core,
            });
        }
        self.core.stack.receive(now, link);
        for &l in &self.listeners {
            while let Some(h) = self.core.stack.accept(l) {
                self.core.track(h);
                self.app.on_event(
                    &mut Io {
                        core: &mut self.core,
                    },
                    AppEvent::Accepted(h),
                );
            }
        }
        while let Some((h, e)) = self.core.stack.poll_event() {
            let ev = match e {
                Event::Connected
                    if self
                        .core
                        .stack
                        .connection(h)
                        .is_some_and(|c| c.is_passive()) =>
                {
                    continue;
                }
                Event::Connected => AppEvent::Connected(h),
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
                self.core.untrack(h);
            }
            self.app.on_event(
                &mut Io {
                    core: &mut self.core,
                },
                ev,
            );
        }
        self.app.on_tick(&mut Io {
            core: &mut self.core,
        });
        self.core.stack.flush(now, link);
    }

    fn poll_at(&self) -> Option<Instant> {
        if self.started {
            self.core.stack.poll_at()
        } else {
            Some(Instant::ZERO)
        }
    }
}
