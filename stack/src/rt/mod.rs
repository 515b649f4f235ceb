//! `xtcp::rt`: async streams on the engine's cores.
//!
//! One executor per core, driven by that core's engine loop: [`RtApp`] is an
//! [`App`] that, on each loop iteration, turns the engine's events into wake-ups and then polls
//! the tasks that are ready. Tasks are `!Send` and stay on the core that spawned them
//! ([`spawn_local`]); [`TcpListener`] and [`TcpStream`] reach the core's stack directly, with
//! no channel and no cross-core wake-up on the data path. See `executor` for how wakers
//! satisfy `Send + Sync` without atomics on the per-packet path.
//!
//! Per iteration (see `engine::worker`): receive and run the TCP core; hand each event to
//! [`RtApp::on_event`], which only records it (wakes the stream's reader or writer, queues
//! an accepted connection); then [`RtApp::on_tick`] polls the ready tasks, whose writes go
//! out in the same iteration's transmit.
//!
//! ```no_run
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! use xtcp::engine::EngineConfig;
//! use xtcp::rt::{self, TcpListener};
//!
//! let mut cfg = EngineConfig::new("xt-a", "10.77.0.1".parse().unwrap());
//! cfg.ports = vec![7];
//! // Each core runs its own copy of this future, on its own thread.
//! rt::run(cfg, |_core| async {
//!     let listener = TcpListener::bind(([0, 0, 0, 0], 7)).unwrap();
//!     loop {
//!         let Ok((mut stream, _peer)) = listener.accept().await else { break };
//!         rt::spawn_local(async move {
//!             let mut buf = [0u8; 4096];
//!             while let Ok(n @ 1..) = stream.read(&mut buf).await {
//!                 if stream.write_all(&buf[..n]).await.is_err() {
//!                     return;
//!                 }
//!             }
//!             let _ = stream.shutdown().await; // half-close after the echo
//!         });
//!     }
//! })
//! .expect("engine");
//! ```
//!
//! Shutdown: [`run`] returns after SIGINT/SIGTERM (or [`stop_engine`]) once the engine has
//! closed the connections, as for callback applications; the tasks are dropped with the
//! core's `RtApp`.

mod executor;
mod net;
mod sim_host;
#[cfg(test)]
mod tests;

use std::future::Future;
use std::pin::Pin;

pub use executor::spawn_local;
pub use net::{TcpListener, TcpStream};
pub use sim_host::SimCore;

use crate::engine::{App, AppEvent, Engine, EngineConfig, EngineError, EngineStats, Io};
use executor::Executor;

/// Rounds of ready tasks polled per engine loop iteration; tasks still ready after them run
/// in the next iteration, so a chain of wake-ups cannot starve the packet path.
const ROUNDS_PER_TICK: usize = 16;

type Root = Pin<Box<dyn Future<Output = ()>>>;

/// The [`App`] that runs one core's executor. Built by [`start`] / [`run`]; usable directly
/// with [`Engine::start`] as `|core| RtApp::new(main(core))`.
pub struct RtApp {
    exec: Executor,
    root: Option<Root>,
}

impl RtApp {
    /// An executor whose first task is `root`. Call on the core's thread (the engine's
    /// factory runs there).
    pub fn new(root: impl Future<Output = ()> + 'static) -> RtApp {
        RtApp {
            exec: Executor::new(),
            root: Some(Box::pin(root)),
        }
    }

    /// Tasks not yet finished on this core.
    pub fn tasks(&self) -> usize {
        self.exec.live()
    }
}

impl App for RtApp {
    fn on_start(&mut self, io: &mut Io<'_>) {
        if let Some(root) = self.root.take() {
            self.exec.spawn(root);
        }
        net::lend_io(io, || self.exec.run_ready(ROUNDS_PER_TICK));
    }

    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        net::dispatch(io, ev);
    }

    fn on_tick(&mut self, io: &mut Io<'_>) {
        net::lend_io(io, || self.exec.run_ready(ROUNDS_PER_TICK));
    }
}

impl Drop for RtApp {
    fn drop(&mut self) {
        // Tasks first (their streams unregister), then whatever the reactor still holds.
        self.root = None;
        self.exec.clear();
        net::reset_reactor();
    }
}

/// Starts the engine with one executor per core, each running `main(core)` as its first
/// task. `main` runs on each core's thread, so the future need not be `Send`.
pub fn start<F, Fut>(cfg: EngineConfig, main: F) -> Result<Engine<RtApp>, EngineError>
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    Engine::start(cfg, move |core| RtApp::new(main(core)))
}

/// [`start`], then [`Engine::run_until_signal`]: returns after SIGINT/SIGTERM (or
/// [`stop_engine`]) with the engine's final counters.
pub fn run<F, Fut>(cfg: EngineConfig, main: F) -> Result<EngineStats, EngineError>
where
    F: Fn(u32) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + 'static,
{
    start(cfg, main)?.run_until_signal()
}

/// Asks the whole engine to shut down, from a task (as [`Io::stop_engine`]).
///
/// # Panics
/// Outside a task on an `xtcp::rt` core.
pub fn stop_engine() {
    net::with_core_io(|io| io.stop_engine());
}

/// The engine's time of the current loop iteration, from a task.
///
/// # Panics
/// Outside a task on an `xtcp::rt` core.
pub fn now() -> crate::time::Instant {
    net::with_core_io(|io| io.now())
}
