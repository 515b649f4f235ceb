//! An echo server on the xtcp engine: every byte received is sent back, half-close honoured
//! (after the peer's FIN, the rest is echoed and then the connection closes).
//!
//! ```text
//! echo --iface IFACE --ip A.B.C.D --port P [--queues N] [--xdp-mode auto|native|skb]
//!      [--cores LIST] [--stats FILE] [--stats-interval-ms MS]
//!      [--poll-mode prefer-busy|busy|idle] [--idle-spins N] [--prefill-time-wait N]
//!      [--pcap FILE]
//! ```
//!
//! (`xtcp::engine::cli`; `--help` lists every flag.) `RUST_LOG=xtcp=debug` prints state
//! transitions and drops with their reason on stderr.
//!
//! Backpressure: only what fits into the send buffer is taken from the receive buffer; the
//! rest stays unread, so the receive window closes until the peer reads its echo, and the
//! short send arms `Writable`, which resumes the echo.

use xtcp::ConnHandle;
use xtcp::engine::cli::{self, ServerArgs};
use xtcp::engine::{App, AppEvent, Engine, Io};

/// One core's echo server.
struct Echo {
    /// Copy buffer between the receive and send buffers (they are both inside the stack).
    buf: Vec<u8>,
    /// Per connection slot: the peer has sent FIN.
    peer_closed: Vec<bool>,
}

impl Echo {
    fn new() -> Echo {
        Echo {
            buf: vec![0; 64 * 1024],
            peer_closed: Vec::new(),
        }
    }

    fn set_peer_closed(&mut self, c: ConnHandle, v: bool) {
        let i = c.index();
        if self.peer_closed.len() <= i {
            self.peer_closed.resize(i + 1, false);
        }
        self.peer_closed[i] = v;
    }

    /// Echoes what fits; closes once the peer is done and everything was echoed.
    fn pump(&mut self, io: &mut Io<'_>, c: ConnHandle) {
        loop {
            let data = io.recv_slice(c);
            let n = data.len().min(self.buf.len());
            if n == 0 {
                break;
            }
            self.buf[..n].copy_from_slice(&data[..n]);
            // A short send (the send buffer is full) arms `Writable`, which resumes here.
            let sent = io.send(c, &self.buf[..n]).unwrap_or(0);
            io.consume(c, sent);
            if sent < n {
                break;
            }
        }
        let done = self.peer_closed.get(c.index()).copied().unwrap_or(false);
        if done && io.recv_queue(c) == 0 {
            self.set_peer_closed(c, false);
            let _ = io.close(c);
        }
    }
}

impl App for Echo {
    fn on_event(&mut self, io: &mut Io<'_>, ev: AppEvent) {
        match ev {
            AppEvent::Accepted(c) => self.set_peer_closed(c, false),
            AppEvent::Readable(c) | AppEvent::Writable(c) => self.pump(io, c),
            AppEvent::PeerClosed(c) => {
                self.set_peer_closed(c, true);
                self.pump(io, c);
            }
            AppEvent::Closed(c) | AppEvent::Reset(c) | AppEvent::TimedOut(c) => {
                self.set_peer_closed(c, false)
            }
            AppEvent::Connected(_) => {}
        }
    }
}

fn main() {
    let args = ServerArgs::from_env_or_exit();
    init_tracing();
    let engine = match Engine::start(args.engine_config(), |_queue| Echo::new()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::exit(1);
        }
    };
    println!("{}", cli::ready_line("echo", &args, engine.info()));
    match engine.run_until_signal() {
        Ok(stats) => {
            let t = stats.totals();
            eprintln!(
                "echo: stopped; {} connections accepted, {} rx frames, {} tx frames",
                t.passive_opens, t.rx_frames, t.tx_frames
            );
        }
        Err(e) => {
            eprintln!("echo: {e}");
            std::process::exit(1);
        }
    }
}

/// `RUST_LOG` filtering of xtcp's control-path events (e.g. `RUST_LOG=xtcp=debug`: state
/// transitions and drops with their reason), on stderr. Without `RUST_LOG`, errors only.
fn init_tracing() {
    #[cfg(feature = "trace")]
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}
