//! The fuzz harness on stable, without libFuzzer: its set-up reaches the states the fuzz
//! targets start from, the simulator seeds replay through it, and every input that once
//! crashed a target (`regressions/<target>/`) passes.

use std::path::Path;
use xtcp::tcp::State;
use xtcp_fuzz::{Harness, PASSIVE, Record, SegRecord};

#[test]
fn setup_establishes_passive_and_active_connections() {
    let h = Harness::new();
    assert_eq!(h.stack.connection_count(), PASSIVE + 1);
    assert_eq!(h.stack.counters().passive_opens, PASSIVE as u64);
    assert_eq!(h.stack.counters().active_opens, 1);
    assert_eq!(h.stack.counters().established, PASSIVE as u64 + 1);
}

#[test]
fn peer_segments_reach_the_state_machine() {
    // In-order data then a FIN on the first passive connection, as records.
    let mut input = Vec::new();
    let seg = SegRecord {
        peer: 0,
        flags: 0x10,
        seq_delta: 0,
        ack_delta: 0,
        window: 1024,
        opts: 8,
        payload_len: 100,
        corrupt_at: 0,
        xor: 0,
        mss: 0,
    };
    Record::Segment(seg).encode(&mut input);
    Record::Segment(SegRecord {
        flags: 0x11,
        payload_len: 0,
        ..seg
    })
    .encode(&mut input);
    let mut h = Harness::new();
    h.run(&input);
    // The data was accepted in order and the FIN moved the connection to CLOSE-WAIT.
    let c = h.stack.counters();
    assert_eq!((c.rx_dropped_malformed, c.unacceptable_segments), (0, 0));
    let (first, passive) = h.handles()[0];
    assert!(passive);
    assert_eq!(h.stack.state(first), Some(State::CloseWait));
}

#[test]
fn simulator_seeds_replay_and_regressions_pass() {
    let dir = std::env::temp_dir().join(format!("xtcp-fuzz-seeds-{}", std::process::id()));
    let n = xtcp_fuzz::seeds::write_corpora(&dir).unwrap();
    assert!(n > 100, "{n} seed files");
    let mut ran = 0;
    let (mut icmp, mut in_window) = (0, 0);
    for entry in std::fs::read_dir(dir.join("stack_receive")).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        let mut h = Harness::new();
        h.run(&data);
        let c = h.stack.counters();
        icmp += c.icmp_received;
        in_window += c.icmp_frag_needed;
        ran += 1;
    }
    // The seeds reach the stack's ICMP path (a router's Frag Needed about its segments).
    println!("seed replays: {icmp} ICMP messages, {in_window} Fragmentation Needed in window");
    assert!(icmp > 0);
    for t in [
        "wire_ethernet",
        "wire_ipv4",
        "wire_icmpv4",
        "wire_tcp",
        "wire_frame",
    ] {
        for entry in std::fs::read_dir(dir.join(t)).unwrap() {
            let data = std::fs::read(entry.unwrap().path()).unwrap();
            run_target(t, &data);
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ran >= 2);

    let reg = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    if let Ok(targets) = std::fs::read_dir(&reg) {
        for t in targets {
            let t = t.unwrap();
            let name = t.file_name().to_string_lossy().to_string();
            for f in std::fs::read_dir(t.path()).unwrap() {
                let data = std::fs::read(f.unwrap().path()).unwrap();
                run_target(&name, &data);
            }
        }
    }
}

fn run_target(name: &str, data: &[u8]) {
    use xtcp_fuzz::wire;
    match name {
        "wire_ethernet" => wire::ethernet(data),
        "wire_arp" => wire::arp(data),
        "wire_ipv4" => wire::ipv4(data),
        "wire_icmpv4" => wire::icmpv4(data),
        "wire_tcp" => wire::tcp(data),
        "wire_tcp_options" => wire::tcp_options(data),
        "wire_frame" => wire::frame(data),
        "wire_ipv6" => wire::ipv6(data),
        "wire_icmpv6" => wire::icmpv6(data),
        "stack_receive" => Harness::new().run(data),
        other => panic!("unknown target {other}"),
    }
}

/// The IPv6 harnesses over frames captured from Linux on a veth pair (docs/ipv6.md): MLDv2
/// with a Hop-by-Hop header, DAD, NS, NA, a SYN and a data segment. Each is run as a frame
/// and as a packet (Ethernet header cut), and the ICMPv6 ones through `wire::icmpv6` with
/// their pseudo-header addresses in front, which is the input layout of `wire_icmpv6`.
#[test]
fn ipv6_harnesses_on_captured_frames() {
    use xtcp_fuzz::wire;
    const FRAMES: [&str; 6] = [
        "33330000001602000000000286dd600000000024000100000000000000000000000000000000ff0200000000\
         000000000000000000163a000502000001008f006f880000000104000000ff0200000000000000000001ff00\
         0002",
        "3333ff00000202000000000286dd6000000000203aff00000000000000000000000000000000ff0200000000\
         000000000001ff0000028700036d00000000fe80000000000000000000fffe0000020e01a09f7ad75036",
        "3333ff00000202000000000186dd6000000000203aff20010db8000000000000000000000001ff0200000000\
         000000000001ff00000287001c270000000020010db80000000000000000000000020101020000000001",
        "02000000000102000000000286dd6000000000203aff20010db800000000000000000000000220010db80000\
         0000000000000000000188008a716000000020010db80000000000000000000000020201020000000002",
        "02000000000202000000000186dd600a1bdf0028064020010db800000000000000000000000120010db80000\
         00000000000000000002da601f905c14a9ce00000000a002fd2082200000020405a00402080a30853d020000\
         00000103030a",
        "02000000000202000000000186dd600a1bdf0022064020010db800000000000000000000000120010db80000\
         00000000000000000002da601f905c14a9cfc035545680180040b93500000101080a30853d02f2eb848b6869",
    ];
    for h in FRAMES {
        let f: Vec<u8> = (0..h.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap())
            .collect();
        wire::ipv6(&f);
        wire::ipv6(&f[14..]);
        wire::icmpv6(&f);
        let mut with_addrs = f[22..54].to_vec();
        with_addrs.extend_from_slice(&f[54..]);
        wire::icmpv6(&with_addrs);
    }
}
