//! The XDP half of the `xdp-stateless` client: building, loading and reading
//! `loadgen/bpf/stateless_client.c`, and the encodings it shares with user space.
//!
//! - **Time in the ISN** ([`isn`], [`latency_us`]): ISN = (start µs << 1) | measured, start =
//!   `CLOCK_MONOTONIC` microseconds (the clock of `bpf_ktime_get_ns`). The server's SYN-ACK
//!   acknowledges ISN + 1 and its FIN ISN + 2, so the program recovers the start time, and
//!   whether the connection is past the warmup, from the answer alone.
//! - **Start-time buckets** ([`bucket_of`]): 16.4 ms of start times per bucket, 512 per value
//!   of the measured bit; the program counts timely completions and RSTs per bucket, user
//!   space counts SYNs sent per bucket, and once a bucket is older than the timeout the
//!   difference is the bucket's timed-out connections.
//! - **Latency histogram** ([`hist_index`], [`hist_range`]): log-linear, exact below 32 µs,
//!   then 32 buckets per power of two (±1.6 %).
//!
//! The program is compiled at run time with clang (as the test kit does for its tc program),
//! with the server address, port range and timeout as constants; the source is embedded in
//! the binary, so the load generator runs from anywhere.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::Command;

use aya::maps::{Array, MapData};
use aya::programs::{TestRun, TestRunOptions, Xdp, XdpMode};
use aya::{Ebpf, Pod};

/// The program's source, compiled at run time.
const SOURCE: &str = include_str!("../../bpf/stateless_client.c");
const PROGRAM: &str = "stateless_client";

/// log2 of the microseconds of start time per bucket (`BUCKET_SHIFT` in the C source).
pub const BUCKET_SHIFT: u32 = 14;
/// Buckets per value of the measured bit (`NB / 2`).
pub const HALF: usize = 512;
/// All buckets (`NB`).
pub const NB: usize = 2 * HALF;
/// Histogram buckets (`HB`) and sub-bucket bits (`HSUB_BITS`).
pub const HB: usize = 1024;
const HSUB_BITS: u32 = 5;
/// The span of start times the bucket ring covers before a bucket is reused.
pub const SPAN_US: u64 = (HALF as u64) << BUCKET_SHIFT;

/// The ISN of a connection started at `start_us` (`CLOCK_MONOTONIC` µs).
pub fn isn(start_us: u64, measured: bool) -> u32 {
    ((start_us as u32) << 1) | u32::from(measured)
}

/// Microseconds from the start carried in `isn` to `now_us` (wrapping; exact below 35 min).
pub fn latency_us(isn: u32, now_us: u64) -> u32 {
    ((((now_us as u32) << 1) | (isn & 1)).wrapping_sub(isn)) >> 1
}

/// The start-time bucket of an ISN.
pub fn bucket_of(isn: u32) -> usize {
    ((((isn >> 1) >> BUCKET_SHIFT) as usize) & (HALF - 1)) | (((isn & 1) as usize) << 9)
}

/// The bucket number (not wrapped) of a start time: buckets `b` and `b + HALF` share a slot.
pub fn bucket_number(start_us: u64) -> u64 {
    start_us >> BUCKET_SHIFT
}

/// The histogram bucket of a latency (the C program's `hist_index`).
pub fn hist_index(us: u32) -> usize {
    if us < (1 << HSUB_BITS) {
        return us as usize;
    }
    let m = 31 - us.leading_zeros();
    (((m - HSUB_BITS + 1) << HSUB_BITS) + ((us >> (m - HSUB_BITS)) & ((1 << HSUB_BITS) - 1)))
        as usize
}

/// The latencies (µs, `low..high`) histogram bucket `idx` holds.
pub fn hist_range(idx: usize) -> (u64, u64) {
    let idx = idx as u64;
    if idx < (1 << HSUB_BITS) {
        return (idx, idx + 1);
    }
    let m = (idx >> HSUB_BITS) + u64::from(HSUB_BITS) - 1;
    let sub = idx & ((1 << HSUB_BITS) - 1);
    let shift = m - u64::from(HSUB_BITS);
    (
        ((1 << HSUB_BITS) + sub) << shift,
        ((1 << HSUB_BITS) + sub + 1) << shift,
    )
}

/// `struct totals` of the C source: cumulative counters.
#[repr(C)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    pub synack: u64,
    pub handshakes_measured: u64,
    pub fin: u64,
    pub completed: u64,
    pub completed_measured: u64,
    pub late: u64,
    pub rst: u64,
    pub rst_matched: u64,
    pub ignored: u64,
    pub bad: u64,
    pub early: u64,
}

/// `struct buckets`: timely completions and RSTs per start-time bucket (cumulative).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Buckets {
    pub done: [u32; NB],
    pub rst: [u32; NB],
}

/// `struct hist`: connect latency counts of measured connections.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct Hist {
    pub connect: [u64; HB],
}

// Safety: plain `#[repr(C)]` integers and arrays of them, no padding, every bit pattern valid:
// what aya copies to and from the kernel's map values.
unsafe impl Pod for Totals {}
// Safety: as above.
unsafe impl Pod for Buckets {}
// Safety: as above.
unsafe impl Pod for Hist {}

/// Constants compiled into the program.
#[derive(Debug, Clone)]
pub struct ProgramConfig {
    pub server_ip: Ipv4Addr,
    pub server_port: u16,
    pub ports: (u16, u16),
    pub timeout_us: u64,
}

/// The loaded and attached program (detached when dropped) and its maps.
pub struct Loaded {
    ebpf: Ebpf,
    totals: Array<MapData, Totals>,
    buckets: Array<MapData, Buckets>,
    hist: Array<MapData, Hist>,
    /// `native` or `skb` once attached, `none` before.
    pub mode: &'static str,
}

/// Compiles the program for `cfg`; returns the object's bytes.
pub fn compile(cfg: &ProgramConfig) -> Result<Vec<u8>, String> {
    let clang = xtcp_xdp_ebpf::find_clang().ok_or(
        "xdp-stateless needs clang (>= 14) to build its XDP program: apt-get install clang-19",
    )?;
    let dir = std::env::temp_dir();
    let stem = format!("xtcp-stateless-client-{}", std::process::id());
    let src: PathBuf = dir.join(format!("{stem}.c"));
    let obj: PathBuf = dir.join(format!("{stem}.o"));
    std::fs::write(&src, SOURCE).map_err(|e| format!("{}: {e}", src.display()))?;
    let out = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg("-I/usr/include/x86_64-linux-gnu")
        .arg(format!("-DSERVER_IP={:#x}u", u32::from(cfg.server_ip)))
        .arg(format!("-DSERVER_PORT={}", cfg.server_port))
        .arg(format!("-DPORT_LO={}", cfg.ports.0))
        .arg(format!("-DPORT_HI={}", cfg.ports.1))
        .arg(format!("-DTIMEOUT_US={}u", cfg.timeout_us))
        .arg("-c")
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output();
    let _ = std::fs::remove_file(&src);
    let out = out.map_err(|e| format!("{clang}: {e}"))?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&obj);
        return Err(format!(
            "{clang} failed to build the stateless client's XDP program: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bytes = std::fs::read(&obj).map_err(|e| format!("{}: {e}", obj.display()));
    let _ = std::fs::remove_file(&obj);
    bytes
}

impl Loaded {
    /// Builds and loads the program (through the verifier), not attached anywhere.
    pub fn load(cfg: &ProgramConfig) -> Result<Loaded, String> {
        let obj = compile(cfg)?;
        let mut ebpf = Ebpf::load(&obj).map_err(|e| format!("loading the XDP object: {e}"))?;
        let prog: &mut Xdp = ebpf
            .program_mut(PROGRAM)
            .ok_or("the XDP object has no stateless_client program")?
            .try_into()
            .map_err(|e| format!("stateless_client: {e}"))?;
        prog.load()
            .map_err(|e| format!("the verifier refused the stateless client: {e}"))?;
        let mut take = |name: &str| {
            ebpf.take_map(name)
                .ok_or_else(|| format!("the XDP object has no map {name}"))
        };
        let totals = Array::try_from(take("totals")?).map_err(|e| format!("totals: {e}"))?;
        let buckets = Array::try_from(take("buckets")?).map_err(|e| format!("buckets: {e}"))?;
        let hist = Array::try_from(take("hist")?).map_err(|e| format!("hist: {e}"))?;
        Ok(Loaded {
            ebpf,
            totals,
            buckets,
            hist,
            mode: "none",
        })
    }

    fn xdp(&mut self) -> &mut Xdp {
        self.ebpf
            .program_mut(PROGRAM)
            .and_then(|p| <&mut Xdp>::try_from(p).ok())
            .expect("checked by Loaded::load")
    }

    /// Builds, loads and attaches the program to `iface` (native mode, else SKB mode); it is
    /// detached when the value is dropped.
    pub fn attach(iface: &str, cfg: &ProgramConfig) -> Result<Loaded, String> {
        let mut l = Loaded::load(cfg)?;
        l.mode = "native";
        if let Err(native) = l.xdp().attach(iface, XdpMode::Driver) {
            l.xdp()
                .attach(iface, XdpMode::Skb)
                .map_err(|skb| format!("attaching XDP to {iface}: native: {native}; skb: {skb}"))?;
            l.mode = "skb";
        }
        Ok(l)
    }

    /// Runs the program once on `frame` (`BPF_PROG_TEST_RUN`, live maps): its verdict and
    /// the frame as the program left it.
    pub fn test_run(&mut self, frame: &[u8]) -> Result<(u32, Vec<u8>), String> {
        let mut out = vec![0u8; 2048];
        let opts = TestRunOptions {
            data_in: Some(frame),
            data_out: Some(&mut out),
            ..TestRunOptions::default()
        };
        let r = self
            .xdp()
            .test_run(opts)
            .map_err(|e| format!("BPF_PROG_TEST_RUN: {e}"))?;
        out.truncate(r.data_size_out as usize);
        Ok((r.return_value, out))
    }

    /// One map read (a syscall).
    pub fn totals(&self) -> Result<Totals, String> {
        self.totals
            .get(&0, 0)
            .map_err(|e| format!("reading totals: {e}"))
    }

    pub fn buckets(&self) -> Result<Box<Buckets>, String> {
        self.buckets
            .get(&0, 0)
            .map(Box::new)
            .map_err(|e| format!("reading buckets: {e}"))
    }

    pub fn hist(&self) -> Result<Box<Hist>, String> {
        self.hist
            .get(&0, 0)
            .map(Box::new)
            .map_err(|e| format!("reading hist: {e}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isn_carries_time_and_flag() {
        for &start in &[0u64, 1, 123_456_789, (1 << 31) - 5, (1 << 40) + 77] {
            for m in [false, true] {
                let i = isn(start, m);
                assert_eq!(i & 1 == 1, m);
                for &d in &[0u64, 1, 999, 3_000_000, 1 << 30] {
                    assert_eq!(
                        latency_us(i, start + d),
                        d as u32,
                        "start {start} d {d} m {m}"
                    );
                }
                // What the program sees: SYN-ACK acks ISN + 1, FIN acks ISN + 2.
                let from_synack = i.wrapping_add(1).wrapping_sub(1);
                assert_eq!(from_synack, i);
            }
        }
    }

    #[test]
    fn buckets_split_by_flag_and_time() {
        let s = 5 << BUCKET_SHIFT;
        assert_eq!(bucket_of(isn(s, false)), 5);
        assert_eq!(bucket_of(isn(s, true)), 5 + HALF);
        assert_eq!(bucket_of(isn(s + (1 << BUCKET_SHIFT) - 1, true)), 5 + HALF);
        assert_eq!(
            bucket_of(isn(s + SPAN_US, false)),
            5,
            "the ring wraps after SPAN_US"
        );
        assert_eq!(bucket_number(s) as usize % HALF, bucket_of(isn(s, false)));
        // Wrap of the 31-bit start time keeps slots aligned with bucket numbers.
        let big = (1u64 << 31) + (7 << BUCKET_SHIFT);
        assert_eq!(
            bucket_of(isn(big, false)),
            bucket_number(big) as usize % HALF
        );
        const { assert!(SPAN_US > 8_000_000) };
    }

    #[test]
    fn histogram_buckets_cover_and_are_tight() {
        let mut prev = 0;
        for us in (0u32..5000).chain([65_535, 1 << 20, 3_000_000, u32::MAX >> 1, u32::MAX]) {
            let i = hist_index(us);
            assert!(i < HB, "{us} -> {i}");
            assert!(i >= prev || us > 5000, "monotonic");
            prev = i;
            let (lo, hi) = hist_range(i);
            assert!(
                lo <= u64::from(us) && u64::from(us) < hi,
                "{us} not in {lo}..{hi}"
            );
            assert!(
                (hi - lo) as f64 <= (lo as f64 / 32.0).max(1.0),
                "{lo}..{hi}"
            );
        }
        assert_eq!(hist_index(31), 31);
        assert_eq!(hist_index(32), 32);
        assert_eq!(hist_range(32), (32, 33));
        assert_eq!(hist_range(64), (64, 66));
    }

    /// The program itself, on crafted frames (`BPF_PROG_TEST_RUN`; needs root and clang):
    /// each server segment gets the right answer, checksums included, and is counted.
    #[test]
    fn program_answers_and_counts() {
        use xtcp::wire::{
            EthernetAddress as Mac, SeqNumber, TcpControl, TcpRepr, emit_tcp_frame, parse_tcp_frame,
        };
        if !xtcp_testkit::veth::is_root() {
            xtcp_testkit::veth::skip("program_answers_and_counts", "needs root (BPF)");
            return;
        }
        let cfg = ProgramConfig {
            server_ip: Ipv4Addr::new(10, 0, 0, 2),
            server_port: 8080,
            ports: (1024, 65535),
            timeout_us: 1_000_000,
        };
        let mut l = match Loaded::load(&cfg) {
            Ok(l) => l,
            Err(e) if e.contains("needs clang") => {
                xtcp_testkit::veth::skip("program_answers_and_counts", &e);
                return;
            }
            Err(e) => panic!("{e}"),
        };
        let (srv_mac, cli_mac) = (Mac([2, 0, 0, 0, 0, 2]), Mac([2, 0, 0, 0, 0, 1]));
        let cli = Ipv4Addr::new(10, 78, 0, 7);
        let now_us = super::super::stateless::mono_ns() / 1000;
        let isn = isn(now_us - 500, true);
        let seg = |control, seq: u32, ack: u32, port: u16| {
            let r = TcpRepr {
                src_port: port,
                dst_port: 40000,
                control,
                psh: false,
                seq_number: SeqNumber(seq),
                ack_number: Some(SeqNumber(ack)),
                window_len: 64240,
                window_scale: None,
                max_seg_size: (control == TcpControl::Syn).then_some(1460),
                sack_permitted: false,
                sack_ranges: [None; 3],
                timestamp: None,
                payload: &[],
            };
            let mut buf = vec![0u8; 128];
            let n = emit_tcp_frame(&mut buf, srv_mac, cli_mac, cfg.server_ip, cli, &r).unwrap();
            buf.truncate(n);
            buf
        };
        const PASS: u32 = 2;
        const DROP: u32 = 1;
        const TX: u32 = 3;

        // SYN-ACK -> ACK + FIN, back to the server, seq = ISN + 1.
        let (v, out) = l
            .test_run(&seg(TcpControl::Syn, 7000, isn.wrapping_add(1), 8080))
            .unwrap();
        assert_eq!(v, TX);
        assert_eq!(out.len(), 54);
        let f = parse_tcp_frame(&out).expect("valid frame, both checksums");
        assert_eq!((f.eth.src_addr, f.eth.dst_addr), (cli_mac, srv_mac));
        assert_eq!((f.ip.src_addr, f.ip.dst_addr), (cli, cfg.server_ip));
        assert_eq!((f.tcp.src_port, f.tcp.dst_port), (40000, 8080));
        assert_eq!(f.tcp.control, TcpControl::Fin);
        assert_eq!(f.tcp.seq_number, SeqNumber(isn.wrapping_add(1)));
        assert_eq!(f.tcp.ack_number, Some(SeqNumber(7001)));
        assert!(f.tcp.timestamp.is_none() && f.tcp.max_seg_size.is_none());

        // The server's FIN (acknowledging ours) -> ACK of it; a completion.
        let (v, out) = l
            .test_run(&seg(TcpControl::Fin, 7001, isn.wrapping_add(2), 8080))
            .unwrap();
        assert_eq!(v, TX);
        let f = parse_tcp_frame(&out).expect("valid frame");
        assert_eq!(f.tcp.control, TcpControl::None);
        assert_eq!(f.tcp.seq_number, SeqNumber(isn.wrapping_add(2)));
        assert_eq!(f.tcp.ack_number, Some(SeqNumber(7002)));

        // A pure ACK is dropped, an RST counted, another port passes.
        let (v, _) = l
            .test_run(&seg(TcpControl::None, 7001, isn.wrapping_add(2), 8080))
            .unwrap();
        assert_eq!(v, DROP);
        let (v, _) = l
            .test_run(&seg(TcpControl::Rst, 0, isn.wrapping_add(1), 8080))
            .unwrap();
        assert_eq!(v, DROP);
        let (v, _) = l
            .test_run(&seg(TcpControl::Syn, 7000, isn.wrapping_add(1), 22))
            .unwrap();
        assert_eq!(v, PASS);

        let t = l.totals().unwrap();
        assert_eq!((t.synack, t.handshakes_measured), (1, 1));
        assert_eq!((t.fin, t.completed, t.completed_measured), (1, 1, 1));
        assert_eq!((t.rst, t.rst_matched, t.ignored, t.late), (1, 1, 1, 0));
        let b = l.buckets().unwrap();
        assert_eq!(b.done[bucket_of(isn)], 1);
        assert_eq!(b.rst[bucket_of(isn)], 1);
        let h = l.hist().unwrap();
        let (i, n) = h.connect.iter().enumerate().find(|(_, n)| **n > 0).unwrap();
        assert_eq!(*n, 1);
        let (lo, _) = hist_range(i);
        assert!(
            (500..100_000).contains(&lo),
            "connect latency bucket {lo} us"
        );
        assert_eq!(t.early, 0);

        // A refusal of a SYN whose start time is 300 us ahead of the program's clock (the
        // sender's epoch a little late): counted `early`, charged to its bucket as timely,
        // not read as a wrapped latency above the timeout (which would make it a timeout).
        let ahead = super::isn(now_us + 300, true);
        let before = b.rst[bucket_of(ahead)];
        let (v, _) = l
            .test_run(&seg(TcpControl::Rst, 0, ahead.wrapping_add(1), 8080))
            .unwrap();
        assert_eq!(v, DROP);
        let t = l.totals().unwrap();
        assert_eq!((t.rst, t.rst_matched, t.early), (2, 2, 1));
        assert_eq!(l.buckets().unwrap().rst[bucket_of(ahead)], before + 1);
    }

    #[test]
    fn map_layouts_match_the_c_source() {
        assert_eq!(std::mem::size_of::<Totals>(), 11 * 8);
        assert_eq!(std::mem::size_of::<Buckets>(), 2 * NB * 4);
        assert_eq!(std::mem::size_of::<Hist>(), HB * 8);
        for (name, v) in [
            ("NB", NB),
            ("BUCKET_SHIFT", BUCKET_SHIFT as usize),
            ("HB", HB),
            ("HSUB_BITS", HSUB_BITS as usize),
        ] {
            assert!(
                SOURCE.contains(&format!("#define {name} {v}")),
                "{name} = {v} not in the C source"
            );
        }
        let fields = SOURCE
            .split("struct totals {")
            .nth(1)
            .and_then(|s| s.split("};").next())
            .unwrap()
            .matches("__u64")
            .count();
        assert_eq!(fields, 11);
    }
}
