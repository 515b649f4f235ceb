//! Unit tests of the stack that need its internals (the parked SYNs).

use super::*;
use crate::link::memory::{MemoryLink, MemoryLinkConfig};
use crate::tcp::Event;
use crate::tcp::time_wait::TimeWaitInit;
use crate::wire::{TcpControl, TcpTimestamp, emit_tcp_frame};
use std::net::SocketAddrV4;

const MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn tuple(port: u16) -> FourTuple {
    FourTuple {
        local_addr: IP,
        remote_addr: Ipv4Addr::new(10, 0, 0, 2),
        local_port: 80,
        remote_port: port,
    }
}

fn frame(port: u16, control: TcpControl, seq: u32, ack: Option<u32>, tsval: u32) -> Vec<u8> {
    let repr = TcpRepr {
        src_port: port,
        dst_port: 80,
        control,
        seq_number: SeqNumber(seq),
        ack_number: ack.map(SeqNumber),
        window_len: 1000,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        timestamp: Some(TcpTimestamp { tsval, tsecr: 0 }),
        ..TcpRepr::default()
    };
    let mut buf = vec![0u8; 128];
    let t = tuple(port);
    let len = emit_tcp_frame(&mut buf, PEER_MAC, MAC, t.remote_addr, IP, &repr).unwrap();
    buf.truncate(len);
    buf
}

/// A stack with a listener, a live connection on port 5000 and TIME-WAIT entries for
/// ports 6000..6004 (RCV.NXT 1000, TS.Recent 500).
fn stack(now: Instant) -> (Stack, MemoryLink) {
    stack_with_time_wait(now, true)
}

/// [`stack`], with the TIME-WAIT entries or without (then nothing is ever parked).
fn stack_with_time_wait(now: Instant, time_wait: bool) -> (Stack, MemoryLink) {
    let cfg = StackConfig {
        mac: MAC,
        ips: vec![IP],
        syn_backlog: 3,
        arp: false,
        ..StackConfig::default()
    };
    let mut s = Stack::new(cfg, now);
    s.add_neighbor(Ipv4Addr::new(10, 0, 0, 2), PEER_MAC);
    s.listen(SocketAddrV4::new(IP, 80)).unwrap();
    let mut link = MemoryLink::new(MemoryLinkConfig::default());
    for port in (6000..6004).filter(|_| time_wait) {
        s.insert_time_wait(
            now,
            TimeWaitInit {
                tuple: tuple(port),
                snd_nxt: SeqNumber(77),
                rcv_nxt: SeqNumber(1000),
                ts_recent: Some(500),
                rcv_wnd: 100,
                rcv_wscale: 0,
            },
        );
    }
    // An established connection on port 5000.
    link.push_rx(&frame(5000, TcpControl::Syn, 10, None, 1));
    s.poll(now, &mut link);
    let mut iss = 0;
    link.drain_tx(|f| iss = crate::wire::parse_tcp_frame(f).unwrap().tcp.seq_number.0);
    link.push_rx(&frame(5000, TcpControl::None, 11, Some(iss + 1), 2));
    s.poll(now, &mut link);
    link.drain_tx(|_| {});
    assert_eq!(s.connection_count(), 1);
    (s, link)
}

/// Parked SYNs: a whole receive batch gives the same replies, in the same order, and the
/// same counters as the same frames received one per poll (where nothing is parked
/// across frames).
#[test]
fn parked_syns_match_one_frame_per_poll() {
    let now = Instant::from_secs(10);
    let batch = [
        frame(7000, TcpControl::Syn, 100, None, 600), // new tuple
        frame(6000, TcpControl::Syn, 5000, None, 600), // TIME-WAIT, newer TS: reuse
        frame(5000, TcpControl::None, 11, None, 3),   // live connection (no ACK: dropped)
        frame(7000, TcpControl::Syn, 100, None, 600), // duplicate: SYN-RECEIVED now
        frame(6001, TcpControl::Syn, 5, None, 400),   // TIME-WAIT, older TS: ACK
        frame(7001, TcpControl::Syn, 200, None, 600), // third SYN-RECEIVED entry
        frame(7002, TcpControl::Syn, 300, None, 600), // queue full: cookie
        frame(6002, TcpControl::Fin, 999, Some(78), 600), // retransmitted FIN: ACK
        frame(7000, TcpControl::Rst, 101, None, 600), // resets the entry
        frame(7003, TcpControl::Syn, 400, None, 600), // room again
        frame(6003, TcpControl::Syn, 5, None, 600),   // newer TS: reuse, parked at the end
    ];
    let (mut one, mut link1) = stack(now);
    let (mut all, mut link2) = stack(now);
    let mut out1 = Vec::new();
    for f in &batch {
        link1.push_rx(f);
        one.poll(now, &mut link1);
        link1.drain_tx(|f| out1.push(crate::wire::describe_frame(f)));
    }
    for f in &batch {
        link2.push_rx(f);
    }
    all.poll(now, &mut link2);
    let mut out2 = Vec::new();
    link2.drain_tx(|f| out2.push(crate::wire::describe_frame(f)));
    assert_eq!(out1, out2);
    assert_eq!(one.counters(), all.counters());
    let c = all.counters();
    assert_eq!(c.time_wait_reuses, 2);
    assert_eq!(c.syn_cookies_sent, 2); // 7002 and 6003 find the SYN queue full
    assert_eq!(c.time_wait_fin_acks, 1);
    assert!(all.pending_syns.is_empty());
    // Two SYN-ACKs for 7000 (the duplicate is answered as a retransmission), TIME-WAIT
    // ACKs for 6001 and 6002, SYN-ACKs for the rest.
    assert_eq!(out2.len(), 9, "{out2:#?}");
}

/// The control queue on a TX ring that runs out (`transmit_control` sends from the queue's
/// slices and empties it once): the replies that did not fit stay queued, in order, and go
/// out on the next flushes; the frames and counters are those of a roomy ring, apart from
/// `tx_no_buffer`.
#[test]
fn control_replies_survive_a_full_tx_ring() {
    let now = Instant::from_secs(10);
    let batch = [
        frame(7000, TcpControl::Syn, 100, None, 600),
        frame(6001, TcpControl::Syn, 5, None, 400), // TIME-WAIT, older TS: ACK
        frame(7001, TcpControl::Syn, 200, None, 600),
        frame(7002, TcpControl::Syn, 300, None, 600),
        frame(6002, TcpControl::Fin, 999, Some(78), 600), // TIME-WAIT FIN: ACK
        frame(7003, TcpControl::Syn, 400, None, 600),
        frame(7004, TcpControl::Syn, 500, None, 600),
    ];
    let (mut roomy, mut link1) = stack(now);
    for f in &batch {
        link1.push_rx(f);
    }
    roomy.poll(now, &mut link1);
    let mut want = Vec::new();
    link1.drain_tx(|f| want.push(crate::wire::describe_frame(f)));
    assert_eq!(want.len(), batch.len(), "{want:#?}");

    let (mut tight, _) = stack(now);
    let mut link2 = MemoryLink::new(MemoryLinkConfig {
        tx_frames: 2,
        ..MemoryLinkConfig::default()
    });
    for f in &batch {
        link2.push_rx(f);
    }
    tight.poll(now, &mut link2);
    let mut got = Vec::new();
    let mut flushes = 0;
    loop {
        let n = link2.drain_tx(|f| got.push(crate::wire::describe_frame(f)));
        if n == 0 {
            break;
        }
        tight.flush(now, &mut link2);
        flushes += 1;
    }
    assert_eq!(got, want);
    assert!(flushes >= 3, "{flushes}");
    let (r, t) = (roomy.counters(), tight.counters());
    assert_eq!(r.tx_no_buffer, 0);
    assert_eq!(t.tx_no_buffer, 3); // 7 replies through 2 frames: 2, 2, 2, 1
    assert_eq!(t.tx_frames, r.tx_frames);
    assert_eq!(tight.control.len(), 0);
}

/// A parked SYN keeps what the listener reads: a SYN with every option (and PSH, and SACK
/// blocks, which a SYN does not use) gets the same SYN-ACK, and its handshake the same
/// control block, whether it was parked (TIME-WAIT entries present) or not.
#[test]
fn a_parked_syn_keeps_its_options() {
    let now = Instant::from_secs(10);
    let syn = {
        let repr = TcpRepr {
            src_port: 7100,
            dst_port: 80,
            control: TcpControl::Syn,
            psh: true,
            seq_number: SeqNumber(4242),
            window_len: 1234,
            window_scale: Some(7),
            max_seg_size: Some(1400),
            sack_permitted: true,
            sack_ranges: [Some((SeqNumber(1), SeqNumber(2))), None, None],
            timestamp: Some(TcpTimestamp {
                tsval: 900,
                tsecr: 0,
            }),
            ..TcpRepr::default()
        };
        let mut buf = vec![0u8; 128];
        let len =
            emit_tcp_frame(&mut buf, PEER_MAC, MAC, tuple(7100).remote_addr, IP, &repr).unwrap();
        buf.truncate(len);
        buf
    };
    let mut results = Vec::new();
    for time_wait in [true, false] {
        let (mut s, mut link) = stack_with_time_wait(now, time_wait);
        link.push_rx(&syn);
        s.poll(now, &mut link);
        let mut out = Vec::new();
        let mut iss = 0;
        link.drain_tx(|f| {
            iss = crate::wire::parse_tcp_frame(f).unwrap().tcp.seq_number.0;
            out.push(crate::wire::describe_frame(f));
        });
        link.push_rx(&frame(7100, TcpControl::None, 4243, Some(iss + 1), 901));
        s.poll(now, &mut link);
        assert_eq!(s.connection_count(), 2);
        let conn = s
            .conns
            .iter()
            .filter_map(|c| c.get())
            .find(|c| c.tuple().remote_port == 7100)
            .map(|c| format!("{c:?}"))
            .expect("the handshake made a connection");
        results.push((out, conn));
    }
    assert_eq!(results[0].0.len(), 1, "{:#?}", results[0].0);
    assert_eq!(results[0], results[1]);
}

/// SYN-ACK retransmissions: the first from the FIFO (`syn_fifo.rs`), the later ones
/// (RFC 6298 §5.5 backoff) from the wheel, at the deadlines the wheel alone gave; a first
/// deadline the FIFO cannot take (full: a stale ticket behind a live one) goes to the
/// wheel and fires all the same; the entries expire after `synack_retries`.
#[test]
fn synack_retries_from_the_fifo_and_the_wheel() {
    let t0 = Instant::from_secs(10);
    let ms = Duration::from_millis;
    let cfg = StackConfig {
        mac: MAC,
        ips: vec![IP],
        max_syn_recv: 2, // a FIFO of 2 tickets
        arp: false,
        tcp: TcpConfig {
            synack_retries: 2,
            ..TcpConfig::default()
        },
        ..StackConfig::default()
    };
    let mut s = Stack::new(cfg, t0);
    s.add_neighbor(Ipv4Addr::new(10, 0, 0, 2), PEER_MAC);
    s.listen(SocketAddrV4::new(IP, 80)).unwrap();
    let mut link = MemoryLink::new(MemoryLinkConfig::default());
    // Polls at `now`; the destination ports of what the stack sent.
    let poll = |s: &mut Stack, link: &mut MemoryLink, now: Instant, rx: &[Vec<u8>]| {
        for f in rx {
            link.push_rx(f);
        }
        s.poll(now, link);
        let mut out = Vec::new();
        link.drain_tx(|f| {
            let f = crate::wire::parse_tcp_frame(f).unwrap();
            out.push((f.tcp.dst_port, f.tcp.seq_number.0));
        });
        out
    };
    let timer_of = |s: &Stack, port: u16| {
        s.syn_recv
            .iter()
            .find(|e| e.flags & SR_LIVE != 0 && e.open.tuple == tuple(port))
            .map(|e| e.timer)
    };
    // 7000 stays half-open; 7001 completes at once (its ticket goes stale behind 7000's).
    assert_eq!(
        poll(
            &mut s,
            &mut link,
            t0,
            &[frame(7000, TcpControl::Syn, 100, None, 1)]
        )
        .len(),
        1
    );
    let out = poll(
        &mut s,
        &mut link,
        t0,
        &[frame(7001, TcpControl::Syn, 200, None, 1)],
    );
    let iss = out[0].1;
    poll(
        &mut s,
        &mut link,
        t0,
        &[frame(7001, TcpControl::None, 201, Some(iss + 1), 2)],
    );
    assert_eq!(s.connection_count(), 1);
    assert!(matches!(timer_of(&s, 7000), Some(SynTimer::Fifo(_))));
    assert_eq!(s.syn_fifo.len(), 2);
    // The FIFO's deadline is exact (the wheel's is a lower bound, see `timer_wheel.rs`).
    assert_eq!(s.poll_at(), Some(t0 + ms(1000)));
    // 7002 finds the FIFO full: the wheel.
    let t1 = t0 + ms(1);
    assert_eq!(
        poll(
            &mut s,
            &mut link,
            t1,
            &[frame(7002, TcpControl::Syn, 300, None, 1)]
        )
        .len(),
        1
    );
    assert!(matches!(timer_of(&s, 7002), Some(SynTimer::Wheel(_))));

    let rto = |n: u64| ms(1000 * n);
    let mut sent = Vec::new();
    for now in [
        t0 + ms(999),  // nothing yet
        t0 + rto(1),   // 7000, first retransmission
        t1 + rto(1),   // 7002, first retransmission (wheel)
        t0 + ms(2999), // nothing
        t0 + rto(3),   // 7000, second (backoff 2 s)
        t1 + rto(3),   // 7002, second
        t0 + ms(6999), // nothing
        t0 + rto(7),   // 7000 expires (4 s later: retries exhausted)
        t1 + rto(7),   // 7002 expires
    ] {
        let out = poll(&mut s, &mut link, now, &[]);
        sent.push((
            now.total_millis() - t0.total_millis(),
            out.len(),
            out.first().map(|o| o.0),
        ));
    }
    assert_eq!(
        sent,
        [
            (999, 0, None),
            (1000, 1, Some(7000)),
            (1001, 1, Some(7002)),
            (2999, 0, None),
            (3000, 1, Some(7000)),
            (3001, 1, Some(7002)),
            (6999, 0, None),
            (7000, 0, None),
            (7001, 0, None),
        ]
    );
    let c = s.counters();
    assert_eq!((c.retransmits, c.syn_recv_timeouts, c.syn_recv), (4, 2, 0));
    assert!(timer_of(&s, 7000).is_none() && timer_of(&s, 7002).is_none());
}

/// Takes `stack`'s connection on port 5000 to LAST-ACK: accepted, the peer's FIN received
/// (CLOSE-WAIT), closed by the application and flushed (our FIN+ACK left in `link`).
/// Returns its handle and ISS.
fn to_last_ack(s: &mut Stack, link: &mut MemoryLink, now: Instant) -> (ConnHandle, u32) {
    let h = s
        .accept(ListenerId(0))
        .expect("the connection on port 5000");
    let iss = s.conns[h.index as usize].get().unwrap().iss().0;
    link.push_rx(&frame(5000, TcpControl::Fin, 11, Some(iss + 1), 3));
    s.receive(now, link);
    s.close(h).unwrap();
    s.flush(now, link);
    (h, iss)
}

/// A slot's deadline set by `settle` is linked into the wheel by the next receive's timer
/// stage (`link_pending_timers`), and not at all when the slot is freed first: a LAST-ACK
/// connection whose last ACK arrives in that receive never touches the wheel (its entry is
/// dropped by that receive, the deadline deferred to the settle that frees it). One whose
/// peer stays silent is linked by the next receive, and its FIN+ACK is retransmitted at the
/// RTO as before; `poll_at` reports the pending deadline exactly.
#[test]
fn slot_deadlines_are_linked_lazily() {
    let now = Instant::from_secs(10);
    for peer_acks in [true, false] {
        let (mut s, mut link) = stack(now);
        let (h, iss) = to_last_ack(&mut s, &mut link, now);
        let mut sent = Vec::new();
        link.drain_tx(|f| sent.push(crate::wire::parse_tcp_frame(f).unwrap().tcp.control));
        assert_eq!(sent, [TcpControl::Fin]);
        assert_eq!(s.state(h), Some(State::LastAck));
        let meta = s.meta[h.index as usize];
        assert!(meta.has(SM_TIMER_PENDING) && meta.timer.is_none());
        assert_eq!(s.wheel.len(), 0);
        // The FIN's retransmission deadline: the initial RTO (1 s).
        let rto_at = now + Duration::from_secs(1);
        assert_eq!(meta.timer_deadline(), Some(rto_at));
        assert_eq!(s.poll_at(), Some(rto_at));
        let later = now + Duration::from_millis(5);
        if peer_acks {
            link.push_rx(&frame(5000, TcpControl::None, 12, Some(iss + 2), 4));
            s.poll(later, &mut link);
            assert_eq!(s.connection_count(), 0);
            assert_eq!(s.wheel.len(), 0, "the deadline was never linked");
            // Its entry was dropped by that timer stage already (deferred to the settle that
            // freed the slot), not left for the next one.
            assert!(s.timers_pending.is_empty());
            s.poll(later, &mut link);
            assert!(s.timers_pending.is_empty());
            // Only the TIME-WAIT entries of `stack` are left (2 × MSL).
            assert_eq!(s.poll_at(), Some(now + Duration::from_secs(60)));
        } else {
            s.poll(later, &mut link);
            let meta = s.meta[h.index as usize];
            assert!(!meta.has(SM_TIMER_PENDING) && meta.timer.is_some());
            assert_eq!(s.wheel.len(), 1);
            assert!(s.timers_pending.is_empty());
            // Linked: the wheel's deadline, exact or (beyond its 256-tick window, as here)
            // the start of the deadline's slot.
            let wake = s.poll_at().unwrap();
            assert!(wake > later && wake <= rto_at, "{wake:?}");
            s.poll(now + Duration::from_millis(999), &mut link);
            link.drain_tx(|_| panic!("nothing is due before the RTO"));
            s.poll(rto_at, &mut link);
            let mut sent = Vec::new();
            link.drain_tx(|f| sent.push(crate::wire::parse_tcp_frame(f).unwrap().tcp.control));
            assert_eq!(
                sent,
                [TcpControl::Fin],
                "the FIN+ACK retransmitted at the RTO"
            );
            assert_eq!(s.counters().retransmits, 1);
        }
    }
}

/// A deadline `link_pending_timers` deferred to the coming `settle` (the slot is dirty) is
/// queued again when another receive comes before that settle (here `dispatch` stopped on
/// a full TX ring): a LAST-ACK connection's RTO fires in that receive, as with a roomy ring.
#[test]
fn deferred_deadline_fires_before_its_settle() {
    let now = Instant::from_secs(10);
    for tx_frames in [64, 1] {
        let (mut s, _) = stack(now);
        let mut link = MemoryLink::new(MemoryLinkConfig {
            tx_frames,
            ..MemoryLinkConfig::default()
        });
        let (h, iss) = to_last_ack(&mut s, &mut link, now);
        link.drain_tx(|_| {});
        assert_eq!(s.state(h), Some(State::LastAck));
        let rto_at = now + Duration::from_secs(1);
        // A duplicate of the peer's FIN (the slot is dirty, not freed) and two SYNs whose
        // SYN-ACKs fill a one-frame ring before the slot is settled.
        link.push_rx(&frame(5000, TcpControl::Fin, 11, Some(iss + 1), 4));
        link.push_rx(&frame(7000, TcpControl::Syn, 100, None, 600));
        link.push_rx(&frame(7001, TcpControl::Syn, 200, None, 600));
        s.poll(now + Duration::from_millis(5), &mut link);
        let meta = s.meta[h.index as usize];
        if tx_frames == 1 {
            assert!(s.counters().tx_no_buffer > 0);
            assert!(meta.has(SM_DIRTY) && meta.has(SM_TIMER_DEFERRED));
        } else {
            assert!(!meta.has(SM_DIRTY) && meta.has(SM_TIMER_PENDING));
            assert_eq!(meta.timer_deadline(), Some(rto_at));
        }
        // The RTO is due: it fires in this receive, ring full or not (the flushes below
        // run no timers).
        s.receive(rto_at, &mut link);
        let mut fins = 0;
        loop {
            let n = link.drain_tx(|f| {
                let seg = crate::wire::parse_tcp_frame(f).unwrap();
                fins += usize::from(seg.tcp.dst_port == 5000 && seg.tcp.control == TcpControl::Fin);
            });
            s.flush(rto_at, &mut link);
            if n == 0 {
                break;
            }
        }
        assert_eq!(fins, 1, "the FIN+ACK retransmitted ({tx_frames})");
        assert_eq!(s.counters().retransmits, 1, "{tx_frames}");
        assert!(!s.meta[h.index as usize].has(SM_TIMER_DEFERRED));
    }
}

/// `Stack::close`'s CLOSE-WAIT shortcut leaves the stack as `close_general` does: the
/// connection, its slot's metadata, the dirty list, the orphan list and the counters, with
/// the slot dirty or not, the orphan limit reached or not, unread data (no shortcut) or not,
/// and for a second close.
#[test]
fn close_shortcut_matches_close_general() {
    let now = Instant::from_secs(10);
    let mut taken = 0;
    for payload in [&b""[..], &b"abc"[..]] {
        for flushed in [false, true] {
            for max_orphans in [0, 1, 65_536] {
                let mut runs = Vec::new();
                for general in [false, true] {
                    let (mut s, mut link) = stack(now);
                    s.cfg.max_orphans = max_orphans;
                    let h = s.accept(ListenerId(0)).unwrap();
                    let iss = s.conns[h.index as usize].get().unwrap().iss().0;
                    let repr = TcpRepr {
                        src_port: 5000,
                        dst_port: 80,
                        control: TcpControl::Fin,
                        seq_number: SeqNumber(11),
                        ack_number: Some(SeqNumber(iss + 1)),
                        window_len: 1000,
                        timestamp: Some(TcpTimestamp { tsval: 3, tsecr: 0 }),
                        payload,
                        ..TcpRepr::default()
                    };
                    let mut buf = vec![0u8; 128];
                    let t = tuple(5000);
                    let len =
                        emit_tcp_frame(&mut buf, PEER_MAC, MAC, t.remote_addr, IP, &repr).unwrap();
                    link.push_rx(&buf[..len]);
                    s.receive(now, &mut link);
                    if flushed {
                        s.flush(now, &mut link);
                    }
                    let conn = s.conns[h.index as usize].get().unwrap();
                    if !general && conn.state() == State::CloseWait && conn.recv_queue() == 0 {
                        taken += 1;
                    }
                    let mut results = Vec::new();
                    for _ in 0..2 {
                        results.push(if general {
                            s.close_general(h)
                        } else {
                            s.close(h)
                        });
                    }
                    let i = h.index as usize;
                    runs.push(format!(
                        "{results:?} {:?} {:?} {:?} {:?} {:?} {:?}",
                        s.conns[i].get(),
                        s.meta[i],
                        s.dirty,
                        (s.orphans.head, s.orphans.tail),
                        (s.orphans.links[i].prev, s.orphans.links[i].next),
                        s.counters(),
                    ));
                }
                assert_eq!(runs[0], runs[1], "{payload:?} {flushed} {max_orphans}");
            }
        }
    }
    assert_eq!(taken, 6);
}

/// The application's event queue is first in, first out like the `VecDeque` it replaced,
/// through growth (nothing read), compaction (some read before the vector is full) and
/// emptying (read to the end).
#[test]
fn event_queue_is_fifo() {
    let mut q = api::EventQueue::with_capacity(4);
    let mut model = std::collections::VecDeque::new();
    let events = [
        Event::Connected,
        Event::Readable,
        Event::PeerClosed,
        Event::Closed,
    ];
    let mut n = 0u32;
    for round in 0..200u32 {
        for _ in 0..(round % 7) {
            let e = (
                ConnHandle {
                    index: n,
                    generation: n / 3,
                },
                events[(n % 4) as usize],
            );
            q.push(e);
            model.push_back(e);
            n += 1;
        }
        for _ in 0..(round % 5) {
            assert_eq!(q.pop(), model.pop_front());
        }
        assert_eq!(q.len(), model.len());
    }
    while let Some(e) = model.pop_front() {
        assert_eq!(q.pop(), Some(e));
    }
    assert_eq!(q.pop(), None);
    assert!(n > 500);
}

/// A reader that keeps the queue near full (one read, one push) does not make it grow
/// without bound: its vector stays within four times its largest length.
#[test]
fn fifo_kept_near_full_stays_bounded() {
    let mut q = api::Fifo::<u32>::with_capacity(64);
    for i in 0..64 {
        q.push(i);
    }
    for i in 64..100_000u32 {
        assert_eq!(q.pop(), Some(i - 64));
        q.push(i);
        assert_eq!(q.len(), 64);
    }
    assert!(q.capacity() <= 4 * 64, "capacity {}", q.capacity());
}

/// `collect_events` moves events only while an accepted slot is on the dirty list
/// (`dirty_flags`): an accepted connection's events still reach `poll_event` right after
/// the receive that raised them, before any flush, whether its slot went on the list
/// accepted (demux) or was accepted while on it (`accept`); one not accepted keeps its
/// events until `accept`.
#[test]
fn accepted_events_are_collected_before_flush() {
    let now = Instant::from_secs(10);
    let iss_of = |s: &Stack| s.conns.iter().find_map(|c| c.get()).unwrap().iss().0;
    // Accepted while on the list: the peer's FIN first (not accepted: kept), then
    // `accept`, then the peer's RST in another receive, with no flush between.
    let (mut s, mut link) = stack_with_time_wait(now, false);
    let iss = iss_of(&s);
    link.push_rx(&frame(5000, TcpControl::Fin, 11, Some(iss + 1), 3));
    s.receive(now, &mut link);
    assert_eq!(
        s.dirty_flags & SM_ACCEPTED,
        0,
        "no accepted slot: nothing to collect"
    );
    assert_eq!(
        s.poll_event(),
        None,
        "not accepted: the events wait for accept"
    );
    let h = s.accept(ListenerId(0)).unwrap();
    assert_eq!(s.poll_event(), Some((h, Event::Connected)));
    assert_eq!(s.poll_event(), Some((h, Event::PeerClosed)));
    assert_eq!(s.poll_event(), None);
    link.push_rx(&frame(5000, TcpControl::Rst, 12, None, 4));
    s.receive(now, &mut link);
    assert_eq!(s.poll_event(), Some((h, Event::Reset)));
    assert_eq!(s.poll_event(), Some((h, Event::Closed)));
    assert_eq!(s.poll_event(), None);
    // Accepted before: a complete flush empties the list (and `dirty_flags`); the FIN puts
    // the accepted slot on it again.
    let (mut s, mut link) = stack_with_time_wait(now, false);
    let iss = iss_of(&s);
    let h = s.accept(ListenerId(0)).unwrap();
    assert_eq!(s.poll_event(), Some((h, Event::Connected)));
    s.flush(now, &mut link);
    assert!(s.dirty.is_empty());
    assert_eq!(s.dirty_flags, 0);
    link.push_rx(&frame(5000, TcpControl::Fin, 11, Some(iss + 1), 3));
    s.receive(now, &mut link);
    assert_eq!(s.poll_event(), Some((h, Event::PeerClosed)));
    assert_eq!(s.poll_event(), None);
}

/// A dispatch that runs out of TX frames partway through the dirty list keeps the slot it
/// stopped at and those after it dirty, in order, and no other: the FINs of four connections
/// through a one-frame ring leave one per flush, in the order and with the counters of a
/// roomy ring.
#[test]
fn dispatch_stopped_by_a_full_ring_keeps_the_rest_dirty() {
    let now = Instant::from_secs(10);
    let ports = [5001, 5002, 5003];
    let run = |tx_frames: usize| {
        let (mut s, _) = stack_with_time_wait(now, false);
        let mut link = MemoryLink::new(MemoryLinkConfig {
            tx_frames,
            ..MemoryLinkConfig::default()
        });
        // Three more connections, established and the peer's FIN received; all four
        // accepted (each goes on the dirty list) and closed.
        let mut handles = Vec::new();
        for port in ports {
            link.push_rx(&frame(port, TcpControl::Syn, 10, None, 1));
            s.poll(now, &mut link);
            let mut iss = 0;
            link.drain_tx(|f| iss = crate::wire::parse_tcp_frame(f).unwrap().tcp.seq_number.0);
            link.push_rx(&frame(port, TcpControl::None, 11, Some(iss + 1), 2));
            link.push_rx(&frame(port, TcpControl::Fin, 11, Some(iss + 1), 3));
            s.poll(now, &mut link);
            link.drain_tx(|_| {});
        }
        while let Some(h) = s.accept(ListenerId(0)) {
            handles.push(h);
        }
        for &h in &handles {
            s.close(h).unwrap();
        }
        let dirty_before = s.dirty.clone();
        assert_eq!(dirty_before.len(), 4);
        let mut fins = Vec::new();
        let mut left = Vec::new();
        loop {
            s.flush(now, &mut link);
            left.push(s.dirty.clone());
            let n = link.drain_tx(|f| {
                let seg = crate::wire::parse_tcp_frame(f).unwrap();
                assert_eq!(seg.tcp.control, TcpControl::Fin);
                fins.push(seg.tcp.dst_port);
            });
            if n == 0 {
                break;
            }
        }
        (dirty_before, fins, left, s.counters().tx_no_buffer)
    };
    let (dirty, fins, left, no_buffer) = run(64);
    assert_eq!(fins, [5000, 5001, 5002, 5003]);
    assert!(left.iter().all(Vec::is_empty));
    assert_eq!(no_buffer, 0);
    let (tight_dirty, tight_fins, tight_left, tight_no_buffer) = run(1);
    assert_eq!(tight_dirty, dirty);
    assert_eq!(tight_fins, fins);
    // Each stop keeps the slot it could not send for, and those after it.
    assert_eq!(
        tight_left,
        [
            dirty[1..].to_vec(),
            dirty[2..].to_vec(),
            dirty[3..].to_vec(),
            vec![],
            vec![]
        ]
    );
    assert_eq!(tight_no_buffer, 3);
}

/// The control queue's use of `Fifo`: read in place (`unread`), a prefix marked read
/// (`consume`, a dispatch stopped by a full TX ring), pushes after that (compacting the read
/// items away when full), and `clear`: the unread items stay in order, and a queue whose
/// reader keeps stopping partway stays bounded.
#[test]
fn fifo_read_in_place_keeps_order() {
    let mut q = api::Fifo::<u32>::with_capacity(8);
    let mut next = 0u32;
    let mut first = 0u32;
    for round in 0..10_000 {
        while q.len() < 6 {
            q.push(next);
            next += 1;
        }
        let want: Vec<u32> = (first..next).collect();
        assert_eq!(q.unread(), &want[..], "round {round}");
        let n = round % 4;
        q.consume(n);
        first += n as u32;
        assert_eq!(q.len(), (next - first) as usize);
    }
    assert!(q.capacity() <= 4 * 8, "capacity {}", q.capacity());
    q.clear();
    assert_eq!((q.len(), q.unread()), (0, &[][..]));
    q.push(7);
    assert_eq!(q.unread(), [7]);
}

/// The SYN's common case in `listener_syn` (queue room, no cookie, no mode change) and its
/// general decision give each cookie mode's answers: five SYNs against a SYN backlog of
/// three, then two more after the queue has room again.
#[test]
fn syn_queue_and_cookie_modes() {
    let now = Instant::from_secs(1);
    for mode in [
        SynCookieMode::Off,
        SynCookieMode::WhenFull,
        SynCookieMode::Always,
    ] {
        let cfg = StackConfig {
            mac: MAC,
            ips: vec![IP],
            syn_backlog: 3,
            syn_cookies: mode,
            arp: false,
            ..StackConfig::default()
        };
        let mut s = Stack::new(cfg, now);
        s.add_neighbor(Ipv4Addr::new(10, 0, 0, 2), PEER_MAC);
        let l = s.listen(SocketAddrV4::new(IP, 80)).unwrap();
        let mut link = MemoryLink::new(MemoryLinkConfig::default());
        for port in 7000..7005 {
            link.push_rx(&frame(port, TcpControl::Syn, 10, None, 1));
        }
        s.poll(now, &mut link);
        let mut replies = 0;
        link.drain_tx(|_| replies += 1);
        let c = s.counters();
        let (queued, cookies, overflows, changes) = match mode {
            SynCookieMode::Off => (3, 0, 2, 0),
            SynCookieMode::WhenFull => (3, 2, 0, 1),
            SynCookieMode::Always => (0, 5, 0, 0),
        };
        assert_eq!(s.syn_queue_len(l), queued, "{mode:?}");
        assert_eq!(c.syns_received, 5, "{mode:?}");
        assert_eq!(c.syn_recv, queued as u64, "{mode:?}");
        assert_eq!(c.syn_cookies_sent, cookies, "{mode:?}");
        assert_eq!(c.syn_queue_overflows, overflows, "{mode:?}");
        assert_eq!(c.syn_cookie_mode_changes, changes, "{mode:?}");
        assert_eq!(replies, queued as u64 + cookies, "{mode:?}");
        // An exact RST frees one entry (RFC 9293 §3.10.7.4): the next SYN is queued (and
        // `WhenFull` notes that cookies are off), the one after it meets a full queue again.
        link.push_rx(&frame(7000, TcpControl::Rst, 11, None, 2));
        link.push_rx(&frame(7010, TcpControl::Syn, 10, None, 1));
        link.push_rx(&frame(7011, TcpControl::Syn, 10, None, 1));
        s.poll(now, &mut link);
        link.drain_tx(|_| {});
        let c = s.counters();
        let (queued, cookies, overflows, changes) = match mode {
            SynCookieMode::Off => (3, 0, 3, 0),
            SynCookieMode::WhenFull => (3, 3, 0, 3),
            SynCookieMode::Always => (0, 7, 0, 0),
        };
        assert_eq!(s.syn_queue_len(l), queued, "{mode:?} after the RST");
        assert_eq!(c.syn_cookies_sent, cookies, "{mode:?} after the RST");
        assert_eq!(c.syn_queue_overflows, overflows, "{mode:?} after the RST");
        assert_eq!(c.syn_cookie_mode_changes, changes, "{mode:?} after the RST");
    }
}
