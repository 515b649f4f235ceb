//! Focused reliability tests with exact segment assertions: RTO and Karn, fast retransmit,
//! NewReno partial ACKs, SACK generation and the sender's scoreboard, zero-window probing,
//! PAWS across the timestamp and sequence wraps, keepalive, delayed and quick ACKs, Nagle.
//!
//! A hand-driven pair of `Connection`s: the test decides which segment is delivered, lost or
//! reordered, and when time advances. A (client) and B (server) ISNs and timestamp offsets
//! are chosen per test.

use xtcp::tcp::{CongestionAlgorithm, Connection, Event, Keepalive, State, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp::wire::{SeqNumber, TcpControl};
use xtcp_testkit::pair::{Pair, PairConfig};
use xtcp_testkit::seg::{Seg, k, keys};

/// No options: segment sizes are exactly the MSS.
fn plain() -> TcpConfig {
    TcpConfig {
        timestamps: false,
        sack: false,
        window_scaling: false,
        mss: 1000,
        ..TcpConfig::default()
    }
}

fn with_sack() -> TcpConfig {
    TcpConfig {
        sack: true,
        ..plain()
    }
}

/// An established pair (handshake at t = 1 s, so the RTO after it is the 200 ms floor for
/// any small RTT) with A's and B's ISNs and timestamp offsets, events drained.
fn establish(cfg_a: TcpConfig, cfg_b: TcpConfig, a_iss: u32, b_iss: u32, ts: (u32, u32)) -> Pair {
    let mut p = Pair::with(PairConfig {
        a_iss,
        b_iss,
        ts_a: ts.0,
        ts_b: ts.1,
        start: Instant::from_secs(1),
        ..PairConfig::new(cfg_a, cfg_b)
    });
    p.handshake();
    let _ = p.a_events();
    let _ = p.b_events();
    p
}

/// [`establish`] with ISNs 1000 and 5000 and zero timestamp offsets.
fn pair(cfg_a: TcpConfig, cfg_b: TcpConfig) -> Pair {
    establish(cfg_a, cfg_b, 1000, 5000, (0, 0))
}

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn data(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 + 7) as u8).collect()
}

fn read_all(c: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = c.recv(&mut buf);
        if n == 0 {
            return out;
        }
        out.extend_from_slice(&buf[..n]);
    }
}

const MS: Duration = Duration::from_millis(1);

// ============================================================ RTO (RFC 6298)

#[test]
fn rto_doubles_on_repeated_loss_and_resets_after_a_new_ack() {
    let mut p = pair(plain(), plain());
    let t0 = p.now;
    p.a.send(b"hello").unwrap();
    assert_eq!(keys(&p.out_a()), [k(".", p.a_seq(0), Some(p.b_seq(0)), 5)]);
    // The handshake measured 0 µs: RTO = the 200 ms floor. Each loss doubles it.
    let mut expected = t0;
    let mut last = Vec::new();
    for (i, rto) in [200, 400, 800, 1600].into_iter().enumerate() {
        expected += rto * MS;
        assert_eq!(p.a.poll_at(), Some(expected), "timeout {i}");
        p.at(Instant::from_micros(expected.total_micros() - 1));
        assert!(p.out_a().is_empty(), "nothing before the deadline");
        p.at(expected);
        let rtx = p.out_a();
        assert_eq!(keys(&rtx), [k(".", p.a_seq(0), Some(p.b_seq(0)), 5)]);
        assert_eq!(p.a.rtt().backoff(), i as u8 + 1);
        last = rtx;
    }
    assert_eq!(p.a.stats().rto_expirations, 4);
    // The fourth retransmission arrives; its ACK ends the backoff.
    p.deliver_b(&last[0]);
    let ack = p.out_b();
    assert_eq!(keys(&ack), [k(".", p.b_seq(0), Some(p.a_seq(5)), 0)]);
    p.deliver_a(&ack[0]);
    assert_eq!(
        p.a.poll_at(),
        None,
        "everything acknowledged: timer stopped"
    );
    assert_eq!(p.a.rtt().backoff(), 0);
    p.a.send(b"more").unwrap();
    let _ = p.out_a();
    assert_eq!(
        p.a.poll_at(),
        Some(p.now + 200 * MS),
        "back to the base RTO"
    );
}

#[test]
fn karn_ignores_samples_from_retransmitted_segments() {
    let mut p = pair(plain(), plain());
    let samples = p.a.rtt().samples();
    let srtt = p.a.rtt().srtt();
    p.a.send(b"abc").unwrap();
    let _lost = p.out_a();
    p.advance(200 * MS);
    let rtx = p.out_a();
    assert_eq!(keys(&rtx), [k(".", p.a_seq(0), Some(p.b_seq(0)), 3)]);
    // The ACK comes 150 ms after the retransmission (350 ms after the original): ambiguous.
    p.advance(150 * MS);
    p.deliver_b(&rtx[0]);
    let ack = p.out_b();
    p.deliver_a(&ack[0]);
    assert_eq!(
        p.a.rtt().samples(),
        samples,
        "no sample from a retransmission"
    );
    assert_eq!(p.a.rtt().srtt(), srtt);
    // A fresh segment acknowledged after 30 ms is timed.
    p.a.send(b"def").unwrap();
    let seg = p.out_a();
    p.advance(30 * MS);
    p.deliver_b(&seg[0]);
    let ack = p.out_b();
    p.deliver_a(&ack[0]);
    assert_eq!(p.a.rtt().samples(), samples + 1);
    // srtt = 7/8 * 0 + 1/8 * 30 ms.
    assert_eq!(p.a.rtt().srtt(), Some(Duration::from_micros(3750)));
}

#[test]
fn timestamps_give_rtt_samples_and_data_retries_end_in_timed_out() {
    let cfg = TcpConfig {
        timestamps: true,
        data_retries: 3,
        ..plain()
    };
    let mut p = pair(cfg, cfg);
    p.a.send(b"x").unwrap();
    let seg = p.out_a();
    p.advance(20 * MS);
    p.deliver_b(&seg[0]);
    let ack = p.out_b();
    assert_eq!(ack[0].ts.unwrap().tsecr, seg[0].ts.unwrap().tsval);
    p.deliver_a(&ack[0]);
    // RTT from the echoed timestamp: 20 ms (srtt = 7/8 * 0 + 1/8 * 20 ms after the
    // handshake's 0 ms sample).
    assert_eq!(p.a.rtt().srtt(), Some(Duration::from_micros(2_500)));
    // Now the peer vanishes: 3 retransmissions, then TimedOut.
    p.a.send(b"y").unwrap();
    let _ = p.out_a();
    let mut sent = 0;
    while let Some(t) = p.a.poll_at() {
        p.at(t);
        sent += p.out_a().iter().filter(|s| s.payload == b"y").count();
    }
    assert_eq!(sent, 3);
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(events(&mut p.a), [Event::TimedOut, Event::Closed]);
}

// ============================================================ fast retransmit, NewReno

/// A sends `n` full segments of 1000 bytes; returns them.
fn burst(p: &mut Pair, n: usize) -> Vec<Seg> {
    p.a.send(&data(1000 * n)).unwrap();
    let segs = p.out_a();
    assert_eq!(segs.len(), n, "all within the initial window");
    for (i, s) in segs.iter().enumerate() {
        assert_eq!(
            s.key(),
            k(".", p.a_seq(1000 * i as u32), Some(p.b_seq(0)), 1000)
        );
    }
    segs
}

#[test]
fn fast_retransmit_on_the_third_duplicate_ack() {
    let cfg = TcpConfig {
        congestion: CongestionAlgorithm::NewReno,
        ..plain()
    };
    let mut p = pair(cfg, cfg);
    let segs = burst(&mut p, 6);
    // Segment 0 is lost; 1..5 arrive out of order and each draws an immediate duplicate ACK.
    let mut dupacks = Vec::new();
    for s in &segs[1..] {
        p.deliver_b(s);
        let ack = p.out_b();
        assert_eq!(keys(&ack), [k(".", p.b_seq(0), Some(p.a_seq(0)), 0)]);
        dupacks.push(ack[0].clone());
    }
    p.deliver_a(&dupacks[0]);
    assert!(p.out_a().is_empty(), "first duplicate ACK");
    p.deliver_a(&dupacks[1]);
    assert!(p.out_a().is_empty(), "second duplicate ACK");
    assert!(!p.a.in_recovery());
    p.deliver_a(&dupacks[2]);
    assert_eq!(
        keys(&p.out_a()),
        [k(".", p.a_seq(0), Some(p.b_seq(0)), 1000)],
        "third duplicate ACK: the lost segment, at once"
    );
    assert!(p.a.in_recovery());
    // RFC 5681: ssthresh = FlightSize / 2; cwnd = ssthresh + 3 * SMSS.
    assert_eq!(p.a.ssthresh(), 3000);
    assert_eq!(p.a.cwnd(), 6000);
    assert_eq!(p.a.stats().fast_retransmits, 1);
    // The fourth and fifth inflate the window by one SMSS each.
    p.deliver_a(&dupacks[3]);
    assert_eq!(p.a.cwnd(), 7000);
    // The retransmission fills the hole: B acknowledges everything at once (hole filled).
    p.deliver_b(&Seg { ..segs[0].clone() });
    let ack = p.out_b();
    assert_eq!(keys(&ack), [k(".", p.b_seq(0), Some(p.a_seq(6000)), 0)]);
    p.deliver_a(&ack[0]);
    assert!(!p.a.in_recovery());
    // Full ACK: cwnd = min(ssthresh, FlightSize + SMSS) = min(3000, 0 + 1000).
    assert_eq!(p.a.cwnd(), 1000);
    assert_eq!(p.b_read_all(), data(6000));
}

#[test]
fn newreno_partial_ack_retransmits_the_next_hole() {
    let cfg = TcpConfig {
        congestion: CongestionAlgorithm::NewReno,
        ..plain()
    };
    let mut p = pair(cfg, cfg);
    let segs = burst(&mut p, 7);
    // Segments 0 and 3 are lost.
    let mut acks = Vec::new();
    for i in [1, 2, 4, 5, 6] {
        p.deliver_b(&segs[i]);
        acks.extend(p.out_b());
    }
    assert!(acks.iter().all(|a| a.ack == Some(p.a_seq(0))));
    p.deliver_a_all(&acks[..3]);
    assert_eq!(
        keys(&p.out_a()),
        [k(".", p.a_seq(0), Some(p.b_seq(0)), 1000)]
    );
    p.deliver_a_all(&acks[3..]);
    assert!(p.out_a().is_empty(), "no new data to send");
    // The retransmission of 0 arrives: B acknowledges up to the second hole (a partial ACK).
    p.deliver_b(&segs[0]);
    let partial = p.out_b();
    assert_eq!(keys(&partial), [k(".", p.b_seq(0), Some(p.a_seq(3000)), 0)]);
    p.deliver_a(&partial[0]);
    assert_eq!(
        keys(&p.out_a()),
        [k(".", p.a_seq(3000), Some(p.b_seq(0)), 1000)],
        "RFC 6582: the partial ACK retransmits the next hole at once"
    );
    assert!(p.a.in_recovery());
    assert_eq!(p.a.stats().partial_acks, 1);
    assert_eq!(p.a.stats().retransmits, 2);
    assert_eq!(p.a.stats().rto_expirations, 0);
    p.deliver_b(&segs[3]);
    let full = p.out_b();
    assert_eq!(keys(&full), [k(".", p.b_seq(0), Some(p.a_seq(7000)), 0)]);
    p.deliver_a(&full[0]);
    assert!(!p.a.in_recovery());
    assert_eq!(p.b_read_all(), data(7000));
}

// ============================================================ SACK (RFC 2018, RFC 6675)

#[test]
fn sack_blocks_report_out_of_order_data_most_recent_first() {
    let mut p = pair(with_sack(), with_sack());
    let segs = burst(&mut p, 6);
    let base = p.a_seq(0);
    let s = |i: u32| base.wrapping_add(1000 * i);
    // 0 and 2 lost; 1, 3, 4 arrive; then 5.
    p.deliver_b(&segs[1]);
    let ack = p.out_b();
    assert_eq!(ack[0].ack, Some(s(0)));
    assert_eq!(ack[0].sack, [(s(1), s(2))]);
    p.deliver_b(&segs[3]);
    let ack = p.out_b();
    assert_eq!(
        ack[0].sack,
        [(s(3), s(4)), (s(1), s(2))],
        "newest block first"
    );
    p.deliver_b(&segs[4]);
    let ack = p.out_b();
    assert_eq!(ack[0].sack, [(s(3), s(5)), (s(1), s(2))]);
    // A duplicate of 1 refreshes that block: it moves to the front.
    p.deliver_b(&segs[1]);
    let ack = p.out_b();
    assert_eq!(ack[0].sack, [(s(1), s(2)), (s(3), s(5))]);
    // The first hole fills: the cumulative ACK moves, the remaining block stays.
    p.deliver_b(&segs[0]);
    let ack = p.out_b();
    assert_eq!(ack[0].ack, Some(s(2)));
    assert_eq!(ack[0].sack, [(s(3), s(5))]);
    p.deliver_b(&segs[2]);
    let ack = p.out_b();
    assert_eq!(ack[0].ack, Some(s(5)));
    assert!(ack[0].sack.is_empty());
    assert_eq!(p.b().out_of_order_bytes(), 0);
}

#[test]
fn sack_sender_retransmits_only_the_holes_even_after_an_rto() {
    let mut p = pair(with_sack(), with_sack());
    let segs = burst(&mut p, 8);
    let base = p.a_seq(0);
    let s = |i: u32| base.wrapping_add(1000 * i);
    // 0 and 3 lost; the rest arrive and are SACKed.
    let mut acks = Vec::new();
    for i in [1, 2, 4, 5, 6, 7] {
        p.deliver_b(&segs[i]);
        acks.extend(p.out_b());
    }
    assert_eq!(acks.last().unwrap().sack, [(s(4), s(8)), (s(1), s(3))]);
    // With three segments SACKed above it, segment 0 is lost (RFC 6675 IsLost): recovery.
    p.deliver_a_all(&acks[..3]);
    let rtx = p.out_a();
    assert!(p.a.in_recovery());
    p.deliver_a_all(&acks[3..]);
    let rtx2 = p.out_a();
    let rtx: Vec<_> = rtx.iter().chain(&rtx2).map(Seg::key).collect();
    assert_eq!(
        rtx,
        [
            k(".", s(0), Some(p.b_seq(0)), 1000),
            k(".", s(3), Some(p.b_seq(0)), 1000)
        ],
        "the two holes, nothing SACKed"
    );
    assert_eq!(
        p.a.scoreboard().ranges().collect::<Vec<_>>(),
        [
            (SeqNumber(s(1)), SeqNumber(s(3))),
            (SeqNumber(s(4)), SeqNumber(s(8)))
        ]
    );
    // Both retransmissions are lost too: the RTO goes back to SND.UNA and resends only the
    // holes, skipping every SACKed range.
    let t = p.a.poll_at().unwrap();
    p.at(t);
    let mut resent = p.out_a();
    // cwnd is one segment after the RTO: ACK the first to open it.
    assert_eq!(keys(&resent), [k(".", s(0), Some(p.b_seq(0)), 1000)]);
    p.deliver_b(&resent[0]);
    let ack = p.out_b();
    assert_eq!(ack[0].ack, Some(s(3)));
    p.deliver_a(&ack[0]);
    resent = p.out_a();
    assert_eq!(keys(&resent), [k(".", s(3), Some(p.b_seq(0)), 1000)]);
    p.deliver_b(&resent[0]);
    let ack = p.out_b();
    assert_eq!(ack[0].ack, Some(s(8)));
    p.deliver_a(&ack[0]);
    assert!(p.out_a().is_empty());
    assert_eq!(
        p.a.stats().bytes_retransmitted,
        4000,
        "holes only, twice each"
    );
    assert_eq!(p.b_read_all(), data(8000));
}

// ============================================================ flow control

#[test]
fn zero_window_probes_back_off_and_sending_resumes_when_the_window_opens() {
    let cfg_b = TcpConfig {
        recv_buffer: 4000,
        ..plain()
    };
    let mut p = pair(plain(), cfg_b);
    let payload = data(10_000);
    assert_eq!(p.a.send(&payload).unwrap(), 10_000);
    // B never reads: 4000 bytes fill its buffer, its window goes to zero.
    let segs = p.out_a();
    assert_eq!(
        keys(&segs),
        (0..4)
            .map(|i| k(".", p.a_seq(1000 * i), Some(p.b_seq(0)), 1000))
            .collect::<Vec<_>>()
    );
    p.deliver_b_all(&segs);
    let acks = p.out_b();
    let last = acks.last().unwrap();
    assert_eq!((last.ack, last.window), (Some(p.a_seq(4000)), 0));
    p.deliver_a_all(&acks);
    assert_eq!(p.a.snd_wnd(), 0);
    assert!(p.out_a().is_empty());
    // Persist timer: probes at RTO (200 ms), then 400, 800, 1600 ms later: one byte each,
    // always the byte at SND.UNA, each answered with a zero window.
    let start = p.now;
    let mut at = start;
    for (i, gap) in [200u64, 400, 800, 1600].into_iter().enumerate() {
        at += Duration::from_millis(gap);
        assert_eq!(p.a.persist_at(), Some(at), "probe {i}");
        p.at(at);
        let probe = p.out_a();
        assert_eq!(keys(&probe), [k(".", p.a_seq(4000), Some(p.b_seq(0)), 1)]);
        p.deliver_b(&probe[0]);
        let reply = p.out_b();
        assert_eq!(keys(&reply), [k(".", p.b_seq(0), Some(p.a_seq(4000)), 0)]);
        assert_eq!(reply[0].window, 0);
        p.deliver_a(&reply[0]);
    }
    assert_eq!(p.a.stats().zero_window_probes, 4);
    assert_eq!(
        p.a.state(),
        State::Established,
        "a peer that answers is never timed out"
    );
    // B's application reads: the window update goes out at once, A resumes.
    assert_eq!(p.b_read_all().len(), 4000);
    let update = p.out_b();
    assert_eq!(keys(&update), [k(".", p.b_seq(0), Some(p.a_seq(4000)), 0)]);
    assert_eq!(update[0].window, 4000);
    p.deliver_a(&update[0]);
    assert_eq!(p.a.persist_at(), None);
    let resumed = p.out_a();
    assert_eq!(
        resumed[0].key(),
        k(".", p.a_seq(4000), Some(p.b_seq(0)), 1000)
    );
    assert_eq!(resumed.len(), 4);
    p.deliver_b_all(&resumed);
    // Drain the rest.
    let mut got = p.b_read_all();
    for _ in 0..10 {
        p.pump();
        got.extend(p.b_read_all());
    }
    assert_eq!(got, payload[4000..]);
}

#[test]
fn receiver_never_shrinks_its_right_edge_and_avoids_silly_windows() {
    let cfg_b = TcpConfig {
        recv_buffer: 8000,
        ..plain()
    };
    let mut p = pair(plain(), cfg_b);
    p.a.send(&data(6000)).unwrap();
    let segs = p.out_a();
    let mut edge = 0u32;
    for s in &segs {
        p.deliver_b(s);
        for ack in p.out_b() {
            let right = ack.ack.unwrap().wrapping_add(u32::from(ack.window));
            assert!(
                right.wrapping_sub(edge) as i32 >= 0 || edge == 0,
                "edge moved left"
            );
            edge = right;
        }
    }
    // 2000 bytes free: B reads 500 (less than one MSS): no window update (receiver SWS).
    let mut buf = [0u8; 500];
    assert_eq!(p.b_recv(&mut buf), 500);
    assert!(
        p.out_b().is_empty(),
        "a 500-byte window increase is not announced"
    );
    // Reading 1000 more makes the increase reach one MSS: an update goes out.
    let mut buf = [0u8; 1000];
    assert_eq!(p.b_recv(&mut buf), 1000);
    let upd = p.out_b();
    assert_eq!(upd.len(), 1);
    assert_eq!(upd[0].window, 3500);
}

#[test]
fn sender_avoids_silly_windows_until_the_override_timer() {
    let cfg_b = TcpConfig {
        recv_buffer: 2500,
        ..plain()
    };
    let mut p = pair(plain(), cfg_b);
    p.a.send(&data(2500)).unwrap();
    let segs = p.out_a();
    assert_eq!(
        segs.iter().map(|s| s.payload.len()).collect::<Vec<_>>(),
        [1000, 1000, 500]
    );
    p.deliver_b_all(&segs);
    let acks = p.out_b();
    let last = acks.last().unwrap().clone();
    assert_eq!((last.ack, last.window), (Some(p.a_seq(2500)), 0));
    p.deliver_a_all(&acks);
    p.a.send(&data(2000)).unwrap();
    assert!(p.out_a().is_empty());
    // A peer without receiver SWS avoidance offers a 300-byte window: less than an MSS and
    // less than half the largest window it ever offered, so A waits (RFC 9293 §3.8.6.2.1).
    let mut small = last.clone();
    small.window = 300;
    p.deliver_a(&small);
    assert!(p.out_a().is_empty(), "no silly 300-byte segment");
    // The override timeout (the persist timer) sends what the window allows.
    let at = p.a.persist_at().expect("override timer armed");
    assert_eq!(at, p.now + 200 * MS);
    p.at(at);
    assert_eq!(
        keys(&p.out_a()),
        [k(".", p.a_seq(2500), Some(p.b_seq(0)), 300)]
    );
}

// ============================================================ PAWS and wraps (RFC 7323)

#[test]
fn paws_drops_an_old_duplicate_across_the_timestamp_and_sequence_wraps() {
    let cfg = TcpConfig {
        timestamps: true,
        ..plain()
    };
    // Both sequence spaces and both timestamp clocks are about to wrap.
    let mut p = establish(
        cfg,
        cfg,
        u32::MAX - 1500,
        u32::MAX - 2500,
        (u32::MAX - 1500, u32::MAX - 2000),
    );
    // B sends 3000 bytes over 2 s: its sequence numbers and its TSvals cross 2^32.
    let mut sent = Vec::new();
    for i in 0..3u32 {
        p.b_send(&data(1000));
        let segs = p.out_b();
        // 988 + 12 bytes: the timestamps option comes out of the MSS (RFC 6691).
        assert_eq!(
            segs.iter().map(|s| s.payload.len()).collect::<Vec<_>>(),
            [988, 12]
        );
        assert_eq!(segs[0].seq, p.b_seq(1000 * i));
        sent.push(segs[0].clone());
        p.deliver_a_all(&segs);
        let acks = p.out_a();
        p.deliver_b_all(&acks);
        p.advance(Duration::from_millis(700));
    }
    let tsvals: Vec<u32> = sent.iter().map(|s| s.ts.unwrap().tsval).collect();
    assert!(
        tsvals[0] > u32::MAX - 2000 && tsvals[2] < 2000,
        "TSval wrapped: {tsvals:?}"
    );
    assert!(p.b().snd_nxt().0 < 1000, "sequence space wrapped");
    assert_eq!(p.a.ts_recent(), Some(tsvals[2]));
    assert_eq!(read_all(&mut p.a).len(), 3000);
    // An old duplicate of the first segment, seq and TSval from before both wraps, with a
    // sequence number made acceptable again (as after a full wrap of a fast connection): PAWS
    // drops it by its timestamp, answers with an ACK, and keeps RCV.NXT.
    let mut old = sent[0].clone();
    old.seq = p.a.rcv_nxt().0;
    let rcv_nxt = p.a.rcv_nxt();
    let drops = p.counters.paws_drops;
    p.deliver_a(&old);
    assert_eq!(p.counters.paws_drops, drops + 1);
    assert_eq!(p.a.rcv_nxt(), rcv_nxt);
    assert_eq!(
        keys(&p.out_a()),
        [k(".", p.a.snd_max().0, Some(rcv_nxt.0), 0)]
    );
    assert_eq!(p.a.recv_queue(), 0);
    // A fresh segment, whose TSval is later modulo 2^32, is accepted.
    p.b_send(b"new");
    let fresh = p.out_b();
    p.deliver_a(&fresh[0]);
    assert_eq!(read_all(&mut p.a), b"new");
}

// ============================================================ PAWS on the passive side

fn ts_cfg() -> TcpConfig {
    TcpConfig {
        timestamps: true,
        ..plain()
    }
}

/// `s` with its TSval made `age` older (modulo 2^32).
fn aged(s: &Seg, age: u32) -> Seg {
    let mut s = s.clone();
    let ts = s.ts.as_mut().expect("timestamps on");
    ts.tsval = ts.tsval.wrapping_sub(age);
    s
}

/// RFC 7323 §5.3 on the production passive open: data, a pure ACK and a FIN with a TSval
/// 2^20 older than TS.Recent are each dropped and answered with an ACK, and change nothing;
/// the same segments with their real TSval are then accepted; a RST is never dropped by
/// PAWS. With `wrap`, A's sequence numbers cross 2^32 on the way.
fn paws_on_a_listener_connection(wrap: bool) {
    let a_iss = if wrap { u32::MAX - 300 } else { 1000 };
    let mut p = establish(ts_cfg(), ts_cfg(), a_iss, 5000, (7, 0));
    let paws = |p: &Pair| p.stack.counters().paws_drops;
    p.advance(MS);
    // Fresh data: accepted (and, with `wrap`, it crosses 2^32).
    p.a.send(&data(600)).unwrap();
    let d1 = p.out_a();
    assert_eq!(keys(&d1), [k(".", p.a_seq(0), Some(p.b_seq(0)), 600)]);
    p.deliver_b_all(&d1);
    assert_eq!(p.b_read_all(), data(600));
    let ack = p.out_b();
    p.deliver_a_all(&ack);
    assert_eq!(p.b().ts_recent(), d1[0].ts.map(|t| t.tsval));

    // Stale data at RCV.NXT: dropped with an ACK, nothing queued.
    p.advance(MS);
    p.a.send(b"second").unwrap();
    let d2 = p.out_a().remove(0);
    p.deliver_b(&aged(&d2, 1 << 20));
    assert_eq!(paws(&p), 1);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(0), Some(p.a_seq(600)), 0)]
    );
    assert_eq!(p.b().recv_queue(), 0);
    p.deliver_b(&d2);
    assert_eq!(p.b_read_all(), b"second");
    let ack = p.out_b();
    p.deliver_a_all(&ack);

    // A stale pure ACK: its acknowledgment is not taken.
    p.advance(MS);
    p.b_send(b"reply");
    let r = p.out_b();
    p.deliver_a_all(&r);
    let a_ack = p.out_a().remove(0);
    assert_eq!(a_ack.key(), k(".", p.a_seq(606), Some(p.b_seq(5)), 0));
    p.deliver_b(&aged(&a_ack, 1 << 20));
    assert_eq!(paws(&p), 2);
    assert_eq!(p.b().snd_una().0, p.b_seq(0));
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(5), Some(p.a_seq(606)), 0)]
    );
    p.deliver_b(&a_ack);
    assert_eq!(p.b().snd_una().0, p.b_seq(5));

    // A stale FIN: B stays ESTABLISHED; the real one moves it to CLOSE-WAIT.
    let _ = p.b_events();
    p.advance(MS);
    p.a.shutdown(p.now).unwrap();
    let fin = p.out_a().remove(0);
    p.deliver_b(&aged(&fin, 1 << 20));
    assert_eq!(paws(&p), 3);
    assert_eq!(p.b_state(), State::Established);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(5), Some(p.a_seq(606)), 0)]
    );
    assert_eq!(p.b_events(), []);
    p.deliver_b(&fin);
    assert_eq!(p.b_state(), State::CloseWait);
    assert_eq!(p.b_events(), [Event::PeerClosed]);
    let ack = p.out_b();
    p.deliver_a_all(&ack);

    // A RST at RCV.NXT with a stale TSval still resets (RFC 7323 §5.3: never for RST).
    let rst = Seg {
        control: TcpControl::Rst,
        ack: None,
        payload: vec![],
        seq: p.a_seq(607),
        ..aged(&fin, 1 << 20)
    };
    p.deliver_b(&rst);
    assert_eq!(paws(&p), 3);
    assert_eq!(p.b_state(), State::Closed);
    assert_eq!(p.b_events(), [Event::Reset, Event::Closed]);
}

#[test]
fn paws_drops_stale_data_ack_and_fin_on_a_listener_connection() {
    paws_on_a_listener_connection(false);
}

#[test]
fn paws_drops_stale_data_ack_and_fin_across_the_sequence_wrap() {
    paws_on_a_listener_connection(true);
}

/// The final ACK of the handshake is judged against the SYN's TSval: a stale one is dropped
/// and answered with an ACK (as Linux's `tcp_check_req`), the SYN queue entry stays, and
/// the real ACK completes the handshake.
#[test]
fn paws_drops_a_stale_final_ack_and_keeps_the_syn_queue_entry() {
    let mut p = Pair::with(PairConfig {
        start: Instant::from_secs(1),
        ..PairConfig::new(ts_cfg(), ts_cfg())
    });
    let syn = p.out_a();
    p.deliver_b_all(&syn);
    let synack = p.out_b();
    p.deliver_a_all(&synack);
    let ack = p.out_a().remove(0);
    p.deliver_b(&aged(&ack, 1 << 20));
    assert_eq!(p.stack.counters().paws_drops, 1);
    assert_eq!(p.b_state(), State::SynReceived);
    assert_eq!(keys(&p.out_b()), [k(".", 5001, Some(1001), 0)]);
    p.deliver_b(&ack);
    assert_eq!(p.b_state(), State::Established);
    assert_eq!(p.b().ts_recent(), ack.ts.map(|t| t.tsval));
}

/// RFC 7323 §5.5: a TS.Recent idle for more than 24 days is invalid, so a segment with an
/// older TSval is accepted (and its TSval becomes TS.Recent).
#[test]
fn paws_ignores_a_ts_recent_idle_for_more_than_24_days() {
    let mut p = establish(ts_cfg(), ts_cfg(), 1000, 5000, (0, 0));
    let recent = p.b().ts_recent().unwrap();
    p.advance(Duration::from_secs(25 * 24 * 3600));
    p.a.send(b"late").unwrap();
    let mut d = p.out_a().remove(0);
    d.ts.as_mut().unwrap().tsval = recent.wrapping_sub(1000);
    p.deliver_b(&d);
    assert_eq!(p.stack.counters().paws_drops, 0);
    assert_eq!(p.b_read_all(), b"late");
    assert_eq!(p.b().ts_recent(), Some(recent.wrapping_sub(1000)));
}

/// PAWS in the stack's TIME-WAIT table. A retransmitted FIN with a stale TSval is an old
/// duplicate: it gets the ACK (as in Linux) but does not restart the 2MSL timer (Linux
/// restarts it; we do not let replayed segments keep an entry alive); one with a current
/// TSval restarts it (RFC 9293 §3.10.7.4). A bare ACK at RCV.NXT needs no answer unless it
/// is stale. A stale RST still closes the entry.
#[test]
fn paws_in_the_time_wait_table() {
    let mut p = establish(ts_cfg(), ts_cfg(), 1000, 5000, (0, 0));
    let tuple = xtcp_testkit::pair::tuple_b();
    p.close_b().unwrap();
    let fin_b = p.out_b();
    p.deliver_a_all(&fin_b);
    let ack = p.out_a();
    p.deliver_b_all(&ack);
    p.advance(MS);
    p.a.close(p.now).unwrap();
    let fin_a = p.out_a().remove(0);
    p.deliver_b(&fin_a);
    let last = p.out_b();
    assert_eq!(keys(&last), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.b_state(), State::TimeWait);
    let expiry = |p: &Pair| {
        p.stack
            .time_wait_table()
            .get(&tuple)
            .unwrap()
            .expiry_millis()
    };
    let first = expiry(&p);

    p.advance(Duration::from_secs(10));
    p.deliver_b(&aged(&fin_a, 1 << 20));
    assert_eq!(keys(&p.out_b()), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.stack.counters().paws_drops, 1);
    assert_eq!(p.stack.counters().time_wait_fin_acks, 0);
    assert_eq!(expiry(&p), first, "a stale FIN does not restart 2MSL");

    let mut bare = fin_a.clone();
    bare.control = TcpControl::None;
    bare.seq += 1;
    p.deliver_b(&bare);
    assert!(p.out_b().is_empty(), "a current bare ACK needs no answer");
    p.deliver_b(&aged(&bare, 1 << 20));
    assert_eq!(keys(&p.out_b()), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.stack.counters().paws_drops, 2);

    p.deliver_b(&fin_a);
    assert_eq!(keys(&p.out_b()), [k(".", 5002, Some(1002), 0)]);
    assert_eq!(p.stack.counters().time_wait_fin_acks, 1);
    assert_eq!(expiry(&p), first + 10_000, "a current FIN restarts 2MSL");

    let rst = Seg {
        control: TcpControl::Rst,
        ack: None,
        ..aged(&bare, 1 << 20)
    };
    p.deliver_b(&rst);
    assert!(p.stack.time_wait_table().get(&tuple).is_none());
    assert_eq!(p.stack.counters().paws_drops, 2);
}

// ============================================================ keepalive

#[test]
fn keepalive_ends_a_silent_peer_with_timed_out() {
    let ka = Keepalive {
        idle: Duration::from_secs(10),
        interval: Duration::from_secs(1),
        probes: 3,
    };
    let cfg = TcpConfig {
        keepalive: Some(ka),
        ..plain()
    };
    let mut p = pair(cfg, plain());
    let t0 = p.now;
    assert_eq!(p.a.poll_at(), Some(t0 + ka.idle));
    // First an answering peer: the probe (SEQ = SND.NXT - 1, no data) draws an ACK, which
    // restarts the idle timer.
    p.at(t0 + ka.idle);
    let probe = p.out_a();
    assert_eq!(
        keys(&probe),
        [k(".", p.a_seq(0).wrapping_sub(1), Some(p.b_seq(0)), 0)]
    );
    p.deliver_b(&probe[0]);
    let reply = p.out_b();
    assert_eq!(keys(&reply), [k(".", p.b_seq(0), Some(p.a_seq(0)), 0)]);
    p.deliver_a(&reply[0]);
    let t1 = p.now;
    assert_eq!(p.a.poll_at(), Some(t1 + ka.idle));
    // Now the peer goes silent: three probes one interval apart, then the connection ends.
    for i in 0..3u64 {
        p.at(t1 + ka.idle + ka.interval * i as u32);
        assert_eq!(
            keys(&p.out_a()),
            [k(".", p.a_seq(0).wrapping_sub(1), Some(p.b_seq(0)), 0)],
            "probe {i}"
        );
    }
    assert_eq!(p.a.stats().keepalive_probes, 4);
    p.at(t1 + ka.idle + ka.interval * 3);
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(keys(&p.out_a()), [k("R", p.a_seq(0), None, 0)]);
    assert_eq!(events(&mut p.a), [Event::TimedOut, Event::Closed]);
    // Off by default: B never probes.
    assert_eq!(p.b().keepalive_at(), None);
}

// ============================================================ delayed and quick ACKs

#[test]
fn quick_acks_at_connection_start_then_delayed_acks() {
    let cfg_b = TcpConfig {
        quick_acks: 2,
        ..plain()
    };
    let mut p = pair(plain(), cfg_b);
    p.a.send(&data(1000)).unwrap();
    let s0 = p.out_a();
    p.deliver_b(&s0[0]);
    assert_eq!(p.out_b().len(), 1, "quick ACK 1");
    p.a.send(&data(1000)).unwrap();
    let s1 = p.out_a();
    p.deliver_b(&s1[0]);
    assert_eq!(p.out_b().len(), 1, "quick ACK 2");
    p.a.send(&data(1000)).unwrap();
    let s2 = p.out_a();
    p.deliver_b(&s2[0]);
    assert!(p.out_b().is_empty(), "quick ACKs used up: delayed");
    assert_eq!(p.b().delayed_ack_at(), Some(p.now + 40 * MS));
}

#[test]
fn delayed_ack_fires_at_its_deadline_and_is_skipped_when_data_piggybacks() {
    let cfg_b = TcpConfig {
        quick_acks: 0,
        ..plain()
    };
    let mut p = pair(plain(), cfg_b);
    let t0 = p.now;
    // One full segment: no ACK yet, one due 40 ms later.
    p.a.send(&data(1000)).unwrap();
    let s = p.out_a();
    p.deliver_b(&s[0]);
    assert!(p.out_b().is_empty());
    assert_eq!(p.b().poll_at(), Some(t0 + 40 * MS));
    p.at(Instant::from_micros((t0 + 40 * MS).total_micros() - 1));
    assert!(p.out_b().is_empty());
    p.at(t0 + 40 * MS);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(0), Some(p.a_seq(1000)), 0)]
    );
    assert_eq!(p.b().stats().delayed_acks, 1);
    // Two full segments: the second is acknowledged at once (RFC 5681 §4.2).
    p.a.send(&data(2000)).unwrap();
    let s = p.out_a();
    p.deliver_b(&s[0]);
    assert!(p.out_b().is_empty());
    p.deliver_b(&s[1]);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(0), Some(p.a_seq(3000)), 0)]
    );
    assert_eq!(p.b().delayed_ack_at(), None);
    // One segment, then B's application answers before the deadline: the ACK rides on the
    // data and no separate ACK follows.
    p.a.send(&data(1000)).unwrap();
    let s = p.out_a();
    let t1 = p.now;
    p.deliver_b(&s[0]);
    assert!(p.out_b().is_empty());
    p.at(t1 + 10 * MS);
    p.b_send(b"response");
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(0), Some(p.a_seq(4000)), 8)]
    );
    assert_eq!(p.b().delayed_ack_at(), None);
    p.at(t1 + 40 * MS);
    assert!(p.out_b().is_empty(), "nothing left to acknowledge");
    assert_eq!(p.b().stats().delayed_acks, 1);
    // Out-of-order data and the segment that fills the hole are acknowledged at once.
    p.a.send(&data(2000)).unwrap();
    let s = p.out_a();
    p.deliver_b(&s[1]);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(8), Some(p.a_seq(4000)), 0)]
    );
    p.deliver_b(&s[0]);
    assert_eq!(
        keys(&p.out_b()),
        [k(".", p.b_seq(8), Some(p.a_seq(6000)), 0)]
    );
}

// ============================================================ Nagle and congestion choice

#[test]
fn nagle_holds_small_segments_while_data_is_unacknowledged() {
    let nagle = TcpConfig {
        nagle: true,
        ..plain()
    };
    let mut p = pair(nagle, plain());
    p.a.send(b"a").unwrap();
    let first = p.out_a();
    assert_eq!(keys(&first), [k(".", p.a_seq(0), Some(p.b_seq(0)), 1)]);
    p.a.send(b"b").unwrap();
    p.a.send(b"c").unwrap();
    assert!(
        p.out_a().is_empty(),
        "held until the first byte is acknowledged"
    );
    p.deliver_b(&first[0]);
    let ack = p.out_b();
    p.deliver_a(&ack[0]);
    let held = p.out_a();
    assert_eq!(
        keys(&held),
        [k(".", p.a_seq(1), Some(p.b_seq(0)), 2)],
        "the held bytes leave together"
    );
    p.deliver_b(&held[0]);
    p.pump();
    assert_eq!(p.b_read_all(), b"abc");
    // Default (Nagle off): every small write goes out at once.
    let mut p = pair(plain(), plain());
    p.a.send(b"a").unwrap();
    assert_eq!(p.out_a().len(), 1);
    p.a.send(b"b").unwrap();
    assert_eq!(keys(&p.out_a()), [k(".", p.a_seq(1), Some(p.b_seq(0)), 1)]);
}

#[test]
fn congestion_control_is_chosen_per_connection_and_cubic_by_default() {
    let mut p = pair(plain(), plain());
    assert_eq!(
        p.a.congestion_control().algorithm(),
        CongestionAlgorithm::Cubic
    );
    // RFC 6928 initial window: 10 segments of 1000 bytes.
    assert_eq!(p.a.cwnd(), 10_000);
    p.a.set_congestion_algorithm(CongestionAlgorithm::NewReno);
    assert_eq!(
        p.a.congestion_control().algorithm(),
        CongestionAlgorithm::NewReno
    );
    assert_eq!(p.a.cwnd(), 10_000);
    assert_eq!(
        p.b().congestion_control().algorithm(),
        CongestionAlgorithm::Cubic
    );
    // A lost SYN means an initial window of one segment (RFC 5681 §3.1).
    let mut p = Pair::new(plain(), plain());
    let _lost = p.out_a();
    p.advance(Duration::from_secs(1));
    let syn = p.out_a();
    p.deliver_b(&syn[0]);
    let synack = p.out_b();
    p.deliver_a(&synack[0]);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(p.a.cwnd(), 1000);
}
