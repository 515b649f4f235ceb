//! Command line: clap definitions and the checks clap cannot express.

use crate::backend::{BackendKind, Load, Workload};
use crate::server::Mode;
use clap::{Args, Parser, Subcommand};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "xtcp-loadgen",
    version,
    about = "Measures TCP handshake rate, teardown rate and TIME-WAIT pressure (xtcp vs Linux)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub cmd: Cmd,
}

// Parsed once per process: the size difference between the variants costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Generate load against a server and report rates, latencies and TIME-WAIT pressure.
    Run(RunArgs),
    /// Run the Linux reference server (epoll, SO_REUSEPORT listener per thread, pinned).
    KernelServer(ServerArgs),
    /// Draw one SVG per workload comparing servers: rate over time, connect latency by
    /// percentile, server-core CPU breakdown (from `run --json` reports).
    ComparePlot(CompareArgs),
    /// The I/O ceiling: a stateless AF_XDP responder answering each client frame with the
    /// frames a server would send. NOT a TCP server (no state, retransmission or TIME-WAIT);
    /// see the reflector module docs.
    Reflector(ReflectorArgs),
}

#[derive(Debug, Args)]
pub struct ReflectorArgs {
    /// Interface to attach to (in this network namespace).
    #[arg(long)]
    pub iface: String,
    /// Address the client connects to.
    #[arg(long)]
    pub ip: Ipv4Addr,
    /// Port the client connects to.
    #[arg(long)]
    pub port: u16,
    /// echo (connect, crr, rr) or respond-close (server-close).
    #[arg(long, value_enum)]
    pub mode: crate::reflector::ReflectMode,
    /// Core to pin the thread to.
    #[arg(long)]
    pub core: Option<usize>,
    /// Write counters and the work accounting (busy_ns, loop_ns) as JSON every 100 ms.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// The workload named in the title (rr plots transactions, the others handshakes).
    #[arg(long)]
    pub workload: String,
    /// Output file (SVG).
    #[arg(long, value_name = "FILE.svg")]
    pub out: PathBuf,
    /// One server: LABEL=MAX.json[,LAT.json] (repeat for each server; either file may be
    /// missing on disk, its panels then stay empty).
    #[arg(long = "run", value_name = "LABEL=MAX[,LAT]", required = true)]
    pub runs: Vec<String>,
}

/// What is being measured, for the report's `server` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ServerKind {
    Xtcp,
    Linux,
    /// The stateless I/O-ceiling responder (`reflector`).
    Reflector,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Server address: `IP:PORT`, or `[IPV6]:PORT` (IPv6: kernel backend only for now).
    #[arg(long, value_name = "IP:PORT")]
    pub target: SocketAddr,
    /// What each connection does.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Measured duration in seconds (after the warmup).
    #[arg(long, value_name = "SECS")]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    pub warmup: f64,
    /// Closed loop: connections (rr: transactions) in flight [default: 32 when --rate is absent].
    #[arg(long, value_name = "N", conflicts_with = "rate")]
    pub concurrency: Option<u32>,
    /// Open loop: new connections (rr: transactions) per second, latency from intended start.
    #[arg(long, value_name = "CONN_PER_S")]
    pub rate: Option<f64>,
    /// Which stack opens the client connections. `xdp-stateless` is NOT a full TCP (connect
    /// workload only, no retransmission, no client TIME-WAIT): see docs/loadgen.md.
    #[arg(long, value_enum, default_value = "xtcp")]
    pub backend: BackendKind,
    /// Interface for the xtcp backend.
    #[arg(long, value_name = "IFACE")]
    pub iface: Option<String>,
    /// xtcp backend: the 802.1Q VLAN (1-4094) the client addresses live on: only frames
    /// tagged with it are steered, and everything sent carries the tag.
    #[arg(long, value_name = "ID")]
    pub vlan: Option<xtcp::wire::VlanId>,
    /// Also send this many spoofed SYNs per second from random addresses of the --src-ip
    /// prefix (xtcp backend): the report then gives the legitimate connections' success rate
    /// under attack.
    #[arg(long, value_name = "SYN_PER_S")]
    pub syn_flood_rate: Option<f64>,
    /// Source address or prefix, IPv4 or IPv6 (the target's family); every address is bound
    /// round-robin (kernel backend: each must be local). An IPv6 prefix gives its first 65534
    /// addresses.
    #[arg(long, value_name = "IP[/PREFIX]")]
    pub src_ip: Option<String>,
    /// Cores for the load-generating threads, one thread per core (e.g. `1` or `0,2-3`).
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Request size in bytes [default: 1; server-close: a 46-byte HTTP GET with `Connection: close`, padded to N].
    #[arg(long, value_name = "N")]
    pub request_bytes: Option<usize>,
    /// Bytes that complete a response [default: the request size, as the echo server answers;
    /// server-close reads until EOF and needs at least this many, default 1].
    #[arg(long, value_name = "M")]
    pub response_bytes: Option<usize>,
    /// Write the results as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write an SVG with rate over time, TIME-WAIT over time and connect-latency distribution.
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// The server's JSON stats file (top-level `time_wait`), read once a second.
    #[arg(long, value_name = "FILE")]
    pub server_stats: Option<PathBuf>,
    /// Network namespace of a Linux server: its /proc/net/sockstat gives server TIME-WAIT.
    #[arg(long, value_name = "NAME")]
    pub server_netns: Option<String>,
    /// What the target is, for the report [default: the stats file's `server` key, else `xtcp`
    /// with --server-stats, else `linux`].
    #[arg(long, value_enum)]
    pub server_kind: Option<ServerKind>,
    /// The server's cores (e.g. `1`): with --cores, the report gets a `cpu` object (both
    /// sides' /proc/stat shares over the measured window, server CPU per connection) and a
    /// `bound` verdict.
    #[arg(long, value_name = "LIST")]
    pub server_cores: Option<String>,
    /// The I/O ceiling for this workload in connections per second (measured by the stateless
    /// reflector in the same run): the report gets `ceiling_pct`.
    #[arg(long, value_name = "PER_S")]
    pub ceiling_rate: Option<f64>,
    /// Connect, response and close timeout in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 3000)]
    pub timeout_ms: u64,
    /// Cap on starts per second in closed loop (pacing is never off).
    #[arg(long, value_name = "PER_S", default_value_t = 200_000.0)]
    pub max_rate: f64,
    /// rr in open loop: persistent connections per load thread.
    #[arg(long, value_name = "N", default_value_t = 32)]
    pub rr_pool: u32,
    /// No live progress line.
    #[arg(long)]
    pub quiet: bool,
    /// xtcp backend: capture what the load generator sends and receives as pcap (one file
    /// per load thread: FILE itself with one, FILE.<i> with several).
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Address to listen on, IPv4 or IPv6 (`::`: both families).
    #[arg(long)]
    pub ip: IpAddr,
    /// Port to listen on (0: pick one; the chosen port is printed).
    #[arg(long)]
    pub port: u16,
    /// echo, or respond-close (HTTP/1.1 200 with Connection: close, server closes first).
    #[arg(long, value_enum)]
    pub mode: Mode,
    /// Listener threads [default: one per core of --cores, else 1].
    #[arg(long, value_name = "N")]
    pub threads: Option<usize>,
    /// Cores to pin the threads to, round-robin.
    #[arg(long, value_name = "LIST")]
    pub cores: Option<String>,
    /// Write counters (accepted, closed, bytes, time_wait) as JSON once a second.
    #[arg(long, value_name = "FILE")]
    pub stats: Option<PathBuf>,
    /// respond-close: response body size in bytes.
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub body_bytes: usize,
}

/// Largest source prefix expanded (65 534 addresses).
const MIN_PREFIX: u8 = 16;
const MAX_DURATION_S: f64 = 7.0 * 86400.0;

impl RunArgs {
    /// The checks clap cannot express.
    pub fn validate(&self) -> Result<(), String> {
        if !(self.duration > 0.0 && self.duration <= MAX_DURATION_S) {
            return Err(format!(
                "--duration must be > 0 and at most {MAX_DURATION_S} seconds (got {})",
                self.duration
            ));
        }
        if !(self.warmup >= 0.0 && self.warmup <= MAX_DURATION_S) {
            return Err(format!("--warmup must be >= 0 (got {})", self.warmup));
        }
        if self.concurrency == Some(0) {
            return Err("--concurrency must be > 0".into());
        }
        if let Some(r) = self.rate
            && !(r > 0.0 && r <= 1e8)
        {
            return Err(format!("--rate must be > 0 (got {r})"));
        }
        if !(self.max_rate > 0.0 && self.max_rate.is_finite()) {
            return Err("--max-rate must be > 0".into());
        }
        if self.timeout_ms == 0 {
            return Err("--timeout-ms must be > 0".into());
        }
        if self.rr_pool == 0 {
            return Err("--rr-pool must be > 0".into());
        }
        if self.target.port() == 0 || self.target.ip().is_unspecified() {
            return Err(format!(
                "--target {} is not a connectable address",
                self.target
            ));
        }
        if let Some(s) = &self.src_ip {
            let (_, (net, _)) = parse_src(s)?;
            if net.is_ipv4() != self.target.is_ipv4() {
                return Err(format!(
                    "--src-ip {s} and --target {} are of different address families",
                    self.target
                ));
            }
        }
        if self.workload == Workload::SynFlood && self.src_ip.is_none() {
            return Err("workload syn-flood needs --src-ip PREFIX (the spoofed sources)".into());
        }
        if self.workload == Workload::SynFlood && self.rate.is_none() {
            return Err(
                "workload syn-flood needs --rate SYN_PER_S (the flood is open loop)".into(),
            );
        }
        if let Some(r) = self.syn_flood_rate {
            if !(r > 0.0 && r <= 1e8) {
                return Err(format!("--syn-flood-rate must be > 0 (got {r})"));
            }
            if self.workload == Workload::SynFlood {
                return Err(
                    "--syn-flood-rate goes with a legitimate workload; workload syn-flood takes \
                     its rate from --rate"
                        .into(),
                );
            }
            if self.src_ip.is_none() {
                return Err("--syn-flood-rate needs --src-ip PREFIX (the spoofed sources)".into());
            }
        }
        Ok(())
    }

    pub fn load(&self) -> Load {
        match (self.rate, self.concurrency) {
            (Some(rate), _) => Load::Open { rate },
            (None, c) => Load::Closed {
                concurrency: c.unwrap_or(32),
            },
        }
    }

    /// The request payload for this workload.
    pub fn request(&self) -> Vec<u8> {
        match self.workload {
            Workload::ServerClose => http_get(self.request_bytes.unwrap_or(0)),
            _ => vec![b'x'; self.request_bytes.unwrap_or(1).max(1)],
        }
    }

    pub fn response_bytes(&self) -> usize {
        match self.workload {
            Workload::ServerClose => self.response_bytes.unwrap_or(1),
            _ => self
                .response_bytes
                .unwrap_or_else(|| self.request().len())
                .max(1),
        }
    }
}

/// A GET request of exactly `n` bytes where `n` ≥ 46 (the minimum), padding the path. It asks
/// for `Connection: close`, so an HTTP/1.1 server closes first after its response.
pub fn http_get(n: usize) -> Vec<u8> {
    const BASE: usize = 46; // "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    let pad = n.saturating_sub(BASE);
    let mut r = b"GET /".to_vec();
    r.extend(std::iter::repeat_n(b'a', pad));
    r.extend_from_slice(b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    r
}

/// Addresses taken from an IPv6 prefix: its first host addresses, `::1` up (the same count
/// as the largest IPv4 prefix, /16, gives).
const MAX_V6_SOURCES: u128 = 65534;

/// Parses `IP` or `IP/PREFIX` (IPv4 or IPv6) into the address list plus the prefix itself.
/// IPv4: network and broadcast addresses excluded for prefixes shorter than /31, at most /16.
/// IPv6: the prefix's first [`MAX_V6_SOURCES`] addresses from `::1` (the all-zero host part
/// is the subnet-router anycast address, RFC 4291 §2.6.1), any prefix length.
pub fn parse_src(s: &str) -> Result<(Vec<IpAddr>, (IpAddr, u8)), String> {
    let (ip, len) = match s.split_once('/') {
        Some((ip, len)) => (ip, Some(len)),
        None => (s, None),
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("--src-ip {s}: `{ip}` is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("--src-ip {s}: bad prefix length `{l}`"))?,
        None => max,
    };
    let ip = match ip {
        IpAddr::V4(ip) => ip,
        IpAddr::V6(ip) => return parse_src6(s, ip, len),
    };
    if len < MIN_PREFIX {
        return Err(format!(
            "--src-ip {s}: prefix /{len} is too large (at most /{MIN_PREFIX}, 65534 addresses)"
        ));
    }
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let net = u32::from(ip) & mask;
    let size = 1u64 << (32 - len);
    let addrs: Vec<IpAddr> = if len == 32 {
        vec![ip.into()]
    } else if len >= 31 {
        (0..size)
            .map(|i| Ipv4Addr::from(net + i as u32).into())
            .collect()
    } else {
        (1..size - 1)
            .map(|i| Ipv4Addr::from(net + i as u32).into())
            .collect()
    };
    Ok((addrs, (Ipv4Addr::from(net).into(), len)))
}

fn parse_src6(s: &str, ip: Ipv6Addr, len: u8) -> Result<(Vec<IpAddr>, (IpAddr, u8)), String> {
    if ip.is_multicast() || ip.is_unspecified() {
        return Err(format!("--src-ip {s}: not a unicast address"));
    }
    if len == 128 {
        return Ok((vec![ip.into()], (ip.into(), 128)));
    }
    let host_bits = 128 - u32::from(len);
    let mask = u128::MAX.checked_shl(host_bits).unwrap_or(0);
    let net = u128::from(ip) & mask;
    let size = 1u128.checked_shl(host_bits).unwrap_or(u128::MAX);
    let addrs = (1..size.min(MAX_V6_SOURCES + 1))
        .map(|i| IpAddr::V6(Ipv6Addr::from(net + i)))
        .collect();
    Ok((addrs, (Ipv6Addr::from(net).into(), len)))
}

/// Fails with a clear message unless every address is configured on this host (checked by
/// binding a socket to it, which also accepts 127.0.0.0/8 on loopback, and a whole prefix
/// routed `local` to loopback: `ip route add local 10.78.0.0/16 dev lo`; for IPv6 also
/// `sysctl net.ipv6.ip_nonlocal_bind=1`, since an IPv6 bind checks the address list, not
/// the routes).
pub fn check_local(addrs: &[IpAddr], spec: &str) -> Result<(), String> {
    let mut missing = Vec::new();
    for &a in addrs {
        let probe = crate::sys::tcp_socket_for(a).map_err(|e| format!("socket: {e}"))?;
        let r = crate::sys::set_int_opt(probe, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1)
            .and_then(|()| crate::sys::bind(probe, SocketAddr::new(a, 0)));
        crate::sys::close(probe);
        if let Err(e) = r
            && e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
        {
            missing.push(a);
            if missing.len() >= 3 {
                break;
            }
        }
    }
    if missing.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = missing.iter().map(|a| a.to_string()).collect();
    let (len, route) = if missing[0].is_ipv4() {
        (32, "ip route add local PREFIX dev lo")
    } else {
        // IPv6 binds only configured addresses unless non-local binds are allowed.
        (
            128,
            "ip -6 route add local PREFIX dev lo` plus `sysctl net.ipv6.ip_nonlocal_bind=1",
        )
    };
    Err(format!(
        "--src-ip {spec}: address {} not configured on this host; add them (e.g. `ip addr add \
         {}/{len} dev IFACE`, or a whole prefix with `{route}`) or give a smaller prefix",
        list.join(", "),
        missing[0]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(a: u8, b: u8, c: u8, d: u8) -> IpAddr {
        Ipv4Addr::new(a, b, c, d).into()
    }

    #[test]
    fn src_prefixes() {
        let (a, p) = parse_src("10.0.0.7").unwrap();
        assert_eq!(a, vec![v4(10, 0, 0, 7)]);
        assert_eq!(p, (v4(10, 0, 0, 7), 32));
        let (a, p) = parse_src("10.0.0.9/30").unwrap();
        assert_eq!(a, vec![v4(10, 0, 0, 9), v4(10, 0, 0, 10)]);
        assert_eq!(p, (v4(10, 0, 0, 8), 30));
        assert_eq!(parse_src("10.0.0.0/31").unwrap().0.len(), 2);
        assert_eq!(parse_src("10.0.0.0/16").unwrap().0.len(), 65534);
        assert!(parse_src("10.0.0.0/8").is_err());
        assert!(parse_src("10.0.0.0/33").is_err());
        assert!(parse_src("nope/24").is_err());
    }

    #[test]
    fn src_prefixes_v6() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let (a, p) = parse_src("fd00:78::7").unwrap();
        assert_eq!((a, p), (vec![ip("fd00:78::7")], (ip("fd00:78::7"), 128)));
        let (a, p) = parse_src("fd00:78::9/126").unwrap();
        assert_eq!(
            a,
            vec![ip("fd00:78::9"), ip("fd00:78::a"), ip("fd00:78::b")]
        );
        assert_eq!(p, (ip("fd00:78::8"), 126));
        let (a, p) = parse_src("fd00:78::/64").unwrap();
        assert_eq!(a.len(), 65534);
        assert_eq!((a[0], a[65533]), (ip("fd00:78::1"), ip("fd00:78::fffe")));
        assert_eq!(p, (ip("fd00:78::"), 64));
        assert_eq!(parse_src("2001:db8::/0").unwrap().0.len(), 65534);
        assert!(parse_src("fd00:78::/129").is_err());
        assert!(parse_src("ff02::1").is_err());
        assert!(parse_src("::/64").is_err());
        assert!(parse_src("fd00:78::g/64").is_err());
    }

    #[test]
    fn target_and_sources_share_a_family() {
        use clap::Parser;
        let run = |extra: &[&str]| {
            let mut v = vec![
                "xtcp-loadgen",
                "run",
                "--workload",
                "connect",
                "--duration",
                "1",
            ];
            v.extend_from_slice(extra);
            match Cli::try_parse_from(v).map_err(|e| e.to_string())?.cmd {
                Cmd::Run(a) => a.validate().map(|()| a),
                _ => Err("not run".into()),
            }
        };
        let a = run(&["--target", "[fd00:77::1]:8080", "--src-ip", "fd00:78::/64"]).unwrap();
        assert_eq!(a.target, "[fd00:77::1]:8080".parse::<SocketAddr>().unwrap());
        run(&["--target", "10.77.0.1:8080", "--src-ip", "10.78.0.0/24"]).unwrap();
        let e = run(&["--target", "[fd00:77::1]:8080", "--src-ip", "10.78.0.0/24"]).unwrap_err();
        assert!(e.contains("different address families"), "{e}");
        let e = run(&["--target", "10.77.0.1:8080", "--src-ip", "fd00:78::/64"]).unwrap_err();
        assert!(e.contains("different address families"), "{e}");
        assert!(
            run(&["--target", "[::]:8080"])
                .unwrap_err()
                .contains("not a connectable")
        );
        assert!(
            run(&["--target", "fd00:77::1:8080"]).is_err(),
            "IPv6 needs brackets"
        );
    }

    #[test]
    fn http_get_sizes() {
        assert_eq!(http_get(0).len(), 46);
        assert_eq!(http_get(100).len(), 100);
        assert!(http_get(64).ends_with(b"\r\n\r\n"));
    }

    #[test]
    fn loopback_is_local_and_documentation_net_is_not() {
        check_local(&[v4(127, 0, 0, 2)], "127.0.0.2").unwrap();
        let e = check_local(&[v4(192, 0, 2, 77)], "192.0.2.77").unwrap_err();
        assert!(e.contains("not configured"), "{e}");
        check_local(&[IpAddr::V6(Ipv6Addr::LOCALHOST)], "::1").unwrap();
        let doc: IpAddr = "2001:db8::77".parse().unwrap();
        let e = check_local(&[doc], "2001:db8::77").unwrap_err();
        assert!(
            e.contains("not configured") && e.contains("2001:db8::77/128"),
            "{e}"
        );
    }
}
