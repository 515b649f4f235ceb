//! Rigs for the criterion micro-benchmarks of the xtcp core (see `benches/`): a server-side
//! [`Stack`] over an in-memory link, driven by crafted client frames.
//!
//! The client is not a stack: [`ServerRig`] writes each client segment with the wire
//! emitter and reads the server's replies with the wire parser. Only the server's work is
//! timed ([`ServerRig::churn`] returns the time spent inside `Stack` calls), so the numbers
//! are the server-side cost of a connection: parsing, lookups, state, timers, emitting and
//! checksumming its segments, the application calls (accept, events, close).
//!
//! Time is the calling thread's CPU time ([`thread_cpu_time`]), not wall time: the benches
//! share a 2-core machine with other busy processes, and CPU time leaves out the periods the
//! thread spends descheduled (cache disturbance by the other processes still shows).
//!
//! One lifecycle is the six segments SYN → SYN-ACK → ACK → FIN → FIN+ACK → ACK: the client
//! opens, closes at once, the server closes on the client's FIN (its FIN rides on the ACK of
//! the client's FIN because the application reacts between [`Stack::receive`] and
//! [`Stack::flush`]), and the client's last ACK frees the server's connection. The client
//! holds TIME-WAIT, as a client that closes first does; the server's TIME-WAIT table is
//! preloaded ([`ServerRig::preload_time_wait`]) to measure lookups against a full table.

use std::net::SocketAddrV4;

use xtcp::link::Link;
use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig, SynCookieMode};
use xtcp::tcp::time_wait::TimeWaitInit;
use xtcp::tcp::{Event, FourTuple};
use xtcp::time::{Duration, Instant};
use xtcp::wire::{
    EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp, emit_tcp_frame,
    parse_tcp_frame,
};

pub const SERVER_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
pub const SERVER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 1]);
pub const CLIENT_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 2]);
pub const PORT: u16 = 80;

/// The calling thread's CPU time (`CLOCK_THREAD_CPUTIME_ID`), for timing server calls.
pub fn thread_cpu_time() -> std::time::Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `ts` is a valid, writable timespec; the clock id is a constant the kernel
    // supports for every thread.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID)");
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// What an empty [`timed`] region measures: the part of the two clock reads that falls
/// inside the region (a system call each in a VM: hundreds of ns). Calibrated once.
pub fn clock_overhead() -> std::time::Duration {
    static OVERHEAD: std::sync::OnceLock<std::time::Duration> = std::sync::OnceLock::new();
    *OVERHEAD.get_or_init(|| {
        // The median of many empty regions: robust to the odd preemption.
        let mut samples: Vec<std::time::Duration> = (0..20_001)
            .map(|_| {
                let t = thread_cpu_time();
                thread_cpu_time().saturating_sub(t)
            })
            .collect();
        samples.sort_unstable();
        samples[samples.len() / 2]
    })
}

/// Times `f` in thread CPU time, less the clock's own overhead, adding to `spent`.
#[inline]
pub fn timed<R>(spent: &mut std::time::Duration, f: impl FnOnce() -> R) -> R {
    let overhead = clock_overhead();
    let t = thread_cpu_time();
    let r = f();
    *spent += thread_cpu_time().saturating_sub(t).saturating_sub(overhead);
    r
}

/// Options of the rig.
#[derive(Debug, Clone, Copy)]
pub struct RigConfig {
    /// Live connections the server may hold.
    pub max_connections: usize,
    /// TIME-WAIT table capacity.
    pub time_wait_capacity: usize,
    /// Client SYNs carry timestamps, window scale and SACK-permitted like Linux's.
    pub client_options: bool,
    pub syn_cookies: SynCookieMode,
    /// Advise transparent huge pages over the server's large tables
    /// ([`xtcp::mem::advise_huge_pages`]), as the engine does.
    pub huge_pages: bool,
}

impl Default for RigConfig {
    fn default() -> Self {
        RigConfig {
            max_connections: 65_536,
            time_wait_capacity: 1 << 20,
            client_options: true,
            syn_cookies: SynCookieMode::WhenFull,
            huge_pages: true,
        }
    }
}

/// One client connection's sequence state, as far as the crafted segments need it.
#[derive(Debug, Clone, Copy)]
struct ClientConn {
    port: u16,
    ip: Ipv4Addr,
    isn: u32,
    server_isn: u32,
    server_tsval: u32,
}

/// A server [`Stack`] with one listener, its link, and a frame crafter for clients.
pub struct ServerRig {
    pub server: Stack,
    pub link: MemoryLink,
    pub listener: ListenerId,
    pub now: Instant,
    cfg: RigConfig,
    /// Next client number: client `k` is `11.x.y.z:port` derived from `k`, never reused.
    next_client: u64,
    batch: Vec<ClientConn>,
    frame: Vec<u8>,
    /// Frames handed to the server (for checks).
    pub frames_in: u64,
    /// Frames read back from the server.
    pub frames_out: u64,
    pub lifecycles: u64,
}

fn client_endpoint(k: u64) -> (Ipv4Addr, u16) {
    let ip = 0x0b00_0000u32 | ((k >> 15) as u32 & 0x00ff_ffff);
    (Ipv4Addr::from(ip), 10_000 + (k & 0x7fff) as u16)
}

impl ServerRig {
    pub fn new(cfg: RigConfig) -> ServerRig {
        let scfg = StackConfig {
            mac: SERVER_MAC,
            ips: vec![SERVER_IP],
            max_connections: cfg.max_connections,
            max_syn_recv: 65_536,
            time_wait_capacity: cfg.time_wait_capacity,
            syn_backlog: 65_536,
            accept_backlog: 65_536,
            syn_cookies: cfg.syn_cookies,
            arp: false,
            secret: *b"xtcp-bench-secret-32-bytes-long!",
            ..StackConfig::default()
        };
        let now = Instant::from_secs(1);
        let mut server = Stack::new(scfg, now);
        if cfg.huge_pages {
            // Before anything is written, so that the tables fault in as huge pages. A kernel
            // without transparent huge pages refuses: the rig runs on 4 KiB pages then.
            let _ = xtcp::mem::advise_huge_pages(&server.large_regions());
        }
        server.add_neighbor(Ipv4Addr::new(11, 0, 0, 0), CLIENT_MAC);
        let listener = server
            .listen(SocketAddrV4::new(SERVER_IP, PORT))
            .expect("listen");
        let link = MemoryLink::new(MemoryLinkConfig {
            max_frame_len: 1514,
            rx_frames: 4096,
            tx_frames: 4096,
        });
        ServerRig {
            server,
            link,
            listener,
            now,
            cfg,
            next_client: 0,
            batch: Vec::with_capacity(4096),
            frame: vec![0u8; 1514],
            frames_in: 0,
            frames_out: 0,
            lifecycles: 0,
        }
    }

    /// A rig whose TIME-WAIT table holds `tw` entries (capacity at least 64 Ki), warmed by
    /// 64 rounds of 64 lifecycles (slab, flow table, timer wheel): what the lifecycle
    /// benchmarks and `tw_pair` time.
    pub fn warmed(tw: usize) -> ServerRig {
        let mut rig = ServerRig::new(RigConfig {
            time_wait_capacity: tw.max(1 << 16),
            ..RigConfig::default()
        });
        rig.preload_time_wait(tw);
        for _ in 0..64 {
            rig.churn(64);
        }
        rig
    }

    /// Fills the server's TIME-WAIT table with `n` entries for tuples the churn never uses
    /// (remote addresses 12.x.y.z). Entries last 2×MSL (60 s) of virtual time; the rig's
    /// clock advances 1 µs per round, so they outlive any benchmark.
    pub fn preload_time_wait(&mut self, n: usize) {
        for k in 0..n as u64 {
            let tuple = FourTuple {
                local_addr: SERVER_IP,
                remote_addr: Ipv4Addr::from(0x0c00_0000u32 | ((k >> 15) as u32 & 0x00ff_ffff)),
                local_port: PORT,
                remote_port: 10_000 + (k & 0x7fff) as u16,
            };
            self.server.insert_time_wait(
                self.now,
                TimeWaitInit {
                    tuple,
                    snd_nxt: SeqNumber(k as u32),
                    rcv_nxt: SeqNumber(!(k as u32)),
                    ts_recent: Some(k as u32),
                    rcv_wnd: 1024,
                    rcv_wscale: 7,
                },
            );
        }
    }

    fn push(&mut self, c: &ClientConn, repr: &TcpRepr) {
        let len = emit_tcp_frame(
            &mut self.frame,
            CLIENT_MAC,
            SERVER_MAC,
            c.ip,
            SERVER_IP,
            repr,
        )
        .expect("client frame fits");
        assert!(self.link.push_rx(&self.frame[..len]), "rig RX queue full");
        self.frames_in += 1;
    }

    fn client_repr(
        &self,
        c: &ClientConn,
        control: TcpControl,
        seq: u32,
        ack: u32,
    ) -> TcpRepr<'static> {
        TcpRepr {
            src_port: c.port,
            dst_port: PORT,
            control,
            seq_number: SeqNumber(seq),
            ack_number: Some(SeqNumber(ack)),
            window_len: 502,
            timestamp: self.cfg.client_options.then_some(TcpTimestamp {
                tsval: 1000,
                tsecr: c.server_tsval,
            }),
            ..TcpRepr::default()
        }
    }

    /// Drives the server until its RX queue is empty; time spent in `Stack` is added to
    /// `spent`.
    fn receive_all(&mut self, spent: &mut std::time::Duration) {
        while self.link.rx_len() > 0 {
            timed(spent, || self.server.receive(self.now, &mut self.link));
        }
    }

    /// The server application: accept everything, close on the peer's FIN, then flush.
    fn app_and_flush(&mut self, spent: &mut std::time::Duration) {
        timed(spent, || {
            while self.server.accept(self.listener).is_some() {}
            while let Some((h, e)) = self.server.poll_event() {
                server_event(&mut self.server, h, e);
            }
            self.server.flush(self.now, &mut self.link);
        });
    }

    /// Reads the server's output; `f` sees each parsed segment (destination address first).
    fn drain(&mut self, mut f: impl FnMut(Ipv4Addr, &TcpRepr)) {
        let mut out = 0;
        self.link.drain_tx(|frame| {
            let parsed = parse_tcp_frame(frame).expect("server frame parses");
            f(parsed.ip.dst_addr, &parsed.tcp);
            out += 1;
        });
        self.frames_out += out;
    }

    /// Runs `n` complete lifecycles side by side (`n` ≤ 1024) and returns the time spent in
    /// server calls. Panics if the server does not answer as expected.
    pub fn churn(&mut self, n: usize) -> std::time::Duration {
        let mut spent = std::time::Duration::ZERO;
        self.batch.clear();
        for _ in 0..n {
            let (ip, port) = client_endpoint(self.next_client);
            self.next_client += 1;
            let isn = (self.next_client as u32).wrapping_mul(0x9e37_79b9);
            self.batch.push(ClientConn {
                port,
                ip,
                isn,
                server_isn: 0,
                server_tsval: 0,
            });
        }
        // SYN → SYN-ACK.
        let opts = self.cfg.client_options;
        for i in 0..n {
            let c = self.batch[i];
            let syn = TcpRepr {
                src_port: c.port,
                dst_port: PORT,
                control: TcpControl::Syn,
                seq_number: SeqNumber(c.isn),
                window_len: 64240,
                max_seg_size: Some(1460),
                window_scale: opts.then_some(7),
                sack_permitted: opts,
                timestamp: opts.then_some(TcpTimestamp {
                    tsval: 1000,
                    tsecr: 0,
                }),
                ..TcpRepr::default()
            };
            self.push(&c, &syn);
        }
        self.receive_all(&mut spent);
        self.app_and_flush(&mut spent);
        let base = self.next_client - n as u64;
        let mut batch = core::mem::take(&mut self.batch);
        let mut synacks = 0;
        self.drain(|_, seg| {
            assert_eq!(seg.control, TcpControl::Syn, "SYN-ACK expected");
            let i = client_index(base, seg.dst_port, n);
            batch[i].server_isn = seg.seq_number.0;
            batch[i].server_tsval = seg.timestamp.map_or(0, |t| t.tsval);
            synacks += 1;
        });
        self.batch = batch;
        assert_eq!(synacks, n, "one SYN-ACK per SYN");
        self.now += Duration::from_micros(1);
        // ACK, then FIN → FIN+ACK.
        for i in 0..n {
            let c = self.batch[i];
            let ack = self.client_repr(&c, TcpControl::None, c.isn + 1, c.server_isn + 1);
            self.push(&c, &ack);
            let fin = self.client_repr(&c, TcpControl::Fin, c.isn + 1, c.server_isn + 1);
            self.push(&c, &fin);
        }
        self.receive_all(&mut spent);
        self.app_and_flush(&mut spent);
        let mut fins = 0;
        self.drain(|_, seg| {
            assert_eq!(seg.control, TcpControl::Fin, "FIN+ACK expected");
            fins += 1;
        });
        assert_eq!(fins, n, "one FIN+ACK per FIN");
        self.now += Duration::from_micros(1);
        // Last ACK: the server's connection is gone.
        for i in 0..n {
            let c = self.batch[i];
            let ack = self.client_repr(&c, TcpControl::None, c.isn + 2, c.server_isn + 2);
            self.push(&c, &ack);
        }
        self.receive_all(&mut spent);
        self.app_and_flush(&mut spent);
        let mut stray = 0;
        self.drain(|_, _| stray += 1);
        assert_eq!(stray, 0, "nothing answers the last ACK");
        self.now += Duration::from_micros(1);
        self.lifecycles += n as u64;
        spent
    }

    /// Opens `n` connections and leaves them ESTABLISHED (accepted); returns their client
    /// tuples as the server sees them, with the next sequence numbers of both sides.
    pub fn establish(&mut self, n: usize) -> Vec<Established> {
        let mut out = Vec::with_capacity(n);
        let mut left = n;
        while left > 0 {
            let k = left.min(1024);
            left -= k;
            self.batch.clear();
            for _ in 0..k {
                let (ip, port) = client_endpoint(self.next_client);
                self.next_client += 1;
                let isn = (self.next_client as u32).wrapping_mul(0x9e37_79b9);
                self.batch.push(ClientConn {
                    port,
                    ip,
                    isn,
                    server_isn: 0,
                    server_tsval: 0,
                });
            }
            let mut spent = std::time::Duration::ZERO;
            for i in 0..k {
                let c = self.batch[i];
                let syn = TcpRepr {
                    src_port: c.port,
                    dst_port: PORT,
                    control: TcpControl::Syn,
                    seq_number: SeqNumber(c.isn),
                    window_len: 64240,
                    max_seg_size: Some(1460),
                    ..TcpRepr::default()
                };
                self.push(&c, &syn);
            }
            self.receive_all(&mut spent);
            self.app_and_flush(&mut spent);
            let base = self.next_client - k as u64;
            let mut batch = core::mem::take(&mut self.batch);
            self.drain(|_, seg| {
                let i = client_index(base, seg.dst_port, k);
                batch[i].server_isn = seg.seq_number.0;
            });
            self.batch = batch;
            for i in 0..k {
                let c = self.batch[i];
                let mut ack = self.client_repr(&c, TcpControl::None, c.isn + 1, c.server_isn + 1);
                ack.timestamp = None;
                self.push(&c, &ack);
                out.push(Established {
                    remote: c.ip,
                    remote_port: c.port,
                    client_nxt: c.isn + 1,
                    server_nxt: c.server_isn + 1,
                });
            }
            self.receive_all(&mut spent);
            self.app_and_flush(&mut spent);
            self.drain(|_, _| {});
            self.now += Duration::from_micros(1);
        }
        out
    }

    /// Crafts a pure ACK (no new data, nothing to answer) for an established connection into
    /// `buf`, returning the frame length.
    pub fn pure_ack(&self, e: &Established, buf: &mut [u8]) -> usize {
        let repr = TcpRepr {
            src_port: e.remote_port,
            dst_port: PORT,
            seq_number: SeqNumber(e.client_nxt),
            ack_number: Some(SeqNumber(e.server_nxt)),
            window_len: 502,
            ..TcpRepr::default()
        };
        emit_tcp_frame(buf, CLIENT_MAC, SERVER_MAC, e.remote, SERVER_IP, &repr).expect("fits")
    }
}

/// An established connection of [`ServerRig::establish`].
#[derive(Debug, Clone, Copy)]
pub struct Established {
    pub remote: Ipv4Addr,
    pub remote_port: u16,
    pub client_nxt: u32,
    pub server_nxt: u32,
}

fn client_index(base: u64, port: u16, n: usize) -> usize {
    // Ports are 10_000 + (k mod 2^15) and a batch is at most 2^15 long.
    let first = (base & 0x7fff) as usize;
    let p = usize::from(port - 10_000);
    let i = (p + 0x8000 - first) & 0x7fff;
    assert!(i < n, "reply for a client outside the batch");
    i
}

fn server_event(server: &mut Stack, h: ConnHandle, e: Event) {
    if e == Event::PeerClosed {
        let _ = server.close(h);
    }
}

/// Drives `link` with `frames` into `server` once (receive + flush), for per-segment costs.
pub fn feed<L: Link>(server: &mut Stack, now: Instant, link: &mut L) {
    server.receive(now, link);
    server.flush(now, link);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn churn_rig_runs_complete_lifecycles() {
        let mut rig = ServerRig::new(RigConfig::default());
        rig.preload_time_wait(1000);
        for n in [1, 64, 1024] {
            rig.churn(n);
        }
        let c = rig.server.counters();
        assert_eq!(c.passive_opens, 1089);
        assert_eq!(c.syns_received, 1089);
        assert_eq!(rig.server.connection_count(), 0);
        assert_eq!(c.time_wait, 1000);
        assert_eq!(c.established, 0);
        // 3 frames in and 2 out per lifecycle... plus the FIN: 4 in, 2 out.
        assert_eq!(rig.frames_in, 4 * 1089);
        assert_eq!(rig.frames_out, 2 * 1089);
        assert_eq!(c.retransmits + c.resets_sent, 0);
    }

    #[test]
    fn cookie_rig_runs_complete_lifecycles() {
        let mut rig = ServerRig::new(RigConfig {
            syn_cookies: SynCookieMode::Always,
            ..RigConfig::default()
        });
        rig.churn(64);
        let c = rig.server.counters();
        assert_eq!(c.syn_cookies_sent, 64);
        assert_eq!(c.syn_cookies_validated, 64);
        assert_eq!(rig.server.connection_count(), 0);
    }

    #[test]
    fn established_connections_take_pure_acks_silently() {
        let mut rig = ServerRig::new(RigConfig::default());
        let conns = rig.establish(3000);
        assert_eq!(rig.server.connection_count(), 3000);
        assert_eq!(rig.server.counters().established, 3000);
        let mut buf = [0u8; 128];
        for e in conns.iter().step_by(7) {
            let len = rig.pure_ack(e, &mut buf);
            assert!(rig.link.push_rx(&buf[..len]));
            feed(&mut rig.server, rig.now, &mut rig.link);
        }
        assert_eq!(rig.link.tx_len(), 0, "a pure ACK needs no answer");
        let c = rig.server.counters();
        assert_eq!(
            c.resets_sent + c.unacceptable_segments + c.challenge_acks,
            0
        );
    }
}
