//! Readers of the outside world's counters: TIME-WAIT entries (own netns, another netns,
//! or a server's JSON stats file), retransmits, and the kernel's TIME-WAIT entry size.
//!
//! Parsers take text and never panic on malformed input; they return `None` instead.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread;
use std::time::Duration;

/// The `tw` field of the `TCP:` line of `/proc/net/sockstat`.
pub fn parse_sockstat_tw(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("TCP:"))?;
    let mut it = line.split_whitespace();
    while let Some(k) = it.next() {
        if k == "tw" {
            return it.next()?.parse().ok();
        }
    }
    None
}

/// TIME-WAIT entries in the calling thread's network namespace.
pub fn time_wait_here() -> Option<u64> {
    // thread-self, not self: /proc/self/net is the main thread's namespace, which differs from
    // the caller's after setns on a helper thread.
    parse_sockstat_tw(&fs::read_to_string("/proc/thread-self/net/sockstat").ok()?)
}

/// Value of `field` in a `/proc/net/snmp`- or `/proc/net/netstat`-style file: pairs of lines
/// `Prefix: names…` / `Prefix: values…`.
pub fn parse_snmp_field(text: &str, prefix: &str, field: &str) -> Option<u64> {
    let mut lines = text.lines();
    while let Some(names) = lines.next() {
        let values = lines.next()?;
        let (Some(n), Some(v)) = (names.strip_prefix(prefix), values.strip_prefix(prefix)) else {
            continue;
        };
        let idx = n.split_whitespace().position(|x| x == field)?;
        return v.split_whitespace().nth(idx)?.parse().ok();
    }
    None
}

/// SYN and all-segment retransmits of this network namespace, since boot.
pub fn retransmits_here() -> (Option<u64>, Option<u64>) {
    let netstat = fs::read_to_string("/proc/thread-self/net/netstat").unwrap_or_default();
    let snmp = fs::read_to_string("/proc/thread-self/net/snmp").unwrap_or_default();
    (
        parse_snmp_field(&netstat, "TcpExt:", "TCPSynRetrans"),
        parse_snmp_field(&snmp, "Tcp:", "RetransSegs"),
    )
}

/// Object size of the kernel's TCP TIME-WAIT sockets (`tw_sock_TCP` slab), where readable.
pub fn kernel_tw_bytes() -> Option<u64> {
    let text = fs::read_to_string("/proc/slabinfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("tw_sock_TCP "))?;
    // name active_objs num_objs objsize ...
    line.split_whitespace().nth(3)?.parse().ok()
}

/// `time_wait` (and optionally the entry size) from a server's JSON stats file.
pub fn parse_server_stats(text: &str) -> Option<ServerStats> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    let obj = v.as_object()?;
    Some(ServerStats {
        time_wait: obj.get("time_wait").and_then(|x| x.as_u64()),
        time_wait_bytes_per_entry: obj
            .get("time_wait_bytes_per_entry")
            .and_then(|x| x.as_u64()),
        server: obj
            .get("server")
            .and_then(|x| x.as_str())
            .map(str::to_string),
    })
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerStats {
    pub time_wait: Option<u64>,
    pub time_wait_bytes_per_entry: Option<u64>,
    pub server: Option<String>,
}

/// Where the server's TIME-WAIT count comes from.
pub enum ServerProbe {
    None,
    StatsFile(PathBuf),
    Netns(NetnsSampler),
}

impl ServerProbe {
    pub fn time_wait(&self) -> Option<u64> {
        match self {
            ServerProbe::None => None,
            ServerProbe::StatsFile(p) => {
                parse_server_stats(&fs::read_to_string(p).ok()?).and_then(|s| s.time_wait)
            }
            ServerProbe::Netns(s) => s.latest(),
        }
    }
}

/// Samples `/proc/net/sockstat` inside a named network namespace from a helper thread that
/// has joined it (setns affects only the calling thread).
pub struct NetnsSampler {
    latest: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    handle: Option<thread::JoinHandle<()>>,
}

const UNKNOWN: u64 = u64::MAX;

impl NetnsSampler {
    /// Joins `/var/run/netns/NAME` on a new thread; fails if the namespace cannot be entered.
    pub fn start(name: &str) -> Result<NetnsSampler, String> {
        if name.is_empty() || name.contains('/') {
            return Err(format!("--server-netns: `{name}` is not a namespace name"));
        }
        let path = Path::new("/var/run/netns").join(name);
        let file = fs::File::open(&path)
            .map_err(|e| format!("--server-netns: cannot open {}: {e}", path.display()))?;
        let latest = Arc::new(AtomicU64::new(UNKNOWN));
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = std::sync::mpsc::channel();
        let (l2, s2) = (Arc::clone(&latest), Arc::clone(&stop));
        let handle = thread::Builder::new()
            .name("netns-sampler".into())
            .spawn(move || {
                use std::os::fd::AsRawFd;
                // Safety: `file` is an open namespace file that outlives the call; setns only
                // changes this thread's network namespace.
                let r = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if r != 0 {
                    let _ = tx.send(Err(std::io::Error::last_os_error().to_string()));
                    return;
                }
                let _ = tx.send(Ok(()));
                while !s2.load(Ordering::Relaxed) {
                    if let Some(tw) = time_wait_here() {
                        l2.store(tw, Ordering::Relaxed);
                    }
                    thread::sleep(Duration::from_millis(100));
                }
            })
            .map_err(|e| format!("cannot start netns sampler: {e}"))?;
        match rx.recv() {
            Ok(Ok(())) => Ok(NetnsSampler {
                latest,
                stop,
                handle: Some(handle),
            }),
            Ok(Err(e)) => Err(format!("--server-netns {name}: setns failed: {e}")),
            Err(_) => Err(format!("--server-netns {name}: sampler thread died")),
        }
    }

    pub fn latest(&self) -> Option<u64> {
        let v = self.latest.load(Ordering::Relaxed);
        (v != UNKNOWN).then_some(v)
    }
}

impl Drop for NetnsSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockstat() {
        let t =
            "sockets: used 200\nTCP: inuse 5 orphan 0 tw 1234 alloc 9 mem 3\nUDP: inuse 1 mem 0\n";
        assert_eq!(parse_sockstat_tw(t), Some(1234));
        assert_eq!(parse_sockstat_tw("TCP: inuse 5 tw"), None);
        assert_eq!(parse_sockstat_tw("garbage"), None);
        assert_eq!(parse_sockstat_tw(""), None);
    }

    #[test]
    fn snmp() {
        let t = "Ip: Forwarding X\nIp: 1 2\nTcp: RtoAlgorithm RetransSegs InErrs\nTcp: 1 42 0\n";
        assert_eq!(parse_snmp_field(t, "Tcp:", "RetransSegs"), Some(42));
        assert_eq!(parse_snmp_field(t, "Tcp:", "Nope"), None);
        assert_eq!(parse_snmp_field("Tcp: A\n", "Tcp:", "A"), None);
    }

    #[test]
    fn server_stats() {
        let s = parse_server_stats(r#"{"time_wait": 17, "cores": [{"time_wait": 9}]}"#).unwrap();
        assert_eq!(s.time_wait, Some(17));
        assert_eq!(s.server, None);
        assert_eq!(parse_server_stats("{not json"), None);
        let s = parse_server_stats(r#"{"server":"linux","time_wait":"x"}"#).unwrap();
        assert_eq!(s.time_wait, None);
        assert_eq!(s.server.as_deref(), Some("linux"));
    }

    #[test]
    fn own_netns_is_readable() {
        assert!(time_wait_here().is_some());
    }
}
