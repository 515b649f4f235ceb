//! Counter snapshots of the engine, and their JSON form (the `--stats FILE` of the examples).
//!
//! Each core sends a [`CoreStats`] snapshot over a control channel every
//! [`SNAPSHOT_INTERVAL`] (a struct copy, never per packet); [`EngineStats`] gathers the
//! latest of each core. JSON layout: the totals of every [`Counters`] field at the top level
//! plus `"server": "xtcp"`, `"queues"`, `"connections"`, the XDP program's counters under
//! `"xdp"`, and one object per core under `"cores"` with the same counter fields plus
//! `queue`, `core`, `connections`, `zero_copy` and the AF_XDP socket's counters under `"xsk"`.

use std::fmt::Write as _;
use std::io;
use std::path::Path;

use crate::afxdp::XskStats;
use crate::tcp::Counters;
use crate::time::Duration;
use xtcp_xdp_ebpf::XdpCounters;

/// How often each core publishes a snapshot.
pub const SNAPSHOT_INTERVAL: Duration = Duration::from_millis(200);

/// One core's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CoreStats {
    /// The receive queue the core serves.
    pub queue: u32,
    /// The CPU the thread is pinned to, if pinned.
    pub core: Option<usize>,
    /// The stack's counters.
    pub counters: Counters,
    /// The AF_XDP socket's counters.
    pub xsk: XskStats,
    /// Whether the socket is bound zero-copy.
    pub zero_copy: bool,
    /// Connections in the stack's table (every state but SYN-RECEIVED and TIME-WAIT).
    pub connections: u64,
    /// Loop iterations.
    pub loops: u64,
    /// Idle waits (`poll(2)` on the socket) when busy polling is off.
    pub idle_waits: u64,
}

/// The latest snapshot of every core, and of the XDP program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// One entry per queue, in queue order.
    pub cores: Vec<CoreStats>,
    /// The steering program's counters (`None` if reading them failed).
    pub xdp: Option<XdpCounters>,
}

/// Declares the [`Counters`] fields the engine reports, once, for both the JSON names and the
/// totals. A test checks that the list names every field of `Counters`.
macro_rules! reported_counters {
    ($($field:ident),* $(,)?) => {
        /// Every field of [`Counters`] by name, in declaration order, for the JSON output.
        pub fn counter_fields(c: &Counters) -> Vec<(&'static str, u64)> {
            vec![$((stringify!($field), c.$field)),*]
        }

        fn add_counters(t: &mut Counters, c: &Counters) {
            $(t.$field += c.$field;)*
        }
    };
}

reported_counters!(
    rx_frames,
    tx_frames,
    rx_dropped_malformed,
    rx_not_ours,
    tx_no_buffer,
    active_opens,
    passive_opens,
    syns_received,
    synacks_sent,
    syn_cookies_sent,
    syn_cookies_validated,
    syn_cookies_rejected,
    syn_queue_overflows,
    accept_queue_overflows,
    conn_table_full,
    established,
    syn_recv,
    time_wait,
    orphans,
    time_wait_inserts,
    time_wait_reuses,
    time_wait_expiries,
    time_wait_table_full,
    time_wait_fin_acks,
    orphan_overflows,
    fin_wait2_timeouts,
    resets_sent,
    resets_received,
    challenge_acks,
    challenge_acks_suppressed,
    paws_drops,
    ts_missing_drops,
    unacceptable_segments,
    retransmits,
    retransmit_timeouts,
    timeouts,
    syn_recv_timeouts,
);

fn xsk_fields(x: &XskStats) -> [(&'static str, u64); 9] {
    [
        ("rx_frames", x.rx_frames),
        ("tx_frames", x.tx_frames),
        ("rx_batches", x.rx_batches),
        ("tx_ring_full", x.tx_ring_full),
        ("tx_no_free_frame", x.tx_no_free_frame),
        ("fill_ring_short", x.fill_ring_short),
        ("kicks", x.kicks),
        ("rx_wakeups", x.rx_wakeups),
        ("tx_completed", x.tx_completed),
    ]
}

fn write_counters(out: &mut String, c: &Counters) {
    for (name, v) in counter_fields(c) {
        let _ = write!(out, "\"{name}\": {v}, ");
    }
}

impl EngineStats {
    /// The sum of every core's counters (gauges included: they add up too).
    pub fn totals(&self) -> Counters {
        let mut t = Counters::default();
        for core in &self.cores {
            add_counters(&mut t, &core.counters);
        }
        t
    }

    /// Connections over all cores.
    pub fn connections(&self) -> u64 {
        self.cores.iter().map(|c| c.connections).sum()
    }

    /// The JSON document described in the module docs (one line).
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("{\"server\": \"xtcp\", ");
        let _ = write!(
            out,
            "\"queues\": {}, \"connections\": {}, ",
            self.cores.len(),
            self.connections()
        );
        write_counters(&mut out, &self.totals());
        if let Some(x) = &self.xdp {
            let _ = write!(
                out,
                "\"xdp\": {{\"redirected\": {}, \"passed\": {}, \"malformed\": {}, \"no_socket\": {}}}, ",
                x.redirected, x.passed, x.malformed, x.no_socket
            );
        }
        out.push_str("\"cores\": [");
        for (i, c) in self.cores.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            let _ = write!(out, "{{\"queue\": {}, \"core\": ", c.queue);
            match c.core {
                Some(id) => {
                    let _ = write!(out, "{id}");
                }
                None => out.push_str("null"),
            }
            let _ = write!(
                out,
                ", \"connections\": {}, \"zero_copy\": {}, \"loops\": {}, \"idle_waits\": {}, ",
                c.connections, c.zero_copy, c.loops, c.idle_waits
            );
            write_counters(&mut out, &c.counters);
            out.push_str("\"xsk\": {");
            for (k, (name, v)) in xsk_fields(&c.xsk).iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "\"{name}\": {v}");
            }
            out.push_str("}}");
        }
        out.push_str("]}\n");
        out
    }

    /// Replaces `path` atomically (write a temporary file beside it, then rename), so that a
    /// reader never sees a partial document.
    pub fn write_file(&self, path: &Path) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        std::fs::write(&tmp, self.to_json())?;
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every field the Debug output of Counters names must be in `counter_fields`.
    #[test]
    fn counter_fields_are_complete() {
        let debug = format!("{:?}", Counters::default());
        let body = debug
            .trim_start_matches("Counters {")
            .trim_end_matches('}')
            .trim();
        let names: Vec<&str> = body
            .split(',')
            .filter_map(|kv| kv.split(':').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        let listed: Vec<&str> = counter_fields(&Counters::default())
            .iter()
            .map(|(n, _)| *n)
            .collect();
        assert_eq!(names, listed);
    }

    #[test]
    fn json_has_totals_and_cores() {
        let mut a = CoreStats {
            queue: 0,
            core: Some(1),
            ..CoreStats::default()
        };
        a.counters.established = 3;
        a.counters.time_wait = 5;
        a.counters.rx_frames = 10;
        let mut b = a;
        b.queue = 1;
        b.core = None;
        b.counters.retransmits = 2;
        let s = EngineStats {
            cores: vec![a, b],
            xdp: Some(XdpCounters {
                redirected: 7,
                ..XdpCounters::default()
            }),
        };
        let t = s.totals();
        assert_eq!(t.established, 6);
        assert_eq!(t.time_wait, 10);
        assert_eq!(t.retransmits, 2);
        let j = s.to_json();
        assert!(
            j.starts_with("{\"server\": \"xtcp\", \"queues\": 2, "),
            "{j}"
        );
        // Totals at the top level, before "cores".
        let top = &j[..j.find("\"cores\"").unwrap()];
        for key in [
            "\"established\": 6",
            "\"syn_recv\": 0",
            "\"time_wait\": 10",
            "\"syn_cookies_sent\": 0",
            "\"retransmits\": 2",
            "\"rx_frames\": 20",
            "\"tx_frames\": 0",
            "\"rx_dropped_malformed\": 0",
            "\"redirected\": 7",
        ] {
            assert!(top.contains(key), "{key} missing in {top}");
        }
        assert!(j.contains("{\"queue\": 1, \"core\": null"));
        assert!(j.contains("\"xsk\": {\"rx_frames\": 0"));
        // Balanced braces and brackets: a cheap well-formedness check.
        assert_eq!(j.matches('{').count(), j.matches('}').count());
        assert_eq!(j.matches('[').count(), j.matches(']').count());
        assert!(!j.contains(", }") && !j.contains(", ]"), "{j}");
    }

    #[test]
    fn write_file_replaces_atomically() {
        let dir = std::env::temp_dir().join(format!("xtcp-stats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("s.json");
        let s = EngineStats::default();
        s.write_file(&p).unwrap();
        s.write_file(&p).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains("\"server\": \"xtcp\""));
        assert!(!dir.join("s.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
