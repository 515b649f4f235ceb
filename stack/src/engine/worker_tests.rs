//! Unit tests of the core loop (`worker.rs`, which is near the size limit).

use super::*;

#[test]
fn prefill_peers_are_distinct_and_in_benchmark_space() {
    let mut seen = std::collections::HashSet::new();
    // Around the address wrap (2^17) and far out (10 M).
    for i in (0..1000)
        .chain(PREFILL_ADDRS - 500..PREFILL_ADDRS + 500)
        .chain(9_999_000..10_000_000)
    {
        let p = prefill_peer(i);
        let o = p.ip().octets();
        assert!(o[0] == 198 && (o[1] == 18 || o[1] == 19), "{p}");
        assert!(p.port() >= 1024, "{p}");
        assert!(seen.insert(p), "{i}: {p} repeated");
    }
    assert_eq!(prefill_peer(0), "198.18.0.0:1024".parse().unwrap());
    assert_eq!(
        prefill_peer(PREFILL_ADDRS),
        "198.18.0.0:1025".parse().unwrap()
    );
    assert_eq!(
        prefill_peer(PREFILL_ADDRS - 1),
        "198.19.255.255:1024".parse().unwrap()
    );
}

fn setup(queue: u32, queues: u32, total: u64, capacity: usize) -> (WorkerSetup, Stack) {
    let stack = StackConfig {
        time_wait_capacity: capacity,
        ..StackConfig::default()
    };
    let s = WorkerSetup {
        queue,
        queues,
        cpu: None,
        iface: "lo".into(),
        stack: stack.clone(),
        listen: vec!["10.77.0.1:8080".parse().unwrap()],
        stack6: None,
        listen6: Vec::new(),
        poll: PollMode::Busy,
        idle_spins: 0,
        idle_wait: Duration::from_millis(1),
        shutdown: ShutdownPolicy::default(),
        epoch: StdInstant::now(),
        hub: None,
        owners: super::super::handoff::Ownership::new(queues, 32768..=60999, None),
        prefill_time_wait: total,
        capture: None,
    };
    (s, Stack::new(stack, Instant::from_micros(0)))
}

#[test]
fn prefill_splits_across_queues_and_caps_at_capacity() {
    let now = Instant::from_micros(1000);
    // 5 entries over 2 queues: queue 0 takes 0, 2, 4; queue 1 takes 1, 3.
    for (queue, want) in [(0u32, vec![0u64, 2, 4]), (1, vec![1, 3])] {
        let (s, mut stack) = setup(queue, 2, 5, 100);
        assert_eq!(prefill_time_wait(&mut stack, &s, now), want.len() as u64);
        assert_eq!(stack.time_wait_table().len(), want.len());
        assert_eq!(stack.counters().time_wait, want.len() as u64);
        for i in 0..6u64 {
            let p = prefill_peer(i);
            let t = FourTuple {
                local_addr: "10.77.0.1".parse().unwrap(),
                remote_addr: *p.ip(),
                local_port: 8080,
                remote_port: p.port(),
            };
            assert_eq!(
                stack.in_time_wait(&t),
                want.contains(&i),
                "queue {queue}, entry {i}"
            );
        }
    }
    // More than the table holds: capped, nothing evicted.
    let (s, mut stack) = setup(0, 1, 50, 16);
    assert_eq!(prefill_time_wait(&mut stack, &s, now), 16);
    assert_eq!(stack.time_wait_table().len(), 16);
    assert_eq!(stack.counters().time_wait_table_full, 0);
    // Nothing asked, nothing inserted.
    let (s, mut stack) = setup(0, 1, 0, 16);
    assert_eq!(prefill_time_wait(&mut stack, &s, now), 0);
}

/// Counts what the frame hooks see; takes the frames that start with 0xee.
#[derive(Default)]
struct Hooks {
    rx: usize,
    tx: usize,
}

impl App for Hooks {
    const FRAME_HOOKS: bool = true;
    fn on_event(&mut self, _: &mut Io<'_>, _: AppEvent) {}
    fn on_rx_frame(&mut self, frame: &[u8]) -> bool {
        self.rx += 1;
        frame[0] == 0xee
    }
    fn on_tx_frame(&mut self, _: &[u8]) {
        self.tx += 1;
    }
}

#[test]
fn frame_hooks_see_every_frame_and_raw_frames_bypass_the_stack() {
    use crate::link::memory::MemoryLink;
    use crate::wire::EthernetAddress;
    let now = Instant::from_micros(1000);
    let (s, _) = setup(0, 1, 0, 16);
    let local: std::net::Ipv4Addr = "10.77.0.1".parse().unwrap();
    let stack = Stack::new(
        StackConfig {
            ips: vec![local],
            arp: false,
            ..StackConfig::default()
        },
        now,
    );
    let mut core = CoreState::new(stack, Resolver::new("lo"), now, 0, 1, 1514);
    let mut link = MemoryLink::with_max_frame_len(1514);
    let mut app = Hooks::default();

    // Received: the hook sees both frames and takes one; the stack sees the other.
    link.push_rx(&[0xee; 60]);
    link.push_rx(&[0x11; 60]);
    receive_hooked(&s, &mut core, &mut link, &mut app, now);
    assert_eq!(app.rx, 2);
    assert_eq!(core.stack.counters().rx_frames, 1);

    // Raw frames go out as they are, without the transmit hook; bad sizes are refused.
    let mut io = Io { core: &mut core };
    assert!(io.send_frame(&[1, 2, 3]));
    assert!(io.send_frame(&[4; 1514]));
    assert!(!io.send_frame(&[]));
    assert!(!io.send_frame(&[0; 1515]));
    flush_hooked(&mut core, &mut link, &mut app, now);
    let sent = link.take_tx();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0], [1, 2, 3]);
    assert_eq!(sent[1].len(), 1514);
    assert_eq!(app.tx, 0, "raw frames are not the stack's");
    assert!(core.raw.is_empty() && core.raw_lens.is_empty());

    // The stack's own frames pass the transmit hook: a SYN.
    let peer: std::net::Ipv4Addr = "10.77.0.2".parse().unwrap();
    core.stack
        .add_neighbor(peer, EthernetAddress([2, 0, 0, 0, 0, 2]));
    core.stack
        .connect(now, None, std::net::SocketAddrV4::new(peer, 80))
        .unwrap();
    flush_hooked(&mut core, &mut link, &mut app, now);
    assert_eq!((app.tx, link.take_tx().len()), (1, 1));
}

#[test]
fn wake_at_keeps_the_earliest_deadline_of_the_iteration() {
    let now = Instant::from_micros(1000);
    let (_, stack) = setup(0, 1, 0, 16);
    let mut core = CoreState::new(stack, Resolver::new("lo"), now, 0, 1, 1514);
    let mut io = Io { core: &mut core };
    io.wake_at(now + Duration::from_micros(500));
    io.wake_at(now + Duration::from_micros(200));
    io.wake_at(now + Duration::from_micros(900));
    assert_eq!(core.wake, Some(now + Duration::from_micros(200)));
}

/// A dual-stack core: a SYN of each family reaches its own stack (split by EtherType before
/// either parses, VLAN-tagged IPv6 included); active opens of each family get handles of one
/// numbering (IPv6 after the IPv4 slots) that `Io` routes to the right stack; one flush
/// sends both stacks' segments.
#[test]
fn a_dual_stack_core_splits_frames_and_routes_handles() {
    use crate::engine::ConnectError;
    use crate::link::memory::MemoryLink;
    use crate::stack::ConnHandle;
    use crate::tcp::State;
    use crate::wire::frame::emit_tcp6_frame;
    use crate::wire::{EthernetAddress, TcpControl, TcpRepr, emit_tcp_frame};
    use std::net::{Ipv4Addr, SocketAddrV6};

    let now = Instant::from_micros(1000);
    let (s, _) = setup(0, 1, 0, 16);
    let (local4, peer4): (Ipv4Addr, Ipv4Addr) =
        ("10.77.0.1".parse().unwrap(), "10.77.0.2".parse().unwrap());
    let (local6, peer6): (Ipv6Addr, Ipv6Addr) =
        ("fd00:77::1".parse().unwrap(), "fd00:77::2".parse().unwrap());
    let cfg = StackConfig {
        ips: vec![local4],
        ips6: vec![local6],
        arp: false,
        max_connections: 8,
        ..StackConfig::default()
    };
    let (ours, peer_mac) = (cfg.mac, EthernetAddress([2, 0, 0, 0, 0, 2]));
    let mut core = CoreState::new(
        Stack::new(cfg.clone(), now),
        Resolver::new("lo"),
        now,
        0,
        1,
        1514,
    );
    let mut v6 = Box::new(Core6 {
        stack: Stack::new_v6(cfg, now),
        resolver: Resolver::new("lo"),
        listeners: Vec::new(),
    });
    v6.stack
        .listen(SocketAddrV6::new(local6, 80, 0, 0))
        .unwrap();
    core.v6 = Some(v6);
    core.stack.listen(SocketAddrV4::new(local4, 80)).unwrap();
    assert_eq!(core.base6, 8);

    let syn = |port| TcpRepr {
        src_port: port,
        dst_port: 80,
        control: TcpControl::Syn,
        seq_number: SeqNumber(1),
        window_len: 64240,
        max_seg_size: Some(1400),
        ..TcpRepr::default()
    };
    let mut link = MemoryLink::with_max_frame_len(1514);
    let mut buf = [0u8; 256];
    let n = emit_tcp_frame(&mut buf, peer_mac, ours, peer4, local4, &syn(1111)).unwrap();
    link.push_rx(&buf[..n]);
    let n = emit_tcp6_frame(&mut buf, peer_mac, ours, peer6, local6, &syn(2222)).unwrap();
    link.push_rx(&buf[..n]);
    // The same IPv6 SYN behind an 802.1Q tag goes to the IPv6 stack too (which drops it:
    // it lives on no VLAN, and counts that).
    let mut tagged = buf[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x00, 0x64]);
    tagged.extend_from_slice(&buf[12..n]);
    link.push_rx(&tagged);
    receive(&s, &mut core, &mut link, now);
    let c4 = core.stack.counters();
    let c6 = core.v6.as_ref().unwrap().stack.counters();
    assert_eq!((c4.rx_frames, c4.syns_received), (1, 1), "{c4:?}");
    assert_eq!((c6.rx_frames, c6.syns_received), (2, 1), "{c6:?}");
    assert_eq!(c6.rx_vlan_mismatch, 1, "{c6:?}");
    flush_both(&mut core, &mut link, now);
    let ethertypes = |sent: &[Vec<u8>]| {
        let mut t: Vec<[u8; 2]> = sent.iter().map(|f| [f[12], f[13]]).collect();
        t.sort_unstable();
        t
    };
    let sent = link.take_tx();
    assert_eq!(
        ethertypes(&sent),
        [[0x08, 0x00], [0x86, 0xdd]],
        "two SYN-ACKs"
    );

    // Active opens of each family (neighbours known: no kernel resolution in a unit test).
    core.stack.add_neighbor(peer4, peer_mac);
    core.v6
        .as_mut()
        .unwrap()
        .stack
        .add_neighbor(peer6, peer_mac);
    let mut io = Io { core: &mut core };
    let h4 = io.connect(SocketAddrV4::new(peer4, 7)).unwrap();
    let h6 = io.connect(SocketAddrV6::new(peer6, 7, 0, 0)).unwrap();
    assert!(h4.index() < 8 && h6.index() >= 8, "{h4:?} {h6:?}");
    assert!(!io.is_ipv6(h4) && io.is_ipv6(h6));
    assert_eq!(io.state(h6), Some(State::SynSent));
    assert_eq!(io.tuple(h6), None);
    assert_eq!(io.tuple6(h6).map(|t| t.local_addr), Some(local6));
    assert_eq!(io.tuple6(h4), None);
    assert_eq!(
        io.peer_addr(h6),
        Some(SocketAddrV6::new(peer6, 7, 0, 0).into())
    );
    assert_eq!(io.peer_addr(h4), Some(SocketAddrV4::new(peer4, 7).into()));
    // Family mismatches are errors, not panics.
    assert_eq!(
        io.connect_from(local4, SocketAddrV6::new(peer6, 7, 0, 0)),
        Err(ConnectError::Family)
    );
    flush_both(&mut core, &mut link, now);
    assert_eq!(
        ethertypes(&link.take_tx()),
        [[0x08, 0x00], [0x86, 0xdd]],
        "two SYNs"
    );
    // Closing through the shared handle ends the IPv6 connection, not an IPv4 one.
    let mut io = Io { core: &mut core };
    io.abort(h6).unwrap();
    assert!(
        matches!(io.state(h6), None | Some(State::Closed)),
        "{:?}",
        io.state(h6)
    );
    assert_eq!(io.state(h4), Some(State::SynSent));
    // A stale or foreign handle is refused by either stack, never a panic.
    let bogus: ConnHandle = h6.shifted(1000);
    assert!(io.send(bogus, b"x").is_err());
    assert_eq!(io.recv_queue(bogus), 0);
}
