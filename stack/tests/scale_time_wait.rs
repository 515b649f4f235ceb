//! Ten million TIME-WAIT entries in one stack: memory, exact 2MSL expiry of every entry, a
//! retransmitted FIN re-ACKed from the compact table, and the table-full policy.
//!
//! Alone in its test binary so that the RSS it measures (`/proc/self/statm`) is its own.
//! A hundred entries come from real connections the server closed first (crafted clients);
//! the rest are put in through `Stack::insert_time_wait`, one per microsecond of virtual
//! time, and handled by the stack like any other (the retransmitted FIN goes through
//! `Stack::poll`).

use std::net::SocketAddrV4;
use std::time::Instant as WallInstant;

use xtcp::stack::StackConfig;
use xtcp::tcp::FourTuple;
use xtcp::tcp::time_wait::{DEFAULT_CAPACITY, TimeWaitInit};
use xtcp::time::{Duration, Instant};
use xtcp::wire::{Ipv4Addr, SeqNumber, TcpControl, TcpRepr, TcpTimestamp};
use xtcp_testkit::rig::{Client, Rig, SERVER_IP, rss_bytes, server_config, to};

const ENTRIES: usize = 10_000_000;
const REAL: usize = 100;
const PORT: u16 = 80;

/// The bulk entry `i`: its tuple and sequence numbers are functions of `i`.
fn bulk_tuple(i: u64) -> FourTuple {
    FourTuple {
        local_addr: SERVER_IP,
        remote_addr: Ipv4Addr::from(0x0c00_0000 | (i >> 14) as u32),
        local_port: PORT,
        remote_port: 20_000 + (i & 0x3fff) as u16,
    }
}
fn bulk_snd_nxt(i: u64) -> u32 {
    (i as u32).wrapping_mul(7).wrapping_add(3)
}
fn bulk_rcv_nxt(i: u64) -> u32 {
    (i as u32).wrapping_mul(13).wrapping_add(1)
}

#[test]
fn ten_million_time_wait_entries() {
    assert_eq!(
        DEFAULT_CAPACITY, ENTRIES,
        "the default capacity is what we fill"
    );
    let cfg = StackConfig {
        time_wait_capacity: ENTRIES,
        ..server_config()
    };
    let msl2 = 2 * cfg.tcp.msl;
    assert_eq!(msl2, Duration::from_secs(60));
    let mut rig = Rig::new(cfg);
    let l = rig
        .stack
        .listen(SocketAddrV4::new(SERVER_IP, PORT))
        .unwrap();
    rig.poll();
    let rss0 = rss_bytes();

    // 100 real connections, closed by the server first, at t = 1 s.
    let mut real = Vec::new();
    for k in 0..REAL as u32 {
        let mut c = Client::new(Ipv4Addr::from(0x0b00_0000 | k), 30_000, PORT, k * 1000);
        rig.inject(c.ip, &c.syn());
        let sa = to(&c, &rig.poll());
        c.take(&sa[0]);
        rig.inject(c.ip, &c.ack());
        rig.poll();
        let h = rig.stack.accept(l).unwrap();
        rig.stack.close(h).unwrap();
        let fin = to(&c, &rig.poll());
        c.take(&fin[0]);
        rig.inject(c.ip, &c.ack());
        let f = c.fin();
        rig.inject(c.ip, &f);
        assert_eq!(to(&c, &rig.poll()).len(), 1, "last ACK");
        assert!(rig.stack.in_time_wait(&c.tuple()));
        real.push(c);
    }
    while rig.stack.poll_event().is_some() {}
    let real_closed_at = rig.now;

    // The bulk, one per µs from t = 2 s (a millisecond boundary).
    let base = Instant::from_secs(2);
    let bulk = ENTRIES - REAL;
    let t = WallInstant::now();
    for i in 0..bulk as u64 {
        let init = TimeWaitInit {
            tuple: bulk_tuple(i),
            snd_nxt: SeqNumber(bulk_snd_nxt(i)),
            rcv_nxt: SeqNumber(bulk_rcv_nxt(i)),
            ts_recent: (i % 2 == 0).then_some(i as u32),
            rcv_wnd: 512,
            rcv_wscale: 7,
        };
        rig.stack
            .insert_time_wait(base + Duration::from_micros(i), init);
    }
    let fill_time = t.elapsed();
    // The FIN and the extra entry below come 5 ms after the last bulk entry, so that they
    // expire after all of the bulk.
    rig.now = Instant::from_millis(base.total_millis() + (bulk as u64).div_ceil(1000) + 5);
    rig.poll();
    let rss1 = rss_bytes();
    let growth = rss1.saturating_sub(rss0);
    let c = rig.stack.counters();
    println!(
        "{ENTRIES} TIME-WAIT entries: RSS growth {:.1} MB ({:.1} bytes/entry), table reserves {:.1} MB, filled in {fill_time:?}",
        growth as f64 / 1e6,
        growth as f64 / ENTRIES as f64,
        rig.stack.time_wait_table().memory_bytes() as f64 / 1e6,
    );
    assert_eq!(c.time_wait as usize, ENTRIES);
    assert_eq!(c.time_wait_inserts as usize, ENTRIES);
    assert_eq!(c.time_wait_table_full, 0);
    // 40.4 bytes per entry reserved (docs/performance.md); RSS follows what is used.
    assert!(growth <= 405_000_000, "RSS grew by {growth} bytes");

    // A retransmitted FIN for bulk entry k (with timestamps: even k) is re-ACKed exactly,
    // and its 2MSL restarts.
    let k = 4_000_000u64;
    let tuple = bulk_tuple(k);
    let fin_at = rig.now;
    let fin = TcpRepr {
        src_port: tuple.remote_port,
        dst_port: PORT,
        control: TcpControl::Fin,
        seq_number: SeqNumber(bulk_rcv_nxt(k).wrapping_sub(1)),
        ack_number: Some(SeqNumber(bulk_snd_nxt(k))),
        window_len: 1000,
        timestamp: Some(TcpTimestamp {
            tsval: k as u32 + 10,
            tsecr: 0,
        }),
        ..TcpRepr::default()
    };
    rig.inject(tuple.remote_addr, &fin);
    let out = rig.poll();
    assert_eq!(out.len(), 1, "{out:?}");
    let ack = out[0].clone();
    assert_eq!(
        (ack.dst, ack.dst_port),
        (tuple.remote_addr.into(), tuple.remote_port)
    );
    assert_eq!(ack.control, TcpControl::None);
    assert_eq!(ack.seq, bulk_snd_nxt(k), "SEQ = our SND.NXT");
    assert_eq!(
        ack.ack,
        Some(bulk_rcv_nxt(k)),
        "ACK = RCV.NXT, past the FIN"
    );
    assert_eq!(ack.window, 512);
    assert_eq!(ack.ts.map(|t| t.tsecr), Some(k as u32), "echoes TS.Recent");
    assert_eq!(rig.stack.counters().time_wait_fin_acks, 1);
    // A restart is a new stay at the tail: with the table full it evicts the oldest entry
    // (the first real connection), like any insert.
    assert!(!rig.stack.in_time_wait(&real[0].tuple()), "oldest evicted");
    assert_eq!(rig.stack.counters().time_wait_table_full, 1);

    // Table full: one more entry evicts the oldest (now the second real connection).
    let extra = bulk_tuple(bulk as u64 + 1);
    rig.stack.insert_time_wait(
        rig.now,
        TimeWaitInit {
            tuple: extra,
            snd_nxt: SeqNumber(1),
            rcv_nxt: SeqNumber(1),
            ts_recent: None,
            rcv_wnd: 512,
            rcv_wscale: 7,
        },
    );
    let extra_at = rig.now;
    assert!(!rig.stack.in_time_wait(&real[1].tuple()), "oldest evicted");
    assert!(rig.stack.in_time_wait(&real[2].tuple()));
    assert_eq!(rig.stack.counters().time_wait_table_full, 2);
    assert_eq!(rig.stack.counters().time_wait as usize, ENTRIES - 1);

    // Expiry. The real ones leave at exactly 2MSL after their close.
    let real_expiry = real_closed_at + msl2;
    rig.run_until(Instant::from_micros(real_expiry.total_micros() - 1));
    assert!(real[2..].iter().all(|c| rig.stack.in_time_wait(&c.tuple())));
    rig.run_until(real_expiry);
    assert!(real.iter().all(|c| !rig.stack.in_time_wait(&c.tuple())));
    assert_eq!(
        rig.stack.counters().time_wait as usize,
        ENTRIES - 1 - (REAL - 2)
    );

    // Bulk entry i was put in at base + i µs: it lives until base + i µs + 60 s, rounded up
    // to the table's millisecond. Every millisecond, exactly the entries due are gone.
    let t = WallInstant::now();
    let first_ms = (base + msl2).total_millis();
    let last_ms = first_ms + (bulk as u64).div_ceil(1000);
    for ms in first_ms..=last_ms {
        rig.run_until(Instant::from_millis(ms));
        let d = ms - first_ms;
        // Entries i with ceil(i / 1000) <= d are gone: i <= 1000 d.
        let mut expired = (1000 * d + 1).min(bulk as u64);
        if k <= 1000 * d {
            expired -= 1; // restarted: it lives on
        }
        let expected = bulk as u64 - expired + 1 /* extra */;
        assert_eq!(
            rig.stack.counters().time_wait,
            expected,
            "at {ms} ms ({d} ms after the first bulk expiry)"
        );
    }
    // Spot checks at the exact boundary of one entry.
    let probe = 7_654_321u64;
    assert!(!rig.stack.in_time_wait(&bulk_tuple(probe)));
    // The restarted entry and the extra one expire 2MSL after their own times.
    assert!(rig.stack.in_time_wait(&tuple));
    rig.run_until(Instant::from_micros((fin_at + msl2).total_micros() - 1000));
    assert!(rig.stack.in_time_wait(&tuple));
    rig.run_until(fin_at + msl2);
    assert!(!rig.stack.in_time_wait(&tuple));
    rig.run_until(extra_at + msl2);
    assert_eq!(rig.stack.counters().time_wait, 0);
    let c = rig.stack.counters();
    // Every entry ever (10 M + the extra one) expired, but the two evicted.
    assert_eq!(c.time_wait_expiries as usize, ENTRIES + 1 - 2);
    assert_eq!(c.time_wait_table_full, 2);
    println!(
        "expired {ENTRIES} entries over 10 s of virtual time in {:?}",
        t.elapsed()
    );
}

#[test]
fn one_bulk_entry_expires_exactly_at_its_millisecond() {
    // The per-millisecond count above implies it for all; this shows it for one, to the µs.
    let mut rig = Rig::new(StackConfig {
        time_wait_capacity: 1024,
        ..server_config()
    });
    let tuple = bulk_tuple(1);
    let at = Instant::from_micros(5_000_250);
    rig.stack.insert_time_wait(
        at,
        TimeWaitInit {
            tuple,
            snd_nxt: SeqNumber(1),
            rcv_nxt: SeqNumber(2),
            ts_recent: None,
            rcv_wnd: 100,
            rcv_wscale: 0,
        },
    );
    // 60 s later, rounded up to the millisecond: 65.001 s.
    rig.run_until(Instant::from_micros(65_000_999));
    assert!(rig.stack.in_time_wait(&tuple));
    assert_eq!(rig.stack.poll_at(), Some(Instant::from_millis(65_001)));
    rig.run_until(Instant::from_millis(65_001));
    assert!(!rig.stack.in_time_wait(&tuple));
}
