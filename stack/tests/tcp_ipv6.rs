//! The TCP control block over IPv6 tuples (`Connection<Ipv6Addr>`), end to end without the
//! `Stack` (which is IPv4-only so far, see docs/ipv6.md): every segment is emitted as an
//! Ethernet/IPv6 frame (`emit_tcp6_frame`, checksum over the IPv6 pseudo-header) and parsed
//! back (`parse_tcp6_frame`, checksum verified) before the other side sees it. The passive
//! side is opened as the listener opens it (`Connection::from_handshake` after a SYN-ACK),
//! with the SYN-ACK built here.

use xtcp::tcp::FourTuple;
use xtcp::tcp::connection::PassiveOpen;
use xtcp::tcp::{Address, Connection, Counters, Event, IcmpOutcome, State, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp::wire::frame::{emit_tcp6_frame, parse_tcp6_frame};
use xtcp::wire::{EthernetAddress, Ipv4Addr, Ipv6Addr, SeqNumber, TcpControl, TcpRepr};
use xtcp_testkit::bulk::{StreamHash, expected_hash, fill_stream};

const MAC_A: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xa]);
const MAC_B: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0xb]);
const A_ISS: u32 = 1000;
const B_ISS: u32 = 5000;

fn tuple_a() -> FourTuple<Ipv6Addr> {
    FourTuple {
        local_addr: "fd00:78::2".parse().unwrap(),
        remote_addr: "fd00:77::1".parse().unwrap(),
        local_port: 40000,
        remote_port: 8080,
    }
}

fn cfg() -> TcpConfig {
    TcpConfig {
        // A 1500-byte Ethernet link: 1440 over IPv6.
        mss: Ipv6Addr::mss_for_mtu(1500),
        ..TcpConfig::default()
    }
}

/// Everything `c` has to send, each as a checked IPv6 frame parsed back into owned parts:
/// the segment (payload copied) and the frame's addresses.
fn drain(
    c: &mut Connection<Ipv6Addr>,
    now: Instant,
    mac: (EthernetAddress, EthernetAddress),
) -> Vec<Vec<u8>> {
    let mut counters = Counters::default();
    let t = c.tuple();
    let mut frames = Vec::new();
    while let Some(repr) = c.poll_transmit(now, &mut counters) {
        let mut buf = vec![0u8; 2048];
        let n =
            emit_tcp6_frame(&mut buf, mac.0, mac.1, t.local_addr, t.remote_addr, &repr).unwrap();
        buf.truncate(n);
        frames.push(buf);
    }
    frames
}

/// Parses an IPv6 frame (checksum verified) and hands its segment to `c`, checking the
/// addresses and ports against `c`'s tuple.
fn deliver(c: &mut Connection<Ipv6Addr>, now: Instant, frame: &[u8]) {
    let f = parse_tcp6_frame(frame).expect("a valid IPv6 TCP frame");
    let t = c.tuple();
    assert_eq!(
        (f.ip.dst_addr, f.ip.src_addr),
        (t.local_addr, t.remote_addr)
    );
    assert_eq!(
        (f.tcp.dst_port, f.tcp.src_port),
        (t.local_port, t.remote_port)
    );
    c.handle_segment(now, &f.tcp, &mut Counters::default());
}

/// A client in SYN-SENT and the server made from its SYN, both ESTABLISHED.
fn open() -> (Connection<Ipv6Addr>, Connection<Ipv6Addr>, Instant) {
    let now = Instant::from_millis(1);
    let mut a = Connection::connect(&cfg(), tuple_a(), SeqNumber(A_ISS), 0, now);
    let syn = drain(&mut a, now, (MAC_A, MAC_B));
    assert_eq!(syn.len(), 1);
    let f = parse_tcp6_frame(&syn[0]).unwrap();
    assert_eq!(f.tcp.control, TcpControl::Syn);
    assert_eq!(f.tcp.max_seg_size, Some(1440), "MSS from the IPv6 MTU");
    // The listener's SYN-ACK (what `passive.rs` sends), then the final ACK.
    let synack = TcpRepr {
        src_port: 8080,
        dst_port: 40000,
        control: TcpControl::Syn,
        seq_number: SeqNumber(B_ISS),
        ack_number: Some(f.tcp.seq_number + 1),
        window_len: 65535,
        max_seg_size: Some(1440),
        window_scale: cfg().offered_wscale(),
        sack_permitted: true,
        ..TcpRepr::default()
    };
    let mut buf = [0u8; 128];
    let tb = tuple_a().reversed();
    let n = emit_tcp6_frame(
        &mut buf,
        MAC_B,
        MAC_A,
        tb.local_addr,
        tb.remote_addr,
        &synack,
    )
    .unwrap();
    deliver(&mut a, now, &buf[..n]);
    assert_eq!(a.state(), State::Established);
    let ack = drain(&mut a, now, (MAC_A, MAC_B));
    assert_eq!(ack.len(), 1);
    let fa = parse_tcp6_frame(&ack[0]).unwrap();
    let passive = PassiveOpen {
        tuple: tb,
        iss: SeqNumber(B_ISS),
        peer_mss: f.tcp.max_seg_size.unwrap(),
        wscale: f.tcp.window_scale,
        sack_permitted: f.tcp.sack_permitted,
        ts_recent: None,
        ts_offset: 0,
    };
    let b = Connection::from_handshake(&cfg(), &passive, &fa.tcp, now);
    assert_eq!(b.state(), State::Established);
    (a, b, now)
}

/// Runs both sides until neither has anything to send or a timer due within `limit`.
fn pump(a: &mut Connection<Ipv6Addr>, b: &mut Connection<Ipv6Addr>, now: &mut Instant) {
    let mut counters = Counters::default();
    for _ in 0..200_000 {
        let fa = drain(a, *now, (MAC_A, MAC_B));
        let fb = drain(b, *now, (MAC_B, MAC_A));
        for f in &fa {
            deliver(b, *now, f);
        }
        for f in &fb {
            deliver(a, *now, f);
        }
        if fa.is_empty() && fb.is_empty() {
            // Nothing in flight: the next timer (delayed ACK), or done.
            let next = [a.poll_at(), b.poll_at()].into_iter().flatten().min();
            match next {
                Some(t) if t <= *now + Duration::from_millis(500) => {
                    *now = t.max(*now);
                    a.handle_timeout(*now, &mut counters);
                    b.handle_timeout(*now, &mut counters);
                }
                _ => return,
            }
        }
        *now += Duration::from_micros(10);
    }
    panic!("no quiescence");
}

/// Sends `len` stream bytes from `tx` to `rx`, reading as they arrive; byte-exact.
fn transfer(
    tx: &mut Connection<Ipv6Addr>,
    rx: &mut Connection<Ipv6Addr>,
    now: &mut Instant,
    seed: u64,
    len: usize,
    tx_is_a: bool,
) {
    let (mut sent, mut got) = (0, StreamHash::default());
    let mut received = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    for _ in 0..10_000 {
        if sent < len {
            let n = chunk.len().min(len - sent);
            fill_stream(seed, sent, &mut chunk[..n]);
            sent += tx.send(&chunk[..n]).unwrap();
        }
        if tx_is_a {
            pump(tx, rx, now);
        } else {
            pump(rx, tx, now);
        }
        loop {
            let n = rx.recv(&mut chunk);
            if n == 0 {
                break;
            }
            got.update(&chunk[..n]);
            received += n;
        }
        if received == len {
            break;
        }
    }
    assert_eq!(received, len);
    assert_eq!(got, expected_hash(seed, len), "byte-exact");
}

#[test]
fn ipv6_connection_handshake_data_both_ways_and_close() {
    let (mut a, mut b, mut now) = open();
    assert_eq!(a.poll_event(), Some(Event::Connected));
    assert_eq!(b.poll_event(), Some(Event::Connected));
    transfer(&mut a, &mut b, &mut now, 1, 1 << 20, true);
    transfer(&mut b, &mut a, &mut now, 2, 1 << 20, false);
    // The client closes first: it ends in TIME-WAIT, the server CLOSED.
    a.close(now).unwrap();
    pump(&mut a, &mut b, &mut now);
    assert_eq!(b.state(), State::CloseWait);
    b.close(now).unwrap();
    pump(&mut a, &mut b, &mut now);
    assert_eq!((a.state(), b.state()), (State::TimeWait, State::Closed));
}

/// RFC 8201: a Packet Too Big lowers the MSS to the reported MTU − 60, never below the IPv6
/// minimum link MTU of 1280 (MSS 1220); IPv4 (RFC 1191) takes MTU − 40 down to 552.
#[test]
fn ipv6_path_mtu_floor_is_1280() {
    let (mut a, mut b, mut now) = open();
    transfer(&mut a, &mut b, &mut now, 3, 100_000, true);
    let data = vec![7u8; 20_000];
    a.send(&data).unwrap();
    let in_flight = drain(&mut a, now, (MAC_A, MAC_B));
    assert!(!in_flight.is_empty());
    let una = parse_tcp6_frame(&in_flight[0]).unwrap().tcp.seq_number;
    assert_eq!(
        a.on_path_mtu(1400, una, now),
        IcmpOutcome::MssLowered {
            from: 1440,
            mss: 1340
        }
    );
    assert_eq!(
        a.on_path_mtu(1000, una, now),
        IcmpOutcome::MssLowered {
            from: 1340,
            mss: 1220
        }
    );
    assert_eq!(a.on_path_mtu(600, una, now), IcmpOutcome::MssUnchanged);
    // What goes again fits the 1280-byte path.
    let again = drain(&mut a, now, (MAC_A, MAC_B));
    assert!(!again.is_empty());
    assert!(
        again.iter().all(|f| f.len() - 14 <= 1280),
        "IPv6 packets ≤ 1280 bytes"
    );
    // An IPv4 connection with the same report goes to 1000 − 40.
    let t4 = FourTuple {
        local_addr: Ipv4Addr::new(10, 0, 0, 2),
        remote_addr: Ipv4Addr::new(10, 0, 0, 1),
        local_port: 40000,
        remote_port: 8080,
    };
    let mut c4 = Connection::connect(&TcpConfig::default(), t4, SeqNumber(A_ISS), 0, now);
    assert!(
        c4.poll_transmit(now, &mut Counters::default()).is_some(),
        "the SYN"
    );
    assert_eq!(
        c4.on_path_mtu(1000, SeqNumber(A_ISS), now),
        IcmpOutcome::MssLowered {
            from: 1460,
            mss: 960
        }
    );
}
