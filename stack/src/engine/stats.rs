//! Counter snapshots of the engine, and their JSON form (the `--stats FILE` of the examples).
//!
//! Each core sends a [`CoreStats`] snapshot over a control channel every
//! [`SNAPSHOT_INTERVAL`] (a struct copy, never per packet); [`EngineStats`] gathers the
//! latest of each core. JSON layout: the totals of every [`Counters`] field at the top level
//! plus `"server": "xtcp"`, `"queues"`, `"connections"`, the XDP program's counters under
//! `"xdp"`, and one object per core under `"cores"` with the same counter fields plus
//! `queue`, `core`, `connections`, `zero_copy`, `loops`, `idle_waits`, the work accounting
//! (`busy_ns`, `loop_ns`, `wait_ns`, `busy_fraction`: see the `worker` module), `napi_id`,
//! the frames handed between cores (`rx_handoffs_out`, `rx_handoffs_in`, `rx_handoff_drops`:
//! see [`super::handoff`]; their totals are at the top level too), the neighbour cache's
//! refreshes from the kernel (`neighbor_refreshes`, `neighbor_changes`, `neighbor_failures`:
//! see [`super::neighbor`]), and the AF_XDP socket's
//! counters under `"xsk"`. The top level also names the `poll_mode` in effect.
//! TIME-WAIT memory: `time_wait_capacity` and `time_wait_reserved_bytes` (ring + index,
//! reserved at start, resident as used) per core, and at the top level the reserved bytes
//! summed and `time_wait_bytes_per_entry` (reserved bytes per entry of capacity, whole bytes:
//! what a full table costs per entry; the loadgen reads it like the kernel server's slab
//! object size).
//! Written with serde_json.

use std::io;
use std::path::Path;

use serde::ser::{Serialize, SerializeMap, Serializer};
use serde_json::Value;
use serde_json::ser::Formatter;

use super::handoff::HandoffStats;
use super::neighbor::ResolverStats;
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
    /// Entries the TIME-WAIT table holds at most.
    pub time_wait_capacity: u64,
    /// Bytes the TIME-WAIT table reserves (ring + index, allocated at start; resident as
    /// used).
    pub time_wait_reserved_bytes: u64,
    /// Loop iterations.
    pub loops: u64,
    /// Idle waits (`poll(2)` on the socket) in [`PollMode::Idle`](super::PollMode::Idle).
    pub idle_waits: u64,
    /// Wall time (ns) in loop iterations that did work (see the `worker` module).
    pub busy_ns: u64,
    /// Wall time (ns) in the loop, idle waits included.
    pub loop_ns: u64,
    /// Wall time (ns) inside idle waits (part of `loop_ns`).
    pub wait_ns: u64,
    /// The NAPI id the socket's frames come from (`SO_INCOMING_NAPI_ID`; 0: none yet, or the
    /// receive path has none, and preferred busy polling has nothing to run).
    pub napi_id: u32,
    /// Frames this core received for another core's connections and handed over, frames
    /// handed to it, and frames it could not hand over (see [`super::handoff`]).
    pub handoff: HandoffStats,
    /// The neighbour cache's refreshes from the kernel (see [`super::neighbor`]), both
    /// families summed.
    pub neighbor: ResolverStats,
    /// A dual-stack core's IPv6 stack on its own (`None`: the core runs IPv4 only).
    /// `counters` and `connections` above are the sums over both stacks; the TIME-WAIT
    /// memory fields are the IPv4 table's.
    pub ipv6: Option<Ipv6Stats>,
}

/// The IPv6 stack of a dual-stack core (JSON: the object `"ipv6"` of the core, with the
/// counter fields and `connections`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Ipv6Stats {
    /// The IPv6 stack's counters.
    pub counters: Counters,
    /// Connections in the IPv6 stack's table.
    pub connections: u64,
}

/// The latest snapshot of every core, and of the XDP program.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// One entry per queue, in queue order.
    pub cores: Vec<CoreStats>,
    /// The steering program's counters (`None` if reading them failed).
    pub xdp: Option<XdpCounters>,
    /// The poll mode in effect (`prefer-busy`, `busy`, `idle`), where known.
    pub poll_mode: Option<&'static str>,
}

/// Declares the [`Counters`] fields the engine reports, once, for both the JSON names and the
/// totals. A test checks that the list names every field of `Counters`.
macro_rules! reported_counters {
    ($($field:ident),* $(,)?) => {
        /// Every field of [`Counters`] by name, in declaration order, for the JSON output.
        pub fn counter_fields(c: &Counters) -> Vec<(&'static str, u64)> {
            vec![$((stringify!($field), c.$field)),*]
        }

        pub(crate) fn add_counters(t: &mut Counters, c: &Counters) {
            $(t.$field += c.$field;)*
        }
    };
}

reported_counters!(
    rx_frames,
    tx_frames,
    rx_dropped_malformed,
    rx_not_ours,
    rx_vlan_mismatch,
    rx_vlan_double_tagged,
    tx_no_buffer,
    active_opens,
    passive_opens,
    syns_received,
    synacks_sent,
    syn_cookies_sent,
    syn_cookies_validated,
    syn_cookies_rejected,
    syn_cookie_mode_changes,
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
    icmp_received,
    icmp_malformed,
    icmp_not_ours,
    icmp_out_of_window,
    icmp_frag_needed,
    icmp_soft_errors,
    icmp_ignored,
    pmtu_decreases,
    rx_ipv6_fragments,
    rx_ipv6_ext_routing,
    rx_ipv6_ext_options,
    rx_ipv6_ext_other,
    nd_solicits_received,
    nd_solicits_sent,
    nd_adverts_received,
    nd_adverts_sent,
    nd_unreachable,
    nd_cache_full,
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

fn handoff_fields(h: &HandoffStats) -> [(&'static str, u64); 3] {
    [
        ("rx_handoffs_out", h.rx_handoffs_out),
        ("rx_handoffs_in", h.rx_handoffs_in),
        ("rx_handoff_drops", h.rx_handoff_drops),
    ]
}

/// A JSON object whose keys keep the order they were put in (serde_json's own map sorts
/// them): the stats file lists the totals before `"cores"`, and each core entry starts with
/// `"queue"`, which readers of the text rely on.
struct Ordered(Vec<(&'static str, Node)>);

enum Node {
    Leaf(Value),
    Object(Ordered),
    Array(Vec<Node>),
}

impl Ordered {
    fn put(&mut self, k: &'static str, v: impl Into<Value>) {
        self.0.push((k, Node::Leaf(v.into())));
    }

    fn counters(&mut self, c: &Counters) {
        for (name, v) in counter_fields(c) {
            self.put(name, v);
        }
    }
}

impl Serialize for Node {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Node::Leaf(v) => v.serialize(s),
            Node::Array(a) => a.serialize(s),
            Node::Object(Ordered(entries)) => {
                let mut m = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    m.serialize_entry(k, v)?;
                }
                m.end()
            }
        }
    }
}

/// One line with a space after every `:` and `,` (`{"server": "xtcp", "queues": 1, ...}`).
struct OneLine;

impl Formatter for OneLine {
    fn begin_array_value<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if first { Ok(()) } else { w.write_all(b", ") }
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, w: &mut W) -> io::Result<()> {
        w.write_all(b": ")
    }
}

/// `bytes / entries`, rounded to the nearest byte (0 for no entries).
fn bytes_per_entry(bytes: u64, entries: u64) -> u64 {
    (bytes + entries / 2).checked_div(entries).unwrap_or(0)
}

impl CoreStats {
    /// Share of the loop's wall time spent in iterations that did work (0 before any loop).
    pub fn busy_fraction(&self) -> f64 {
        if self.loop_ns == 0 {
            0.0
        } else {
            (self.busy_ns as f64 / self.loop_ns as f64 * 1000.0).round() / 1000.0
        }
    }

    /// The TIME-WAIT table's reserved bytes per entry of capacity (ring slot plus its share
    /// of the index), rounded to whole bytes like the kernel's slab object size: the memory
    /// a full table costs per entry (0 before the first snapshot).
    pub fn time_wait_bytes_per_entry(&self) -> u64 {
        bytes_per_entry(self.time_wait_reserved_bytes, self.time_wait_capacity)
    }

    fn node(&self) -> Node {
        let mut m = Ordered(Vec::with_capacity(64));
        m.put("queue", self.queue);
        m.put("core", self.core.map_or(Value::Null, Value::from));
        m.put("connections", self.connections);
        m.put("zero_copy", self.zero_copy);
        m.put("loops", self.loops);
        m.put("idle_waits", self.idle_waits);
        m.put("busy_ns", self.busy_ns);
        m.put("loop_ns", self.loop_ns);
        m.put("wait_ns", self.wait_ns);
        m.put("busy_fraction", self.busy_fraction());
        m.put("napi_id", self.napi_id);
        for (k, v) in handoff_fields(&self.handoff) {
            m.put(k, v);
        }
        m.put("neighbor_refreshes", self.neighbor.refreshes);
        m.put("neighbor_changes", self.neighbor.changes);
        m.put("neighbor_failures", self.neighbor.failures);
        m.put("time_wait_capacity", self.time_wait_capacity);
        m.put("time_wait_reserved_bytes", self.time_wait_reserved_bytes);
        m.put(
            "time_wait_bytes_per_entry",
            self.time_wait_bytes_per_entry(),
        );
        m.counters(&self.counters);
        if let Some(v6) = &self.ipv6 {
            let mut o = Ordered(Vec::with_capacity(64));
            o.put("connections", v6.connections);
            o.counters(&v6.counters);
            m.0.push(("ipv6", Node::Object(o)));
        }
        let mut xsk = Ordered(Vec::with_capacity(9));
        for (k, v) in xsk_fields(&self.xsk) {
            xsk.put(k, v);
        }
        m.0.push(("xsk", Node::Object(xsk)));
        Node::Object(m)
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

    /// The handoff counters summed over all cores (every frame handed out is either handed
    /// in by its owner, still queued, or was counted as a drop).
    pub fn handoff_totals(&self) -> HandoffStats {
        let mut t = HandoffStats::default();
        for c in &self.cores {
            t.rx_handoffs_out += c.handoff.rx_handoffs_out;
            t.rx_handoffs_in += c.handoff.rx_handoffs_in;
            t.rx_handoff_drops += c.handoff.rx_handoff_drops;
        }
        t
    }

    /// Connections over all cores.
    pub fn connections(&self) -> u64 {
        self.cores.iter().map(|c| c.connections).sum()
    }

    fn node(&self) -> Node {
        let mut m = Ordered(Vec::with_capacity(64));
        m.put("server", "xtcp");
        m.put("queues", self.cores.len());
        m.put("connections", self.connections());
        m.put("poll_mode", self.poll_mode.map_or(Value::Null, Value::from));
        let tw_cap: u64 = self.cores.iter().map(|c| c.time_wait_capacity).sum();
        let tw_bytes: u64 = self.cores.iter().map(|c| c.time_wait_reserved_bytes).sum();
        m.put("time_wait_reserved_bytes", tw_bytes);
        m.put(
            "time_wait_bytes_per_entry",
            bytes_per_entry(tw_bytes, tw_cap),
        );
        m.counters(&self.totals());
        for (k, v) in handoff_fields(&self.handoff_totals()) {
            m.put(k, v);
        }
        if let Some(x) = &self.xdp {
            let mut xdp = Ordered(Vec::with_capacity(4));
            xdp.put("redirected", x.redirected);
            xdp.put("passed", x.passed);
            xdp.put("malformed", x.malformed);
            xdp.put("no_socket", x.no_socket);
            m.0.push(("xdp", Node::Object(xdp)));
        }
        m.0.push((
            "cores",
            Node::Array(self.cores.iter().map(CoreStats::node).collect()),
        ));
        Node::Object(m)
    }

    /// The JSON document described in the module docs, as a value (keys sorted).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self.node()).unwrap_or(Value::Null)
    }

    /// The JSON document described in the module docs: one line, keys in the documented
    /// order.
    pub fn to_json(&self) -> String {
        let mut out = Vec::with_capacity(4096);
        let mut ser = serde_json::Serializer::with_formatter(&mut out, OneLine);
        // Serializing numbers, strings and maps into a Vec cannot fail.
        let _ = self.node().serialize(&mut ser);
        out.push(b'\n');
        String::from_utf8(out).unwrap_or_default()
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
        a.handoff.rx_handoffs_out = 4;
        b.handoff.rx_handoffs_in = 3;
        b.handoff.rx_handoff_drops = 1;
        let s = EngineStats {
            cores: vec![a, b],
            xdp: Some(XdpCounters {
                redirected: 7,
                ..XdpCounters::default()
            }),
            poll_mode: Some("busy"),
        };
        let t = s.totals();
        assert_eq!(t.established, 6);
        assert_eq!(t.time_wait, 10);
        assert_eq!(t.retransmits, 2);
        let j = s.to_json();
        assert!(
            j.ends_with("}\n") && !j[..j.len() - 1].contains('\n'),
            "one line: {j}"
        );
        // Documented order and spacing: totals first, each core entry opens with "queue".
        assert!(
            j.starts_with("{\"server\": \"xtcp\", \"queues\": 2, \"connections\": "),
            "{j}"
        );
        let top = &j[..j.find("\"cores\"").unwrap()];
        assert!(top.contains("\"established\": 6") && top.contains("\"redirected\": 7"));
        assert_eq!(j.matches("{\"queue\": ").count(), 2, "{j}");
        let v: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["server"], "xtcp");
        assert_eq!(v["queues"], 2);
        assert_eq!(v["poll_mode"], "busy");
        // Totals at the top level.
        for (key, want) in [
            ("established", 6),
            ("syn_recv", 0),
            ("time_wait", 10),
            ("syn_cookies_sent", 0),
            ("retransmits", 2),
            ("rx_frames", 20),
            ("tx_frames", 0),
            ("rx_dropped_malformed", 0),
            ("rx_handoffs_out", 4),
            ("rx_handoffs_in", 3),
            ("rx_handoff_drops", 1),
        ] {
            assert_eq!(v[key], want, "{key} in {j}");
        }
        assert_eq!(v["xdp"]["redirected"], 7);
        let cores = v["cores"].as_array().unwrap();
        assert_eq!(cores.len(), 2);
        assert_eq!(cores[1]["queue"], 1);
        assert!(cores[1]["core"].is_null());
        assert_eq!(cores[0]["core"], 1);
        assert_eq!(cores[0]["xsk"]["rx_frames"], 0);
        assert_eq!(cores[0]["established"], 3);
        assert_eq!(cores[0]["rx_handoffs_out"], 4);
        assert_eq!(cores[1]["rx_handoffs_in"], 3);
        assert_eq!(cores[1]["rx_handoff_drops"], 1);
        for key in [
            "busy_ns",
            "loop_ns",
            "wait_ns",
            "busy_fraction",
            "napi_id",
            "loops",
        ] {
            assert!(cores[0].get(key).is_some(), "{key} missing in {j}");
        }
    }

    #[test]
    fn time_wait_memory_keys() {
        // A 10 M-entry table: 32-byte ring slots plus a 2^24-bucket u32 index.
        let cap = 10_000_000u64;
        let bytes = cap * 32 + (1 << 24) * 4;
        let c = CoreStats {
            time_wait_capacity: cap,
            time_wait_reserved_bytes: bytes,
            ..CoreStats::default()
        };
        assert_eq!(c.time_wait_bytes_per_entry(), 39, "38.7 rounds to 39");
        assert_eq!(CoreStats::default().time_wait_bytes_per_entry(), 0);
        let s = EngineStats {
            cores: vec![c, c],
            ..EngineStats::default()
        };
        let v = s.to_value();
        assert_eq!(v["time_wait_reserved_bytes"], 2 * bytes);
        assert_eq!(v["time_wait_bytes_per_entry"], 39);
        assert_eq!(v["cores"][1]["time_wait_capacity"], cap);
        assert_eq!(v["cores"][1]["time_wait_reserved_bytes"], bytes);
    }

    #[test]
    fn busy_fraction_of_the_loop() {
        let c = CoreStats {
            busy_ns: 300,
            loop_ns: 1200,
            ..CoreStats::default()
        };
        assert_eq!(c.busy_fraction(), 0.25);
        assert_eq!(CoreStats::default().busy_fraction(), 0.0);
        let v = serde_json::to_value(c.node()).unwrap();
        assert_eq!(v["busy_fraction"], 0.25);
        assert_eq!(v["busy_ns"], 300);
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
        let v: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["server"], "xtcp");
        assert!(!dir.join("s.json.tmp").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
