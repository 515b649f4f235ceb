//! The command line shared by the example servers (clap derive):
//!
//! ```text
//! --iface IFACE --ip ADDR [--ip ADDR ...] --port P [--queues N] [--xdp-mode auto|native|skb]
//!     [--cores LIST] [--stats FILE] [--stats-interval-ms MS]
//!     [--poll-mode prefer-busy|busy|idle] [--idle-spins N] [--bind-mode auto|copy|zerocopy]
//!     [--prefill-time-wait N] [--pcap FILE] [--vlan ID]
//! ```
//!
//! `LIST` is comma-separated CPU numbers or ranges (`0,2-3`). `--poll-mode` picks the
//! [`PollMode`]: `prefer-busy` (default; falls back to `idle` with a message where the kernel
//! or device refuses it), `busy`, or `idle` (wait on the socket after `--idle-spins`
//! empty iterations, default 1000). `--idle-spins` alone means `idle`, as it always did.
//! `--bind-mode` picks how the AF_XDP sockets bind ([`BindMode`]): `auto` (default: zero-copy,
//! falling back to copy), `copy`, or `zerocopy` (start fails, naming the driver, where the
//! driver has no zero-copy support).
//! Waiting costs a wake-up (tens of µs) per burst but leaves the CPU to other threads when
//! there is no traffic: on a machine with no spare core, a busy-polling thread is instead
//! preempted for whole scheduler slices (milliseconds) whenever a kernel thread needs the CPU.
//! `--prefill-time-wait N` is for benchmarks only: N synthetic TIME-WAIT entries (peers in
//! 198.18.0.0/15) are inserted, split across the queues, before the server reports ready.
//! `--pcap FILE` captures what the server receives and sends ([`EngineConfig::capture`];
//! `FILE.<queue>` with several queues). `--vlan ID` (1-4094) serves `--ip` on that 802.1Q
//! VLAN ([`EngineConfig::vlan`]).
//! `--ip` is repeatable and takes IPv4 or IPv6 addresses (`--ip 10.77.0.1 --ip fd00:77::1`):
//! exactly one IPv4 address (the engine listens on one, [`EngineConfig::ip`]) and any number
//! of IPv6 ones ([`EngineConfig::ipv6`]): the server listens on `--port` at each of them
//! (every core then runs an IPv6 stack beside its IPv4 one).
//! Errors print a message and the usage on stderr and exit with status 2; `--help` prints
//! the help and exits 0.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use super::{BindMode, BusyPollConfig, EngineConfig, EngineInfo, PollMode, XdpMode};
use crate::time::Duration;
use crate::wire::VlanId;

/// The usage text, after "usage: PROGRAM".
pub const USAGE: &str = "--iface IFACE --ip ADDR [--ip ADDR ...] --port P [--queues N] \
[--xdp-mode auto|native|skb] [--cores LIST] [--stats FILE] [--stats-interval-ms MS] \
[--poll-mode prefer-busy|busy|idle] [--idle-spins N] [--bind-mode auto|copy|zerocopy] \
[--prefill-time-wait N] [--pcap FILE] [--vlan ID]";

/// `--poll-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PollArg {
    /// AF_XDP preferred busy polling: this core runs the device's receive path too (falls
    /// back to idle, saying why, where the socket cannot be busy-polled, e.g. copy mode).
    PreferBusy,
    /// Spin on the rings; the kernel's receive path runs wherever the device schedules it.
    Busy,
    /// Wait on the socket after --idle-spins empty iterations.
    Idle,
}

/// `--bind-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BindArg {
    /// Zero-copy, falling back to copy mode where the driver refuses it.
    Auto,
    /// Copy mode (every driver; one copy per frame each way).
    Copy,
    /// Zero-copy only: fails, naming the driver, where the driver has no support.
    #[value(name = "zerocopy", alias = "zero-copy")]
    ZeroCopy,
}

impl BindArg {
    /// The engine's [`BindMode`].
    pub fn mode(self) -> BindMode {
        match self {
            BindArg::Auto => BindMode::Auto,
            BindArg::Copy => BindMode::Copy,
            BindArg::ZeroCopy => BindMode::ZeroCopy,
        }
    }
}

/// `--xdp-mode` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum XdpArg {
    Auto,
    Native,
    Skb,
}

fn parse_iface(v: &str) -> Result<String, String> {
    if v.is_empty() || v.len() > 15 || v.contains(['/', ' ', '\0']) {
        return Err(format!("'{v}' is not an interface name"));
    }
    Ok(v.to_string())
}

fn parse_port(v: &str) -> Result<u16, String> {
    v.parse::<u16>()
        .ok()
        .filter(|&p| p != 0)
        .ok_or_else(|| format!("'{v}' is not a port (1-65535)"))
}

fn parse_queues(v: &str) -> Result<u32, String> {
    v.parse::<u32>()
        .ok()
        .filter(|&q| (1..=xtcp_xdp_ebpf::MAX_QUEUES).contains(&q))
        .ok_or_else(|| format!("'{v}' is not 1..={}", xtcp_xdp_ebpf::MAX_QUEUES))
}

/// A CPU list as one value (clap would take a bare `Vec` for a repeated flag).
#[derive(Debug, Clone)]
struct CoreList(Vec<usize>);

fn parse_core_list(v: &str) -> Result<CoreList, String> {
    parse_cores(v).map(CoreList)
}

fn parse_stats(v: &str) -> Result<PathBuf, String> {
    if v.is_empty() {
        return Err("needs a file name".into());
    }
    Ok(PathBuf::from(v))
}

fn parse_interval(v: &str) -> Result<u64, String> {
    v.parse::<u64>()
        .ok()
        .filter(|&ms| (10..=3_600_000).contains(&ms))
        .ok_or_else(|| format!("'{v}' is not 10..=3600000 ms"))
}

/// An xtcp example server on the AF_XDP engine.
#[derive(Debug, Parser)]
#[command(disable_version_flag = true)]
struct Cli {
    /// Interface to attach to (in this network namespace).
    #[arg(long, value_name = "IFACE", value_parser = parse_iface)]
    iface: String,
    /// Address to listen on (normally configured on the interface too); repeat it for an
    /// IPv6 address beside the IPv4 one (the server listens on each).
    #[arg(long, value_name = "ADDR", required = true)]
    ip: Vec<IpAddr>,
    /// Port to listen on.
    #[arg(long, value_name = "P", value_parser = parse_port)]
    port: u16,
    /// Receive queues to serve, one pinned thread each.
    #[arg(long, value_name = "N", default_value = "1", value_parser = parse_queues)]
    queues: u32,
    /// XDP attach mode (auto: native, falling back to skb).
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    xdp_mode: XdpArg,
    /// CPUs for the queues' threads, e.g. `0,2-3` [default: queue i on the i-th usable CPU].
    #[arg(long, value_name = "LIST", value_parser = parse_core_list)]
    cores: Option<CoreList>,
    /// Write the counters as JSON to FILE while running and at exit.
    #[arg(long, value_name = "FILE", value_parser = parse_stats)]
    stats: Option<PathBuf>,
    /// How often the stats file is rewritten.
    #[arg(long, value_name = "MS", default_value = "1000", value_parser = parse_interval)]
    stats_interval_ms: u64,
    /// How a core waits for frames [default: prefer-busy, or idle with --idle-spins].
    #[arg(long, value_enum, value_name = "MODE")]
    poll_mode: Option<PollArg>,
    /// idle mode: empty iterations before waiting on the socket (implies --poll-mode idle).
    #[arg(long, value_name = "N")]
    idle_spins: Option<u32>,
    /// How the AF_XDP sockets bind.
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    bind_mode: BindArg,
    /// For benchmarks only: insert N synthetic TIME-WAIT entries (peers in 198.18.0.0/15,
    /// never a real client), split across the queues, before reporting ready, to measure
    /// the server at TIME-WAIT occupancies a connection rate cannot reach in 2×MSL. They
    /// expire 2×MSL (60 s) after start. Each queue's share is capped at its table's capacity
    /// (10,000,000).
    #[arg(long, value_name = "N", default_value = "0")]
    prefill_time_wait: u64,
    /// Capture what the server receives and sends as pcap (FILE.<queue> with several queues).
    #[arg(long, value_name = "FILE", value_parser = parse_stats)]
    pcap: Option<PathBuf>,
    /// Serve --ip on this 802.1Q VLAN (1-4094): only frames tagged with it are steered and
    /// answered, and everything sent carries the tag.
    #[arg(long, value_name = "ID")]
    vlan: Option<VlanId>,
}

/// Parsed server arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    pub iface: String,
    /// The IPv4 `--ip`.
    pub ip: Ipv4Addr,
    /// The IPv6 `--ip` addresses, in order (default none).
    pub ipv6: Vec<Ipv6Addr>,
    pub port: u16,
    /// Default 1.
    pub queues: u32,
    /// Default auto.
    pub xdp_mode: XdpMode,
    /// Default: the engine's (queue i on the i-th usable CPU).
    pub cores: Option<Vec<usize>>,
    pub stats: Option<PathBuf>,
    /// Default 1000.
    pub stats_interval_ms: u64,
    /// Default prefer-busy; idle when only `--idle-spins` is given.
    pub poll: PollArg,
    /// `Some(n)`: empty iterations before waiting, in idle mode (default 1000).
    pub idle_spins: Option<u32>,
    /// Default auto.
    pub bind: BindArg,
    /// Synthetic TIME-WAIT entries inserted at start (benchmarks). Default 0.
    pub prefill_time_wait: u64,
    /// Capture file (default none).
    pub pcap: Option<PathBuf>,
    /// 802.1Q VLAN (default none: untagged).
    pub vlan: Option<VlanId>,
}

/// What parsing decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(ServerArgs),
    /// `--help`: the text to print.
    Help(String),
}

/// Parses a CPU list such as `0,2-3`.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let bad = || format!("bad entry '{part}' (want e.g. 0,2-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if a > b || b - a > 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(out)
}

/// Parses the arguments after the program name (`prog` names it in the help).
pub fn parse_as(prog: &str, args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let argv = std::iter::once(prog.to_string()).chain(args);
    let cli = match Cli::try_parse_from(argv) {
        Ok(c) => c,
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelp => {
            return Ok(Parsed::Help(e.render().to_string()));
        }
        Err(e) => {
            // clap's own text, without its "error: " prefix and trailing usage/help hint
            // (the caller prints the usage).
            let text = e.render().to_string();
            let first: Vec<&str> = text
                .lines()
                .take_while(|l| !l.trim().is_empty())
                .map(str::trim)
                .collect();
            return Err(first.join(" ").trim_start_matches("error: ").to_string());
        }
    };
    let (mut v4, mut ipv6) = (Vec::new(), Vec::new());
    for ip in cli.ip {
        match ip {
            IpAddr::V4(a) => v4.push(a),
            IpAddr::V6(a) => ipv6.push(a),
        }
    }
    let ip = match v4[..] {
        [ip] => ip,
        [] => {
            return Err(format!(
                "--ip: an IPv4 address is needed ({} given: IPv6 only is not served yet)",
                ipv6.iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        _ => return Err("--ip: one IPv4 address only (the engine listens on one)".into()),
    };
    if let Some(bad) = ipv6.iter().find(|a| a.is_unspecified() || a.is_multicast()) {
        return Err(format!("--ip: {bad} is not a unicast address"));
    }
    ipv6.dedup();
    let cores = cli.cores.map(|c| c.0);
    if let Some(c) = &cores
        && c.len() < cli.queues as usize
    {
        return Err(format!(
            "--cores lists {} CPU(s) for {} queue(s)",
            c.len(),
            cli.queues
        ));
    }
    let poll = match (cli.poll_mode, cli.idle_spins) {
        (Some(p), Some(_)) if p != PollArg::Idle => {
            return Err("--idle-spins goes with --poll-mode idle".into());
        }
        (Some(p), _) => p,
        (None, Some(_)) => PollArg::Idle,
        (None, None) => PollArg::PreferBusy,
    };
    Ok(Parsed::Run(ServerArgs {
        iface: cli.iface,
        ip,
        ipv6,
        port: cli.port,
        queues: cli.queues,
        xdp_mode: match cli.xdp_mode {
            XdpArg::Auto => XdpMode::Auto,
            XdpArg::Native => XdpMode::Native,
            XdpArg::Skb => XdpMode::Skb,
        },
        cores,
        stats: cli.stats,
        stats_interval_ms: cli.stats_interval_ms,
        poll,
        idle_spins: cli.idle_spins,
        bind: cli.bind_mode,
        prefill_time_wait: cli.prefill_time_wait,
        pcap: cli.pcap,
        vlan: cli.vlan,
    }))
}

/// [`parse_as`] with the program name `xtcp`.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    parse_as("xtcp", args)
}

impl ServerArgs {
    /// Parses `std::env::args()`; on `--help` prints the help and exits 0, on an error
    /// prints it with the usage and exits 2.
    pub fn from_env_or_exit() -> ServerArgs {
        let mut args = std::env::args();
        let prog = args.next().unwrap_or_else(|| "xtcp".into());
        let prog = prog.rsplit('/').next().unwrap_or("xtcp").to_string();
        match parse_as(&prog, args) {
            Ok(Parsed::Run(a)) => a,
            Ok(Parsed::Help(text)) => {
                print!("{text}");
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("{prog}: {e}\nusage: {prog} {USAGE}");
                std::process::exit(2);
            }
        }
    }

    /// The engine configuration for these arguments (other fields at their defaults), with
    /// `ports = [port]`.
    pub fn engine_config(&self) -> EngineConfig {
        let mut c = EngineConfig::new(self.iface.clone(), self.ip);
        c.ipv6 = self.ipv6.clone();
        c.ports = vec![self.port];
        c.queues = self.queues;
        c.xdp_mode = self.xdp_mode;
        c.cores = self.cores.clone();
        c.stats_file = self.stats.clone();
        c.stats_interval = Duration::from_millis(self.stats_interval_ms);
        c.poll = match self.poll {
            PollArg::PreferBusy => PollMode::PreferBusy(BusyPollConfig::default()),
            PollArg::Busy => PollMode::Busy,
            PollArg::Idle => PollMode::Idle,
        };
        c.capture = self.pcap.as_ref().map(crate::capture::CaptureConfig::new);
        if let Some(n) = self.idle_spins {
            c.idle_spins = n;
        }
        c.bind = self.bind.mode();
        c.prefill_time_wait = self.prefill_time_wait;
        c.vlan = self.vlan;
        c
    }
}

/// The line a server prints once it listens, e.g.
/// `xtcp echo listening on 10.77.0.1:7 (iface xt-a, 1 queue, skb mode)`.
pub fn ready_line(what: &str, args: &ServerArgs, info: &EngineInfo) -> String {
    format!(
        "xtcp {what} listening on {}:{}{} (iface {}{}, {} queue{}, {} mode{}, {} polling)",
        args.ip,
        args.port,
        args.ipv6
            .iter()
            .map(|a| format!(" and [{a}]:{}", args.port))
            .collect::<String>(),
        args.iface,
        args.vlan.map(|v| format!(" vlan {v}")).unwrap_or_default(),
        args.queues,
        if args.queues == 1 { "" } else { "s" },
        info.xdp_mode,
        if info.zero_copy { ", zero-copy" } else { "" },
        info.poll,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, String> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn full_and_minimal() {
        let Parsed::Run(a) = p(&[
            "--iface",
            "xt-a",
            "--ip",
            "10.77.0.1",
            "--port",
            "7",
            "--queues",
            "2",
            "--xdp-mode",
            "skb",
            "--cores",
            "0-1",
            "--stats",
            "/tmp/s.json",
            "--idle-spins",
            "200",
            "--pcap",
            "/tmp/c.pcap",
        ])
        .unwrap() else {
            panic!("not Run")
        };
        assert_eq!(a.iface, "xt-a");
        assert_eq!(a.ip, Ipv4Addr::new(10, 77, 0, 1));
        assert_eq!(a.port, 7);
        assert_eq!(a.queues, 2);
        assert_eq!(a.xdp_mode, XdpMode::Skb);
        assert_eq!(a.cores, Some(vec![0, 1]));
        assert_eq!(a.stats, Some(PathBuf::from("/tmp/s.json")));
        assert_eq!(a.idle_spins, Some(200));
        assert_eq!(a.poll, PollArg::Idle, "--idle-spins alone means idle");
        let c = a.engine_config();
        assert_eq!(c.ports, vec![7]);
        assert_eq!(c.queues, 2);
        assert_eq!((c.poll, c.idle_spins), (PollMode::Idle, 200));
        assert_eq!(c.capture.unwrap().path, PathBuf::from("/tmp/c.pcap"));

        let Parsed::Run(a) = p(&["--port", "80", "--ip", "1.2.3.4", "--iface", "eth0"]).unwrap()
        else {
            panic!("not Run")
        };
        let c = a.engine_config();
        assert_eq!(c.poll, PollMode::PreferBusy(BusyPollConfig::default()));
        assert_eq!(c.bind, BindMode::Auto);
        assert_eq!(c.stats_interval, Duration::from_secs(1));
        assert_eq!(
            (a.queues, a.xdp_mode, a.cores, a.stats, a.idle_spins),
            (1, XdpMode::Auto, None, None, None)
        );
        let Parsed::Help(h) = p(&["--help"]).unwrap() else {
            panic!("not Help")
        };
        assert!(
            h.contains("--poll-mode") && h.contains("prefer-busy"),
            "{h}"
        );
        assert!(
            h.contains("--prefill-time-wait") && h.contains("benchmarks only"),
            "{h}"
        );
    }

    #[test]
    fn bind_modes() {
        let base = ["--iface", "xt-a", "--ip", "10.77.0.1", "--port", "7"];
        for (arg, want) in [
            ("auto", BindMode::Auto),
            ("copy", BindMode::Copy),
            ("zerocopy", BindMode::ZeroCopy),
            ("zero-copy", BindMode::ZeroCopy),
        ] {
            let mut v = base.to_vec();
            v.extend(["--bind-mode", arg]);
            let Parsed::Run(a) = p(&v).unwrap() else {
                panic!("not Run")
            };
            assert_eq!(a.engine_config().bind, want, "{arg}");
        }
        let mut v = base.to_vec();
        v.extend(["--bind-mode", "fast"]);
        assert!(p(&v).unwrap_err().contains("fast"));
    }

    #[test]
    fn poll_modes() {
        let base = ["--iface", "xt-a", "--ip", "10.77.0.1", "--port", "7"];
        let run = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            match p(&v).unwrap() {
                Parsed::Run(a) => a.engine_config(),
                Parsed::Help(_) => panic!("help"),
            }
        };
        assert_eq!(run(&["--poll-mode", "busy"]).poll, PollMode::Busy);
        assert_eq!(run(&["--poll-mode", "idle"]).poll, PollMode::Idle);
        assert_eq!(run(&["--poll-mode", "idle"]).idle_spins, 1000);
        let c = run(&["--poll-mode", "idle", "--idle-spins", "64"]);
        assert_eq!((c.poll, c.idle_spins), (PollMode::Idle, 64));
        assert!(matches!(
            run(&["--poll-mode", "prefer-busy"]).poll,
            PollMode::PreferBusy(_)
        ));
        assert_eq!(
            run(&["--stats-interval-ms", "200"]).stats_interval,
            Duration::from_millis(200)
        );
        assert_eq!(run(&[]).prefill_time_wait, 0);
        assert_eq!(
            run(&["--prefill-time-wait", "10000000"]).prefill_time_wait,
            10_000_000
        );
        let mut v: Vec<&str> = base.to_vec();
        v.extend_from_slice(&["--poll-mode", "busy", "--idle-spins", "5"]);
        assert!(p(&v).unwrap_err().contains("--idle-spins"));
        v.truncate(6);
        v.extend_from_slice(&["--poll-mode", "fast"]);
        assert!(p(&v).is_err());
        v.truncate(6);
        v.extend_from_slice(&["--stats-interval-ms", "1"]);
        assert!(p(&v).is_err());
    }

    #[test]
    fn errors() {
        let base = ["--iface", "xt-a", "--ip", "10.77.0.1", "--port", "7"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            p(&v)
        };
        assert!(
            p(&["--ip", "10.0.0.1", "--port", "7"])
                .unwrap_err()
                .contains("--iface")
        );
        assert!(
            p(&["--iface", "a", "--port", "7"])
                .unwrap_err()
                .contains("--ip")
        );
        assert!(
            p(&["--iface", "a", "--ip", "1.2.3.4"])
                .unwrap_err()
                .contains("--port")
        );
        assert!(with(&["--bogus"]).unwrap_err().contains("'--bogus'"));
        assert!(with(&["--queues"]).unwrap_err().contains("--queues"));
        assert!(with(&["--queues", "0"]).is_err());
        assert!(with(&["--xdp-mode", "fast"]).is_err());
        assert!(with(&["--cores", "x"]).is_err());
        assert!(with(&["--idle-spins", "-1"]).is_err());
        assert!(with(&["--idle-spins", "many"]).is_err());
        assert!(with(&["--prefill-time-wait", "-5"]).is_err());
        assert!(with(&["--queues", "2", "--cores", "0"]).is_err());
        assert!(p(&["--iface", "a", "--ip", "1.2.3", "--port", "7"]).is_err());
        assert!(p(&["--iface", "a", "--ip", "1.2.3.4", "--port", "70000"]).is_err());
        assert!(p(&["--iface", "a", "--ip", "1.2.3.4", "--port", "0"]).is_err());
    }

    #[test]
    fn vlan() {
        let base = ["--iface", "xt-a", "--ip", "10.77.0.1", "--port", "7"];
        let with = |extra: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            v.extend_from_slice(extra);
            p(&v)
        };
        let Ok(Parsed::Run(a)) = with(&[]) else {
            panic!("not Run")
        };
        assert_eq!(a.engine_config().vlan, None);
        let Ok(Parsed::Run(a)) = with(&["--vlan", "100"]) else {
            panic!("not Run")
        };
        assert_eq!(a.engine_config().vlan, VlanId::new(100));
        for bad in ["0", "4095", "x", "1.5"] {
            let e = with(&["--vlan", bad]).unwrap_err();
            assert!(e.contains("--vlan"), "{bad}: {e}");
        }
        assert!(with(&["--vlan", "4096"]).unwrap_err().contains("1-4094"));
    }

    #[test]
    fn ip_repeatable_with_ipv6() {
        let base = ["--iface", "xt-a", "--port", "7"];
        let with = |ips: &[&str]| {
            let mut v: Vec<&str> = base.to_vec();
            for ip in ips {
                v.extend(["--ip", ip]);
            }
            p(&v)
        };
        let Ok(Parsed::Run(a)) = with(&["10.77.0.1", "fd00:77::1", "fd00:77::9"]) else {
            panic!("not Run")
        };
        let v6: Vec<Ipv6Addr> = vec!["fd00:77::1".parse().unwrap(), "fd00:77::9".parse().unwrap()];
        assert_eq!((a.ip, &a.ipv6), (Ipv4Addr::new(10, 77, 0, 1), &v6));
        let c = a.engine_config();
        assert_eq!((c.ip, c.ipv6), (Ipv4Addr::new(10, 77, 0, 1), v6));
        // Order does not matter; IPv4 alone leaves the IPv6 list empty.
        let Ok(Parsed::Run(a)) = with(&["fd00:77::1", "10.77.0.1"]) else {
            panic!("not Run")
        };
        assert_eq!(a.ip, Ipv4Addr::new(10, 77, 0, 1));
        let Ok(Parsed::Run(a)) = with(&["10.77.0.1"]) else {
            panic!("not Run")
        };
        assert!(a.engine_config().ipv6.is_empty());
        // IPv6 only, two IPv4, non-unicast IPv6, garbage, none at all.
        let e = with(&["fd00:77::1"]).unwrap_err();
        assert!(
            e.contains("IPv4 address is needed") && e.contains("fd00:77::1"),
            "{e}"
        );
        assert!(
            with(&["10.0.0.1", "10.0.0.2"])
                .unwrap_err()
                .contains("one IPv4")
        );
        assert!(
            with(&["10.0.0.1", "::"])
                .unwrap_err()
                .contains("not a unicast")
        );
        assert!(
            with(&["10.0.0.1", "ff02::1"])
                .unwrap_err()
                .contains("not a unicast")
        );
        assert!(with(&["10.0.0.1", "fd00::g"]).is_err());
        assert!(with(&[]).unwrap_err().contains("--ip"));
    }

    /// An IPv6 `--ip` is no longer refused: the start goes on to the interface (which
    /// does not exist here), not a refusal of IPv6. (Serving it: tests/veth_ipv6.rs.)
    #[test]
    fn engine_accepts_ipv6() {
        struct Nop;
        impl crate::engine::App for Nop {
            fn on_event(&mut self, _: &mut crate::engine::Io<'_>, _: crate::engine::AppEvent) {}
        }
        let Ok(Parsed::Run(a)) = p(&[
            "--iface",
            "no-such-if0",
            "--ip",
            "10.77.0.1",
            "--ip",
            "fd00:77::1",
            "--port",
            "7",
        ]) else {
            panic!("not Run")
        };
        let e = match crate::engine::Engine::start(a.engine_config(), |_| Nop) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("engine started on an interface that does not exist"),
        };
        assert!(!e.contains("IPv6"), "{e}");
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("0,2-4,7").unwrap(), vec![0, 2, 3, 4, 7]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("").is_err());
    }
}
