//! `--backend xdp-stateless`: a load generator for the `connect` workload that is **not a
//! full TCP**, cheap enough that one core can saturate a server core.
//!
//! User space only sends SYNs: in batches over one copy-mode AF_XDP socket (queue 0), each
//! with an ISN carrying its start time ([`stateless_bpf::isn`]), source addresses round-robin
//! over `--src-ip`, ports 1024-65535. Everything the server sends back is answered by an XDP
//! program on the same interface (`loadgen/bpf/stateless_client.c`) with `XDP_TX`: the
//! SYN-ACK with ACK + FIN, the server's FIN with ACK. The program counts handshakes,
//! completions (the server's FIN), RSTs and the connect latency into BPF maps; this worker
//! reads them (one map read per loop iteration, plus one of the start-time buckets every few
//! milliseconds), so no frame reaches user space and nothing is kept per connection.
//!
//! What it does not do, by design: retransmit (a lost SYN, SYN-ACK answer or FIN answer is a
//! connection that times out), keep TIME-WAIT (the client side leaves none; source ports are
//! reused only after 254 × 64 K connections with the bench's 254 addresses), or check the
//! server's sequence numbers. Failures: a start-time bucket older than `--timeout-ms` settles
//! its connections: SYNs sent minus timely completions minus RSTs are `timeout`, its RSTs are
//! `refused`. A SYN-ACK or FIN answered more than once (the server retransmitted) counts each
//! time; the report gives the program's own counters under `stateless`.
//!
//! On veth the server's end processes `XDP_TX` frames only when its NAPI runs, which
//! `XDP_TX` itself does not trigger unless that end has an XDP program (the Linux server's has
//! none): after 100 µs without sending, with connections in flight, the worker sends one
//! frame the server drops ([`Runner::kick`]) so that the answers waiting there are taken.
//!
//! Closed loop: in flight = SYNs sent − completions − RSTs − settled timeouts, refilled up to
//! `--concurrency` (and capped by `--max-rate`), so the client never floods. Open loop
//! (`--rate`): starts on the fixed grid, ISN = the intended start, so latency includes any
//! lag of the generator. Connect latency = SYN-ACK arrival − start, from the program's
//! histogram (32 buckets per power of two: ±1.6 %); the close latency is not measured.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::time::{Duration, Instant};

use xtcp::afxdp::{XskConfig, XskLink};
use xtcp::engine::sys as host;
use xtcp::link::Link;
use xtcp::wire::{EthernetAddress, SeqNumber, TcpControl, TcpRepr, emit_tcp_frame};

use super::stateless_bpf::{self as bpf, Loaded, ProgramConfig};
use super::{Backend, BackendKind, LoadSpec, Share, Worker, WorkerCtx, Workload};
use crate::metrics::Counter;
use crate::pace::{OpenLoop, TokenBucket};

/// Source ports (the program answers frames to these).
pub const PORTS: (u16, u16) = (1024, 65535);
/// SYNs per transmit batch.
const BATCH: usize = 64;
/// Extra wait after a bucket's timeout before it is settled (frames in flight in the kernel).
const SETTLE_MARGIN_US: u64 = 20_000;
/// Silence on the wire, with connections in flight, after which [`Runner::kick`] sends.
const KICK_AFTER_NS: u64 = 100_000;
/// How often the start-time buckets are read, µs.
const SETTLE_EVERY_US: u64 = 4_000;

/// What the report says about this client.
pub const NOTE: &str = "xdp-stateless: not a full TCP. SYNs from user space (AF_XDP), the \
     server's SYN-ACK and FIN answered by an XDP program (XDP_TX) with no per-connection \
     state: no retransmission (a lost frame is a timeout), no client TIME-WAIT, connect \
     workload only";

pub struct StatelessBackend;

struct Setup {
    loaded: Loaded,
    link: XskLink,
    mac: EthernetAddress,
    server_mac: EthernetAddress,
    sources: Vec<Ipv4Addr>,
    target: SocketAddrV4,
}

impl Backend for StatelessBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::XdpStateless
    }

    /// The client keeps no TIME-WAIT: its gauge stays 0 (the kernel's sockstat would count
    /// nothing of ours either).
    fn time_wait_from_gauges(&self) -> bool {
        true
    }

    fn prepare(&mut self, spec: &LoadSpec) -> Result<Vec<Box<dyn Worker>>, String> {
        if spec.workload != Workload::Connect {
            return Err(format!(
                "--backend xdp-stateless runs the connect workload only, not {}",
                spec.workload.name()
            ));
        }
        if spec.workers() != 1 {
            return Err("--backend xdp-stateless runs on one core: give --cores N".into());
        }
        if spec.syn_flood_rate.is_some() || spec.pcap.is_some() || spec.vlan.is_some() {
            return Err(
                "--backend xdp-stateless takes no --syn-flood-rate, --pcap or --vlan".into(),
            );
        }
        let timeout_us = spec.timeout.as_micros() as u64;
        let limit_us = bpf::SPAN_US - SETTLE_MARGIN_US - (2 << bpf::BUCKET_SHIFT);
        if timeout_us == 0 || timeout_us > limit_us {
            return Err(format!(
                "--backend xdp-stateless: --timeout-ms must be 1..={}",
                limit_us / 1000
            ));
        }
        let iface = spec
            .iface
            .as_deref()
            .ok_or("--backend xdp-stateless needs --iface (the interface towards the server)")?;
        let mac = host::interface_mac(iface)
            .map_err(|e| format!("interface {iface}: cannot read its MAC address: {e}"))?;
        let SocketAddr::V4(target) = spec.target else {
            return Err(format!(
                "--target {}: --backend xdp-stateless is IPv4 only (its XDP program parses \
                 IPv4); use --backend kernel for an IPv6 target",
                spec.target
            ));
        };
        let sources: Vec<Ipv4Addr> = if spec.source_ips.is_empty() {
            vec![host::interface_ipv4(iface).ok_or_else(|| {
                format!("{iface} has no IPv4 address: give --src-ip (the client's addresses)")
            })?]
        } else {
            let v4 = |a: &IpAddr| match a {
                IpAddr::V4(a) => Ok(*a),
                IpAddr::V6(a) => Err(format!(
                    "--src-ip {a}: --backend xdp-stateless is IPv4 only"
                )),
            };
            spec.source_ips.iter().map(v4).collect::<Result<_, _>>()?
        };
        let (_, server_mac) = host::resolve_next_hop(iface, *target.ip(), Duration::from_secs(3))?;
        let loaded = Loaded::attach(
            iface,
            &ProgramConfig {
                server_ip: *target.ip(),
                server_port: target.port(),
                ports: PORTS,
                timeout_us,
            },
        )?;
        // Transmit only: the program answers everything, nothing is redirected to the socket.
        let link = XskLink::new(&XskConfig::new(iface))
            .map_err(|e| format!("AF_XDP socket on {iface}: {e}"))?;
        eprintln!(
            "xtcp-loadgen: {NOTE}. XDP program on {iface} in {} mode.",
            loaded.mode
        );
        Ok(vec![Box::new(StatelessWorker {
            setup: Box::new(Setup {
                loaded,
                link,
                mac,
                server_mac,
                sources,
                target,
            }),
        })])
    }
}

struct StatelessWorker {
    setup: Box<Setup>,
}

impl Worker for StatelessWorker {
    fn run(self: Box<Self>, ctx: WorkerCtx) -> Result<(), String> {
        let mut ctx = ctx;
        let mut r = Runner::new(*self.setup, &ctx);
        let out = r.run(&mut ctx);
        r.finish(ctx)?;
        out
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds (the clock of `bpf_ktime_get_ns` and of `Instant`).
pub(crate) fn mono_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // Safety: `ts` is a valid, writable timespec for the duration of the call.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// `CLOCK_MONOTONIC` ns at the instant `epoch`, to well under a microsecond.
///
/// Read as `mono_ns() - epoch.elapsed()` in one go, a preemption between the two reads (a
/// loaded machine) puts the epoch late by as long as the thread waited, so every ISN would carry
/// a start time in the program's future: a RST or SYN-ACK arriving sooner than that offset reads
/// a negative latency, wraps above the timeout, and its connection is settled as timed out
/// (seen in CI: 15 of 500 refusals). So the clock pair is read bracketed by two monotonic
/// reads, several times, and the tightest bracket is kept.
fn mono_epoch_ns(epoch: Instant) -> u64 {
    mono_epoch_with(|| epoch.elapsed().as_nanos() as u64, mono_ns)
}

fn mono_epoch_with(mut since_epoch: impl FnMut() -> u64, mut mono: impl FnMut() -> u64) -> u64 {
    let mut best = (u64::MAX, 0);
    for _ in 0..16 {
        let a = mono();
        let e = since_epoch();
        let b = mono();
        let width = b.saturating_sub(a);
        if width < best.0 {
            best = (width, (a + width / 2).saturating_sub(e));
        }
    }
    best.1
}

/// Writes the SYN of connection `src_ip:src_port` with `isn` into `out`; its length.
pub fn syn_frame(
    out: &mut [u8],
    macs: (EthernetAddress, EthernetAddress),
    src: (Ipv4Addr, u16),
    dst: std::net::SocketAddrV4,
    isn: u32,
) -> usize {
    let r = TcpRepr {
        src_port: src.1,
        dst_port: dst.port(),
        control: TcpControl::Syn,
        psh: false,
        seq_number: SeqNumber(isn),
        ack_number: None,
        window_len: 65535,
        window_scale: None,
        // MSS only: no timestamps, so no answer needs TSopt (RFC 7323 §3.2), and no window
        // scale or SACK, which a client that sends no data does not need.
        max_seg_size: Some(1460),
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: None,
        payload: &[],
    };
    emit_tcp_frame(out, macs.0, macs.1, src.0, *dst.ip(), &r).unwrap_or(0)
}

/// One start-time bucket slot in use.
#[derive(Clone, Copy)]
struct Open {
    slot: usize,
    number: u64,
}

struct Runner {
    s: Setup,
    /// `CLOCK_MONOTONIC` ns at the run's epoch.
    mono_epoch_ns: u64,
    timeout_us: u64,
    /// SYNs sent, all connections.
    sent: u64,
    /// Connections numbered for the source address/port choice.
    next_conn: u64,
    /// Per slot: SYNs sent in its current bucket, and the program's counters when it opened.
    slot_sent: Box<[u32; bpf::NB]>,
    slot_measured: Box<[bool; bpf::NB]>,
    base_done: Box<[u32; bpf::NB]>,
    base_rst: Box<[u32; bpf::NB]>,
    /// Bucket number + 1 per slot (0: free).
    slot_number: Box<[u64; bpf::NB]>,
    open: VecDeque<Open>,
    timeouts: u64,
    last: bpf::Totals,
    next_settle_us: u64,
    /// Frames sent by [`Runner::kick`].
    kicks: u64,
}

impl Runner {
    fn new(s: Setup, ctx: &WorkerCtx) -> Runner {
        // A random first connection number, so consecutive runs against the same server do
        // not reuse each other's recent 4-tuples (the server may still hold them).
        let mut seed = [0u8; 8];
        let _ = getrandom::fill(&mut seed);
        Runner {
            s,
            mono_epoch_ns: mono_epoch_ns(ctx.spec.epoch),
            timeout_us: ctx.spec.timeout.as_micros() as u64,
            sent: 0,
            next_conn: u64::from_le_bytes(seed) >> 16,
            slot_sent: Box::new([0; bpf::NB]),
            slot_measured: Box::new([false; bpf::NB]),
            base_done: Box::new([0; bpf::NB]),
            base_rst: Box::new([0; bpf::NB]),
            slot_number: Box::new([0; bpf::NB]),
            open: VecDeque::with_capacity(bpf::NB),
            timeouts: 0,
            last: bpf::Totals::default(),
            next_settle_us: 0,
            kicks: 0,
        }
    }

    fn mono_us(&self, run_ns: u64) -> u64 {
        (self.mono_epoch_ns + run_ns) / 1000
    }

    fn in_flight(&self) -> u64 {
        self.sent
            .saturating_sub(self.last.completed + self.last.rst_matched + self.timeouts)
    }

    /// Reads the totals and passes the measured connections' progress to the recorder.
    fn poll_totals(&mut self, ctx: &WorkerCtx) -> Result<(), String> {
        let t = self.s.loaded.totals()?;
        let rec = &ctx.recorder;
        let hs = t.handshakes_measured - self.last.handshakes_measured;
        let done = t.completed_measured - self.last.completed_measured;
        if hs > 0 {
            rec.add(Counter::Handshakes, hs);
        }
        if done > 0 {
            rec.add(Counter::Teardowns, done);
            rec.add(Counter::Completed, done);
        }
        self.last = t;
        rec.set_gauge(Counter::InFlight, self.in_flight());
        Ok(())
    }

    /// Settles every open bucket older than the timeout (all of them with `all`).
    fn settle(&mut self, ctx: &WorkerCtx, now_us: u64, all: bool) -> Result<(), String> {
        let due = |o: &Open, timeout_us: u64| {
            ((o.number + 1) << bpf::BUCKET_SHIFT) + timeout_us + SETTLE_MARGIN_US <= now_us
        };
        if !all && !self.open.front().is_some_and(|o| due(o, self.timeout_us)) {
            return Ok(());
        }
        let b = self.s.loaded.buckets()?;
        while let Some(&o) = self.open.front() {
            if !all && !due(&o, self.timeout_us) {
                break;
            }
            self.open.pop_front();
            let i = o.slot;
            let done = b.done[i].wrapping_sub(self.base_done[i]);
            let rst = b.rst[i].wrapping_sub(self.base_rst[i]);
            let timeouts = self.slot_sent[i].saturating_sub(done.saturating_add(rst));
            self.timeouts += u64::from(timeouts);
            if self.slot_measured[i] {
                ctx.recorder.add(Counter::FailRefused, u64::from(rst));
                ctx.recorder.add(Counter::FailTimeout, u64::from(timeouts));
            }
            self.base_done[i] = b.done[i];
            self.base_rst[i] = b.rst[i];
            self.slot_sent[i] = 0;
            self.slot_number[i] = 0;
        }
        Ok(())
    }

    /// Sends the SYN of a connection intended at `start_ns` (run clock); false when the
    /// transmit ring is full.
    fn send_syn(&mut self, ctx: &WorkerCtx, start_ns: u64) -> bool {
        let measured = ctx.recorder.is_measured(start_ns);
        let start_us = self.mono_us(start_ns);
        let isn = bpf::isn(start_us, measured);
        let slot = bpf::bucket_of(isn);
        let number = bpf::bucket_number(start_us);
        if self.slot_number[slot] != number + 1 {
            // The slot's previous bucket was settled (the timeout is shorter than the
            // ring's span, checked in `prepare`), so it is free.
            debug_assert_eq!(self.slot_number[slot], 0);
            self.slot_number[slot] = number + 1;
            self.slot_measured[slot] = measured;
            self.open.push_back(Open { slot, number });
        }
        let n = self.s.sources.len() as u64;
        let k = self.next_conn;
        let src_ip = self.s.sources[(k % n) as usize];
        let span = u64::from(PORTS.1 - PORTS.0) + 1;
        let src_port = PORTS.0 + ((k / n) % span) as u16;
        let (macs, target) = ((self.s.mac, self.s.server_mac), self.s.target);
        if !self
            .s
            .link
            .transmit(|out| syn_frame(out, macs, (src_ip, src_port), target, isn))
        {
            return false;
        }
        self.next_conn += 1;
        self.sent += 1;
        self.slot_sent[slot] += 1;
        if measured {
            ctx.recorder.add(Counter::Attempted, 1);
        }
        true
    }

    fn run(&mut self, ctx: &mut WorkerCtx) -> Result<(), String> {
        let spec = Arc::clone(&ctx.spec);
        let mut open_loop = None;
        let mut closed = None;
        match spec.share(ctx.index, ctx.workers) {
            Share::Closed {
                concurrency,
                max_rate,
            } => closed = Some((u64::from(concurrency), TokenBucket::new(max_rate, 64))),
            Share::Open { rate, first_ns } => {
                open_loop = Some(OpenLoop::new(rate, first_ns, spec.end_ns));
            }
        }
        // The waits below are short (20 µs between looks at the program's counters); with
        // the default 50 µs timer slack each would last ~70 µs, and every refill of the
        // closed loop would lag by that much.
        // Safety: PR_SET_TIMERSLACK takes an integer and affects only the calling thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1_000 as libc::c_ulong) };
        let mut last_tx = 0u64;
        loop {
            let now = spec.now_ns();
            let now_us = self.mono_us(now);
            let issuing = now < spec.end_ns && !ctx.should_stop();
            if let Some(p) = open_loop.as_mut().filter(|_| ctx.should_stop()) {
                p.cut(now);
            }
            self.poll_totals(ctx)?;
            if now_us >= self.next_settle_us {
                self.next_settle_us = now_us + SETTLE_EVERY_US;
                self.settle(ctx, now_us, false)?;
            }
            let mut sent = 0;
            if issuing {
                if let Some((conc, bucket)) = closed.as_mut() {
                    let in_flight = self.in_flight();
                    let room = conc.saturating_sub(in_flight).min(BATCH as u64);
                    // Refill in batches (one kick each) rather than one SYN per completion,
                    // unless nothing is in flight.
                    let min_batch = (*conc / 8).clamp(1, 16);
                    let room = if room < min_batch && in_flight > 0 {
                        0
                    } else {
                        room
                    };
                    for _ in 0..room {
                        if !bucket.take(now) || !self.send_syn(ctx, now) {
                            break;
                        }
                        sent += 1;
                    }
                }
                if let Some(p) = open_loop.as_mut() {
                    while sent < BATCH {
                        let Some(due) = p.next_due().filter(|&d| d <= now) else {
                            break;
                        };
                        if !self.send_syn(ctx, due) {
                            break;
                        }
                        p.take(now);
                        let measured = ctx.recorder.is_measured(due);
                        ctx.recorder.schedule_lag(measured, now - due);
                        sent += 1;
                    }
                }
                if sent > 0 {
                    self.s.link.flush();
                }
            } else if self.in_flight() == 0 || self.open.is_empty() {
                self.settle(ctx, now_us, true)?;
                return Ok(());
            }
            if sent > 0 {
                last_tx = now;
            } else if self.in_flight() > 0 && now.saturating_sub(last_tx) >= KICK_AFTER_NS {
                self.kick();
                last_tx = now;
            }
            if sent == 0 {
                // Nothing to send: completions come in through the program; look again soon.
                let wait_ns = match open_loop.as_ref().and_then(|p| p.next_due()) {
                    Some(d) if issuing => d.saturating_sub(now).clamp(5_000, 200_000),
                    _ => 20_000,
                };
                std::thread::sleep(Duration::from_nanos(wait_ns));
            }
        }
    }

    /// Sends one frame the server drops (an unused EtherType), whose only effect is to make
    /// the server end's NAPI poll again. On veth (kernel 6.18) answers sent with XDP_TX are
    /// queued in the peer's ring, but the peer's NAPI is scheduled only when the peer has an
    /// XDP program of its own (`veth_xdp_flush`): the Linux server's end has none, so the
    /// answers waited there until the next frame arrived through `veth_xmit`. With the SYNs
    /// stopped (the last connections of a run, or a closed loop whose whole window waits on
    /// those answers) that was the server's SYN-ACK retransmission a second later, and the
    /// connections timed out (measured: exactly one window of timeouts per run, none with the
    /// kick).
    fn kick(&mut self) {
        let (src, dst) = (self.s.mac, self.s.server_mac);
        if self.s.link.transmit(|out| {
            out[..6].copy_from_slice(&dst.0);
            out[6..12].copy_from_slice(&src.0);
            // IEEE 802 "local experimental" EtherType: no protocol handler takes it.
            out[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            out[14..60].fill(0);
            60
        }) {
            self.s.link.flush();
            self.kicks += 1;
        }
    }

    fn finish(&mut self, ctx: WorkerCtx) -> Result<(), String> {
        let h = self.s.loaded.hist()?;
        let mut rec = ctx.recorder;
        for (i, &n) in h.connect.iter().enumerate().filter(|(_, n)| **n > 0) {
            let (lo, hi) = bpf::hist_range(i);
            // The bucket's midpoint, in ns.
            rec.connect_latency_n((lo + hi) * 500, n);
        }
        let t = self.last;
        eprintln!(
            "xtcp-loadgen: xdp-stateless: SYNs {}, SYN-ACKs {}, server FINs {}, completed {}, \
             RSTs {}, late {}, timeouts {}, ignored {}, bad {}, early {}, kicks {}",
            self.sent,
            t.synack,
            t.fin,
            t.completed,
            t.rst,
            t.late,
            self.timeouts,
            t.ignored,
            t.bad,
            t.early,
            self.kicks
        );
        rec.finish();
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtcp::wire::parse_tcp_frame;

    #[test]
    fn the_epoch_survives_a_preemption_between_clock_reads() {
        use std::cell::Cell;
        // True CLOCK_MONOTONIC starts at 7 s; the run's epoch is at 6.5 s. Every read takes
        // 20 ns; the first read of the epoch clock is preempted for 3 ms.
        const EPOCH: u64 = 6_500_000_000;
        let now = Cell::new(7_000_000_000u64);
        let first = Cell::new(true);
        let mono = || {
            now.set(now.get() + 20);
            now.get()
        };
        let since = || {
            if first.replace(false) {
                now.set(now.get() + 3_000_000);
            }
            now.set(now.get() + 20);
            now.get() - EPOCH
        };
        let got = mono_epoch_with(since, mono);
        assert!(got.abs_diff(EPOCH) <= 20, "epoch {got}, true {EPOCH}");
        // The one-shot reading would have been late by the whole preemption.
        assert!(mono_epoch_ns(Instant::now()) > 0);
    }

    #[test]
    fn syn_frame_carries_the_isn_and_only_mss() {
        let a = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let b = EthernetAddress([2, 0, 0, 0, 0, 2]);
        let isn = bpf::isn(123_456_789, true);
        let mut buf = [0u8; 2048];
        let n = syn_frame(
            &mut buf,
            (a, b),
            (Ipv4Addr::new(10, 78, 0, 5), 40000),
            "10.0.0.2:8080".parse().unwrap(),
            isn,
        );
        assert_eq!(n, 14 + 20 + 24);
        // Checksums are verified by the parser.
        let f = parse_tcp_frame(&buf[..n]).unwrap();
        assert_eq!((f.eth.src_addr, f.eth.dst_addr), (a, b));
        assert_eq!(f.ip.src_addr, Ipv4Addr::new(10, 78, 0, 5));
        assert_eq!(f.ip.dst_addr, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((f.tcp.src_port, f.tcp.dst_port), (40000, 8080));
        assert_eq!(f.tcp.control, TcpControl::Syn);
        assert_eq!(f.tcp.seq_number, SeqNumber(isn));
        assert_eq!(f.tcp.ack_number, None);
        assert_eq!(f.tcp.max_seg_size, Some(1460));
        assert!(f.tcp.timestamp.is_none() && f.tcp.window_scale.is_none());
        assert!(!f.tcp.sack_permitted);
        // The SYN-ACK acknowledges ISN + 1: the start time comes back.
        let back = (f.tcp.seq_number + 1).0.wrapping_sub(1);
        assert_eq!(bpf::latency_us(back, 123_456_789 + 250), 250);
    }
}
