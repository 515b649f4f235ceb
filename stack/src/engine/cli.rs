//! The command line shared by the example servers:
//!
//! ```text
//! --iface IFACE --ip A.B.C.D --port P [--queues N] [--xdp-mode auto|native|skb]
//!     [--cores LIST] [--stats FILE] [--idle-spins N] [--pcap FILE]
//! ```
//!
//! `LIST` is comma-separated CPU numbers or ranges (`0,2-3`). Without `--idle-spins` the
//! cores busy-poll ([`EngineConfig::busy_poll`]); with it, a core waits on its socket after
//! `N` empty iterations ([`EngineConfig::idle_spins`]). Waiting costs a wake-up (tens of µs)
//! per burst but leaves the CPU to other threads when there is no traffic: on a machine with
//! no spare core, a busy-polling thread is instead preempted for whole scheduler slices
//! (milliseconds) whenever a kernel thread needs the CPU. `--pcap FILE` captures what the
//! server receives and sends ([`EngineConfig::capture`]; `FILE.<queue>` with several queues).
//! Errors print a message and the
//! usage on stderr and exit with status 2; `--help` prints the usage and exits 0.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use super::{EngineConfig, EngineInfo, XdpMode};

/// The usage text, after "usage: PROGRAM".
pub const USAGE: &str = "--iface IFACE --ip A.B.C.D --port P [--queues N] \
[--xdp-mode auto|native|skb] [--cores LIST] [--stats FILE] [--idle-spins N] [--pcap FILE]";

/// Parsed server arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerArgs {
    pub iface: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    /// Default 1.
    pub queues: u32,
    /// Default auto.
    pub xdp_mode: XdpMode,
    /// Default: the engine's (queue i on the i-th usable CPU).
    pub cores: Option<Vec<usize>>,
    pub stats: Option<PathBuf>,
    /// `Some(n)`: wait on the socket after `n` empty iterations; `None` (default): busy-poll.
    pub idle_spins: Option<u32>,
    /// Capture file (default none).
    pub pcap: Option<PathBuf>,
}

/// What parsing decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    Run(ServerArgs),
    Help,
}

/// Parses a CPU list such as `0,2-3`.
pub fn parse_cores(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let bad = || format!("--cores: bad entry '{part}' (want e.g. 0,2-3)");
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

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Parsed, String> {
    let mut iface = None;
    let mut ip = None;
    let mut port = None;
    let mut queues = 1u32;
    let mut xdp_mode = XdpMode::Auto;
    let mut cores = None;
    let mut stats = None;
    let mut idle_spins = None;
    let mut pcap = None;
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            return Ok(Parsed::Help);
        }
        let known = [
            "--iface",
            "--ip",
            "--port",
            "--queues",
            "--xdp-mode",
            "--cores",
            "--stats",
            "--idle-spins",
            "--pcap",
        ];
        if !known.contains(&flag.as_str()) {
            return Err(format!("unknown argument '{flag}'"));
        }
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--iface" => {
                if value.is_empty() || value.len() > 15 || value.contains(['/', ' ', '\0']) {
                    return Err(format!("--iface: '{value}' is not an interface name"));
                }
                iface = Some(value);
            }
            "--ip" => {
                ip = Some(
                    value
                        .parse::<Ipv4Addr>()
                        .map_err(|_| format!("--ip: '{value}' is not an IPv4 address"))?,
                )
            }
            "--port" => {
                port = Some(
                    value
                        .parse::<u16>()
                        .ok()
                        .filter(|&p| p != 0)
                        .ok_or_else(|| format!("--port: '{value}' is not a port (1-65535)"))?,
                )
            }
            "--queues" => {
                queues = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&q| (1..=xtcp_xdp_ebpf::MAX_QUEUES).contains(&q))
                    .ok_or_else(|| {
                        format!(
                            "--queues: '{value}' is not 1..={}",
                            xtcp_xdp_ebpf::MAX_QUEUES
                        )
                    })?
            }
            "--xdp-mode" => {
                xdp_mode = match value.as_str() {
                    "auto" => XdpMode::Auto,
                    "native" => XdpMode::Native,
                    "skb" => XdpMode::Skb,
                    _ => return Err(format!("--xdp-mode: '{value}' is not auto, native or skb")),
                }
            }
            "--cores" => cores = Some(parse_cores(&value)?),
            "--stats" => {
                if value.is_empty() {
                    return Err("--stats needs a file name".into());
                }
                stats = Some(PathBuf::from(value))
            }
            "--idle-spins" => {
                idle_spins = Some(value.parse::<u32>().map_err(|_| {
                    format!("--idle-spins: '{value}' is not a count (0-4294967295)")
                })?)
            }
            "--pcap" => {
                if value.is_empty() {
                    return Err("--pcap needs a file name".into());
                }
                pcap = Some(PathBuf::from(value))
            }
            _ => unreachable!("checked against the known flags"),
        }
    }
    let iface = iface.ok_or("--iface is required")?;
    let ip = ip.ok_or("--ip is required")?;
    let port = port.ok_or("--port is required")?;
    if let Some(c) = &cores
        && c.len() < queues as usize
    {
        return Err(format!(
            "--cores lists {} CPU(s) for {queues} queue(s)",
            c.len()
        ));
    }
    Ok(Parsed::Run(ServerArgs {
        iface,
        ip,
        port,
        queues,
        xdp_mode,
        cores,
        stats,
        idle_spins,
        pcap,
    }))
}

impl ServerArgs {
    /// Parses `std::env::args()`; on `--help` prints the usage and exits 0, on an error
    /// prints it with the usage and exits 2.
    pub fn from_env_or_exit() -> ServerArgs {
        let mut args = std::env::args();
        let prog = args.next().unwrap_or_else(|| "xtcp".into());
        let prog = prog.rsplit('/').next().unwrap_or("xtcp").to_string();
        match parse(args) {
            Ok(Parsed::Run(a)) => a,
            Ok(Parsed::Help) => {
                println!("usage: {prog} {USAGE}");
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
        c.ports = vec![self.port];
        c.queues = self.queues;
        c.xdp_mode = self.xdp_mode;
        c.cores = self.cores.clone();
        c.stats_file = self.stats.clone();
        c.capture = self.pcap.as_ref().map(crate::capture::CaptureConfig::new);
        if let Some(n) = self.idle_spins {
            c.busy_poll = false;
            c.idle_spins = n;
        }
        c
    }
}

/// The line a server prints once it listens, e.g.
/// `xtcp echo listening on 10.77.0.1:7 (iface xt-a, 1 queue, skb mode)`.
pub fn ready_line(what: &str, args: &ServerArgs, info: &EngineInfo) -> String {
    format!(
        "xtcp {what} listening on {}:{} (iface {}, {} queue{}, {} mode{})",
        args.ip,
        args.port,
        args.iface,
        args.queues,
        if args.queues == 1 { "" } else { "s" },
        info.xdp_mode,
        if info.zero_copy { ", zero-copy" } else { "" },
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
        let c = a.engine_config();
        assert_eq!(c.ports, vec![7]);
        assert_eq!(c.queues, 2);
        assert_eq!((c.busy_poll, c.idle_spins), (false, 200));
        assert_eq!(c.capture.unwrap().path, PathBuf::from("/tmp/c.pcap"));

        let Parsed::Run(a) = p(&["--port", "80", "--ip", "1.2.3.4", "--iface", "eth0"]).unwrap()
        else {
            panic!("not Run")
        };
        assert!(a.engine_config().busy_poll);
        assert_eq!(
            (a.queues, a.xdp_mode, a.cores, a.stats, a.idle_spins),
            (1, XdpMode::Auto, None, None, None)
        );
        assert_eq!(p(&["--help"]).unwrap(), Parsed::Help);
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
        assert!(with(&["--bogus"]).unwrap_err().contains("unknown"));
        assert!(with(&["--queues"]).unwrap_err().contains("needs a value"));
        assert!(with(&["--queues", "0"]).is_err());
        assert!(with(&["--xdp-mode", "fast"]).is_err());
        assert!(with(&["--cores", "x"]).is_err());
        assert!(with(&["--idle-spins", "-1"]).is_err());
        assert!(with(&["--idle-spins", "many"]).is_err());
        assert!(with(&["--queues", "2", "--cores", "0"]).is_err());
        assert!(p(&["--iface", "a", "--ip", "1.2.3", "--port", "7"]).is_err());
        assert!(p(&["--iface", "a", "--ip", "1.2.3.4", "--port", "70000"]).is_err());
        assert!(p(&["--iface", "a", "--ip", "1.2.3.4", "--port", "0"]).is_err());
    }

    #[test]
    fn core_lists() {
        assert_eq!(parse_cores("0,2-4,7").unwrap(), vec![0, 2, 3, 4, 7]);
        assert!(parse_cores("3-1").is_err());
        assert!(parse_cores("").is_err());
    }
}
