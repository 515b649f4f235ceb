//! Tests of the TIME-WAIT table (moved out of time_wait.rs unchanged; IPv6 tests at the end).

use super::*;
use crate::time::Duration;
use core::net::Ipv4Addr;

fn tuple(i: u32) -> FourTuple {
    FourTuple {
        local_addr: Ipv4Addr::new(10, 0, 0, 1),
        remote_addr: Ipv4Addr::from_bits(0x0b00_0000 + (i >> 15)),
        local_port: 80,
        remote_port: 1024 + (i & 0x7fff) as u16,
    }
}

fn init(i: u32) -> TimeWaitInit {
    TimeWaitInit {
        tuple: tuple(i),
        snd_nxt: SeqNumber(i.wrapping_mul(3)),
        rcv_nxt: SeqNumber(i.wrapping_mul(5)),
        ts_recent: i.is_multiple_of(2).then_some(i),
        rcv_wnd: 1000,
        rcv_wscale: 7,
    }
}

const MSL2: Duration = Duration::from_secs(60);

#[test]
fn entry_is_32_bytes() {
    println!(
        "size_of::<TimeWaitEntry>() = {}",
        size_of::<TimeWaitEntry>()
    );
    assert_eq!(size_of::<TimeWaitEntry>(), 32);
    let t = TimeWaitTable::with_capacity(DEFAULT_CAPACITY, 1);
    println!("10M-entry table reserves {} bytes", t.memory_bytes());
    // 32 bytes of ring per entry, 4 + 1 bytes (bucket and tag) per index bucket: 2^24
    // buckets for 10 M entries at load <= 0.7, so 40.4 bytes per entry.
    assert_eq!(t.memory_bytes(), 32 * DEFAULT_CAPACITY + 5 * (1 << 24));
    assert!(t.memory_bytes() <= 404_000_000);
}

#[test]
fn insert_lookup_expire_in_order() {
    let mut t = TimeWaitTable::with_capacity(100, 9);
    for i in 0..10u32 {
        let now = Instant::from_millis(u64::from(i) * 10);
        assert_eq!(t.insert(now, init(i), now + MSL2), InsertOutcome::Inserted);
    }
    assert_eq!(t.len(), 10);
    let e = t.get(&tuple(4)).unwrap();
    assert_eq!(e.tuple(), tuple(4));
    assert_eq!(e.snd_nxt(), SeqNumber(12));
    assert_eq!(e.rcv_nxt(), SeqNumber(20));
    assert_eq!(e.ts_recent(), Some(4));
    assert_eq!(t.get(&tuple(5)).unwrap().ts_recent(), None);
    assert_eq!(e.rcv_wnd(), 1000);
    assert_eq!(e.rcv_wscale(), 7);
    assert!(t.get(&tuple(11)).is_none());
    assert_eq!(t.next_expiry(), Some(Instant::from_secs(60)));

    // Nothing one microsecond early.
    let mut seen = Vec::new();
    let early = Instant::from_micros(60_000_000 - 1);
    assert_eq!(t.expire(early, 100, |_| ()), 0);
    // Exactly at expiry: the first three (0, 10, 20 ms) with a budget of 3.
    let now = Instant::from_millis(60_020);
    assert_eq!(t.expire(now, 3, |e| seen.push(e.tuple())), 3);
    assert_eq!(seen, vec![tuple(0), tuple(1), tuple(2)]);
    assert_eq!(t.next_expiry(), Some(Instant::from_millis(60_030)));
    assert_eq!(
        t.expire(Instant::from_millis(60_055), 100, |e| seen.push(e.tuple())),
        3
    );
    assert_eq!(seen[3..], [tuple(3), tuple(4), tuple(5)]);
    assert!(t.get(&tuple(5)).is_none());
    assert_eq!(t.len(), 4);
    assert_eq!(t.stats().expiries, 6);

    // Sub-millisecond expiries round up, never down.
    let mut u = TimeWaitTable::with_capacity(4, 1);
    u.insert(Instant::ZERO, init(1), Instant::from_micros(1500));
    assert_eq!(u.expire(Instant::from_micros(1999), 10, |_| ()), 0);
    assert_eq!(u.next_expiry(), Some(Instant::from_millis(2)));
    assert_eq!(u.expire(Instant::from_micros(2000), 10, |_| ()), 1);
    assert_eq!(u.next_expiry(), None);
}

#[test]
fn earlier_expiry_is_clamped_not_early() {
    let mut t = TimeWaitTable::with_capacity(8, 1);
    t.insert(Instant::ZERO, init(1), Instant::from_secs(60));
    t.insert(Instant::ZERO, init(2), Instant::from_secs(30));
    assert_eq!(t.get(&tuple(2)).unwrap().expiry_millis(), 60_000);
    assert_eq!(t.expire(Instant::from_secs(30), 10, |_| ()), 0);
    assert_eq!(t.expire(Instant::from_secs(60), 10, |_| ()), 2);
}

#[test]
fn restart_moves_to_tail() {
    let mut t = TimeWaitTable::with_capacity(8, 1);
    for i in 0..3u32 {
        let now = Instant::from_secs(u64::from(i));
        t.insert(now, init(i), now + MSL2);
    }
    let mut e = *t.get(&tuple(0)).unwrap();
    assert!(t.restart(&tuple(0), Instant::from_secs(5) + MSL2));
    assert!(!t.restart(&tuple(9), Instant::from_secs(5) + MSL2));
    assert_eq!(t.stats().restarts, 1);
    assert_eq!(t.next_expiry(), Some(Instant::from_secs(61)));
    let mut order = Vec::new();
    assert_eq!(
        t.expire(Instant::from_secs(64), 10, |e| order.push(e.tuple())),
        2
    );
    assert_eq!(order, vec![tuple(1), tuple(2)]);
    assert!(t.get(&tuple(0)).is_some());
    assert_eq!(t.expire(Instant::from_millis(64_999), 10, |_| ()), 0);
    e.expiry_ms = 65_000;
    assert_eq!(t.get(&tuple(0)), Some(&e));
    assert_eq!(
        t.expire(Instant::from_secs(65), 10, |x| order.push(x.tuple())),
        1
    );
    assert!(t.is_empty());
    assert_eq!(t.next_expiry(), None);
}

#[test]
fn remove_replace_and_get_mut() {
    let mut t = TimeWaitTable::with_capacity(8, 1);
    for i in 0..4u32 {
        t.insert(
            Instant::ZERO,
            init(i),
            Instant::from_secs(u64::from(i) + 60),
        );
    }
    let removed = t.remove(&tuple(0)).unwrap();
    assert_eq!(removed.tuple(), tuple(0));
    assert!(t.remove(&tuple(0)).is_none());
    // Head trimmed past the tombstone.
    assert_eq!(t.next_expiry(), Some(Instant::from_secs(61)));
    t.remove(&tuple(2));
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.insert(Instant::ZERO, init(1), Instant::from_secs(70)),
        InsertOutcome::Replaced
    );
    assert_eq!(t.len(), 2);
    assert_eq!(t.stats().removals, 3);
    t.get_mut(&tuple(1)).unwrap().set_ts_recent(1234);
    assert_eq!(t.get(&tuple(1)).unwrap().ts_recent(), None); // odd i: no timestamps
    t.insert(Instant::ZERO, init(6), Instant::from_secs(70));
    t.get_mut(&tuple(6)).unwrap().set_ts_recent(1234);
    assert_eq!(t.get(&tuple(6)).unwrap().ts_recent(), Some(1234));
    let mut order = Vec::new();
    t.expire(Instant::from_secs(100), 10, |e| order.push(e.tuple()));
    assert_eq!(order, vec![tuple(3), tuple(1), tuple(6)]);
}

/// Random inserts, removals, restarts, evictions and expiries against a model (an
/// insertion-ordered list), with the index's tags cut to `tag_bits` so that equal tags of
/// different tuples are common.
fn model_check(tag_bits: u32, seed: u64) {
    let cap = 64;
    let mut t = TimeWaitTable::with_capacity(cap, seed);
    // Positions + 1 ≤ 64 need 7 bits; narrow the tag to `tag_bits` (test only).
    t.pos_mask = u32::MAX >> tag_bits;
    let mut model: Vec<(u32, u32)> = Vec::new(); // (tuple id, snd_nxt), oldest first
    let mut x = seed | 1;
    let mut rnd = |n: u32| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % u64::from(n)) as u32
    };
    let now = Instant::ZERO;
    let far = Instant::from_secs(1000);
    for step in 0..4000u32 {
        let id = rnd(100);
        match rnd(10) {
            0..=3 => {
                let mut i = init(id);
                i.snd_nxt = SeqNumber(step);
                t.insert(now, i, far);
                model.retain(|&(m, _)| m != id);
                model.push((id, step));
                // The ring counts tombstones too, so it may evict before the model
                // is full: follow the table's choice, which must be the model's oldest.
                while model.len() > t.len() {
                    let (old, _) = model.remove(0);
                    assert!(t.get(&tuple(old)).is_none(), "evicted {old} at {step}");
                }
            }
            4 | 5 => {
                let removed = t.remove(&tuple(id)).map(|e| e.snd_nxt().0);
                let pos = model.iter().position(|&(m, _)| m == id);
                assert_eq!(removed, pos.map(|p| model.remove(p).1), "remove {id}");
            }
            6 => {
                let restarted = t.restart(&tuple(id), far);
                let pos = model.iter().position(|&(m, _)| m == id);
                assert_eq!(restarted, pos.is_some());
                if let Some(p) = pos {
                    let e = model.remove(p);
                    model.push(e);
                }
                while model.len() > t.len() {
                    let (old, _) = model.remove(0);
                    assert!(t.get(&tuple(old)).is_none(), "evicted {old} at {step}");
                }
            }
            _ => {}
        }
        for &(m, snd) in &model {
            assert_eq!(t.get(&tuple(m)).map(|e| e.snd_nxt().0), Some(snd), "{m}");
        }
        assert_eq!(t.get(&tuple(100 + id)), None);
        assert_eq!(t.len(), model.len());
        // The probe tags follow the buckets through inserts and backward shifts: a tag
        // exactly where a bucket is used, and it is the tag of the entry there.
        for (i, (&g, &v)) in t.tags.iter().zip(&t.index).enumerate() {
            assert_eq!(g == 0, v == 0, "bucket {i} at step {step}");
            if v != 0 {
                let e = t.ring[((v & t.pos_mask) - 1) as usize].tuple;
                assert_eq!(g, t.home_and_tags(&e).2, "bucket {i} at step {step}");
            }
        }
    }
    assert!(t.stats().table_full_evictions > 0 && t.stats().restarts > 0);
    let mut order = Vec::new();
    t.expire(far, usize::MAX, |e| order.push(e.tuple()));
    let expect: Vec<_> = model.iter().map(|&(m, _)| tuple(m)).collect();
    assert_eq!(order, expect);
    assert!(t.is_empty());
    assert!(t.index.iter().all(|&v| v == 0));
    assert!(t.tags.iter().all(|&g| g == 0));
}

#[test]
fn index_tags_match_model() {
    for seed in 1..6 {
        model_check(25, seed); // the tag bits the capacity leaves
        model_check(1, seed); // one bit: half the probes see an equal tag
        model_check(0, seed); // no tag: every probe reads the ring
    }
}

#[test]
fn full_table_evicts_oldest() {
    let mut t = TimeWaitTable::with_capacity(3, 1);
    for i in 0..3u32 {
        let now = Instant::from_secs(u64::from(i));
        assert_eq!(t.insert(now, init(i), now + MSL2), InsertOutcome::Inserted);
    }
    let now = Instant::from_secs(3);
    assert_eq!(
        t.insert(now, init(3), now + MSL2),
        InsertOutcome::EvictedOldest
    );
    assert_eq!(t.len(), 3);
    assert!(t.get(&tuple(0)).is_none());
    assert!(t.get(&tuple(3)).is_some());
    assert_eq!(t.stats().table_full_evictions, 1);
    // A tombstone in the middle still occupies its ring slot until the head passes it.
    t.remove(&tuple(2));
    assert_eq!(t.len(), 2);
    let now = Instant::from_secs(4);
    assert_eq!(
        t.insert(now, init(4), now + MSL2),
        InsertOutcome::EvictedOldest
    );
    assert!(t.get(&tuple(1)).is_none());
    // ... but removing the newest frees its slot immediately.
    t.remove(&tuple(4));
    assert_eq!(t.insert(now, init(5), now + MSL2), InsertOutcome::Inserted);
    let mut order = Vec::new();
    t.expire(Instant::from_secs(1000), 10, |e| order.push(e.tuple()));
    assert_eq!(order, vec![tuple(3), tuple(5)]);
    assert_eq!(t.stats().table_full_evictions, 2);
    // Capacity one.
    let mut one = TimeWaitTable::with_capacity(1, 1);
    one.insert(Instant::ZERO, init(1), Instant::from_secs(1));
    assert_eq!(
        one.insert(Instant::ZERO, init(2), Instant::from_secs(1)),
        InsertOutcome::EvictedOldest
    );
    assert_eq!(
        one.insert(Instant::ZERO, init(2), Instant::from_secs(2)),
        InsertOutcome::Replaced
    );
    assert!(one.restart(&tuple(2), Instant::from_secs(3)));
    assert_eq!(one.len(), 1);
    assert_eq!(one.next_expiry(), Some(Instant::from_secs(3)));
}

#[test]
fn expiry_survives_u32_millisecond_wrap() {
    let mut t = TimeWaitTable::with_capacity(4, 1);
    let start = Instant::from_millis(u64::from(u32::MAX) - 10_000);
    t.insert(start, init(1), start + MSL2);
    assert_eq!(t.next_expiry(), Some(start + MSL2));
    assert_eq!(t.expire(start + Duration::from_secs(59), 10, |_| ()), 0);
    assert_eq!(t.expire(start + MSL2, 10, |_| ()), 1);
}

fn entry(rcv_nxt: u32, ts: Option<u32>) -> TimeWaitEntry {
    let mut t = TimeWaitTable::with_capacity(1, 0);
    let i = TimeWaitInit {
        rcv_nxt: SeqNumber(rcv_nxt),
        ts_recent: ts,
        ..init(1)
    };
    t.insert(Instant::ZERO, i, Instant::from_secs(60));
    *t.get(&tuple(1)).unwrap()
}

fn ts(v: u32) -> Option<TcpTimestamp> {
    Some(TcpTimestamp { tsval: v, tsecr: 0 })
}

#[test]
fn rfc6191_reuse_rules() {
    let no_ts = entry(1000, None);
    assert!(
        syn_may_reuse(&no_ts, SeqNumber(1001), None),
        "higher ISN accepted"
    );
    assert!(
        !syn_may_reuse(&no_ts, SeqNumber(999), None),
        "lower ISN rejected"
    );
    assert!(
        !syn_may_reuse(&no_ts, SeqNumber(1000), None),
        "equal ISN rejected"
    );
    // Sequence comparison is modular.
    let wrap = entry(u32::MAX - 5, None);
    assert!(syn_may_reuse(&wrap, SeqNumber(10), None));
    assert!(!syn_may_reuse(&wrap, SeqNumber(u32::MAX - 100), None));
    // New incarnation with timestamps, old without: RFC 6191 honours it.
    assert!(syn_may_reuse(&no_ts, SeqNumber(5), ts(1)));

    let with_ts = entry(1000, Some(500));
    assert!(
        syn_may_reuse(&with_ts, SeqNumber(5), ts(501)),
        "newer TS accepted"
    );
    assert!(
        !syn_may_reuse(&with_ts, SeqNumber(2000), ts(499)),
        "older TS, higher ISN"
    );
    assert!(
        !syn_may_reuse(&with_ts, SeqNumber(5), ts(500)),
        "equal TS, lower ISN"
    );
    assert!(
        syn_may_reuse(&with_ts, SeqNumber(2000), ts(500)),
        "equal TS, higher ISN"
    );
    assert!(
        syn_may_reuse(&with_ts, SeqNumber(2000), None),
        "no TS now, higher ISN"
    );
    assert!(
        !syn_may_reuse(&with_ts, SeqNumber(5), None),
        "no TS now, lower ISN"
    );
    // TSval comparison is modular too.
    let ts_wrap = entry(1000, Some(u32::MAX - 1));
    assert!(syn_may_reuse(&ts_wrap, SeqNumber(5), ts(3)));
}

/// Reads resident memory from /proc/self/statm (pages → bytes).
fn rss_bytes() -> u64 {
    let s = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = s.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

/// 10 M entries in release builds (200 K in debug): resident memory grows by at most
/// 400 MB, construction alone costs almost nothing, and every entry expires exactly at
/// its expiry on a virtual clock.
///
/// RSS is per process and other tests run in parallel threads, so the measurement runs in
/// a child process: this test binary re-executed with only this test selected.
#[test]
fn ten_million_entries_rss_and_exact_expiry() {
    const CHILD: &str = "XTCP_TIME_WAIT_RSS_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return ten_million_entries_body();
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "tcp::time_wait::tests::ten_million_entries_rss_and_exact_expiry",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "child failed");
    assert!(stdout.contains("1 passed"), "child did not run the test");
}

fn ten_million_entries_body() {
    let n: u32 = if cfg!(debug_assertions) {
        200_000
    } else {
        10_000_000
    };
    let before = rss_bytes();
    let mut t = TimeWaitTable::with_capacity(n as usize, 77);
    let after_new = rss_bytes();
    // 1000 entries per virtual millisecond.
    let at = |i: u32| Instant::from_millis(u64::from(i / 1000));
    for i in 0..n {
        let now = at(i);
        assert_eq!(t.insert(now, init(i), now + MSL2), InsertOutcome::Inserted);
    }
    let after_fill = rss_bytes();
    assert_eq!(t.len(), n as usize);
    for i in (0..n).step_by(997) {
        assert_eq!(
            t.get(&tuple(i)).unwrap().rcv_nxt(),
            SeqNumber(i.wrapping_mul(5))
        );
    }
    let mb = |b: u64| b as f64 / 1e6;
    println!(
        "TIME-WAIT n={n}: RSS +{:.1} MB after with_capacity, +{:.1} MB after filling \
         ({:.1} bytes/entry; reserved {:.1} MB)",
        mb(after_new.saturating_sub(before)),
        mb(after_fill.saturating_sub(before)),
        after_fill.saturating_sub(before) as f64 / f64::from(n),
        mb(t.memory_bytes() as u64),
    );
    assert!(after_new.saturating_sub(before) < 8_000_000);
    assert!(after_fill.saturating_sub(before) <= 405_000_000);

    // Step the virtual clock a millisecond at a time: each batch expires exactly when due.
    let mut expired = 0u32;
    let mut ms = 0u64;
    let t0 = std::time::Instant::now();
    while expired < n {
        let now = Instant::from_millis(ms) + MSL2;
        let mut fired = 0u32;
        let just_before = Instant::from_micros(now.total_micros() - 1);
        t.expire(just_before, usize::MAX, |_| fired += 1);
        assert_eq!(fired, 0, "expired early at {now:?}");
        t.expire(now, usize::MAX, |e| {
            let i = e.tuple().remote_port as u32 - 1024
                + ((e.tuple().remote_addr.to_bits() - 0x0b00_0000) << 15);
            assert_eq!(at(i) + MSL2, now);
            fired += 1;
        });
        assert_eq!(fired, 1000.min(n - expired));
        expired += fired;
        ms += 1;
    }
    println!(
        "expired {n} entries in {:.1} ns/entry",
        t0.elapsed().as_nanos() as f64 / f64::from(n)
    );
    assert!(t.is_empty());
    assert_eq!(t.stats().expiries, u64::from(n));
    assert_eq!(t.next_expiry(), None);
}

fn tuple6(i: u32) -> FourTuple<Ipv6Addr> {
    FourTuple {
        local_addr: Ipv6Addr::new(0xfd00, 0x77, 0, 0, 0, 0, 0, 1),
        remote_addr: Ipv6Addr::new(0xfd00, 0x78, 0, 0, 0, 0, (i >> 15) as u16, 7),
        local_port: 80,
        remote_port: 1024 + (i & 0x7fff) as u16,
    }
}

fn init6(i: u32) -> TimeWaitInit<Ipv6Addr> {
    let v4 = init(i);
    TimeWaitInit {
        tuple: tuple6(i),
        snd_nxt: v4.snd_nxt,
        rcv_nxt: v4.rcv_nxt,
        ts_recent: v4.ts_recent,
        rcv_wnd: v4.rcv_wnd,
        rcv_wscale: v4.rcv_wscale,
    }
}

/// The IPv6 entry: the 36-byte tuple plus the same 20 bytes of state, 56 in all (≤ 64).
#[test]
fn ipv6_entry_is_56_bytes() {
    println!(
        "size_of::<TimeWaitEntry<Ipv6Addr>>() = {}",
        size_of::<TimeWaitEntry<Ipv6Addr>>()
    );
    assert_eq!(size_of::<TimeWaitEntry<Ipv6Addr>>(), 56);
    assert_eq!(size_of::<TimeWaitEntry>(), 32);
}

/// Insert, look up, expire in order and remove over IPv6 tuples that differ only in the
/// high bits of the peer's address or in the port; RFC 6191 reuse on an IPv6 entry.
#[test]
fn ipv6_insert_lookup_expire_and_reuse() {
    let mut t = TimeWaitTable::<Ipv6Addr>::new(100, 9);
    for i in 0..100u32 {
        let at = Instant::from_millis(u64::from(i));
        let r = t.insert(at, init6(i * 40_000), at + MSL2);
        assert_eq!(r, InsertOutcome::Inserted);
    }
    assert_eq!(t.len(), 100);
    for i in 0..100u32 {
        let e = t.get(&tuple6(i * 40_000)).unwrap();
        assert_eq!(e.tuple(), tuple6(i * 40_000));
        assert_eq!(e.rcv_nxt(), SeqNumber((i * 40_000).wrapping_mul(5)));
    }
    assert!(t.get(&tuple6(1)).is_none());
    assert!(t.get(&tuple6(0).reversed()).is_none());
    // RFC 6191 on an IPv6 entry with timestamps (i = 0 has TS.Recent 0).
    let e = *t.get(&tuple6(0)).unwrap();
    let tsv = |v| Some(TcpTimestamp { tsval: v, tsecr: 0 });
    assert!(syn_may_reuse(&e, SeqNumber(0), tsv(1)));
    assert!(!syn_may_reuse(&e, SeqNumber(0), tsv(u32::MAX)));
    assert!(t.remove(&tuple6(0)).is_some());
    assert!(t.get(&tuple6(0)).is_none());
    let mut expired = Vec::new();
    t.expire(Instant::from_millis(50) + MSL2, usize::MAX, |e| {
        expired.push(e.tuple())
    });
    let want: Vec<_> = (1..=50u32).map(|i| tuple6(i * 40_000)).collect();
    assert_eq!(expired, want);
    assert_eq!(t.len(), 49);
}

/// `TwHash::from_flow`: a flow table and a TIME-WAIT table of the same seed hash every tuple
/// alike (the stack builds its two tables so and probes the second with the first's hash),
/// for both families; another seed does not.
#[test]
fn flow_hash_is_the_time_wait_hash_under_the_same_seed() {
    use crate::tcp::flow_table::FlowTable;
    let seed = 0x5a5a_1234_0f0f_9876;
    let tw = TimeWaitTable::with_capacity(1024, seed);
    let flows = FlowTable::with_capacity(1024, seed);
    let other = FlowTable::with_capacity(1024, seed ^ 1);
    let mut differ = 0;
    for i in 0..1000 {
        let t = tuple(i * 7919);
        assert_eq!(TwHash::from_flow(flows.hash_of(&t)), tw.hash_of(&t));
        differ += usize::from(TwHash::from_flow(other.hash_of(&t)) != tw.hash_of(&t));
    }
    assert_eq!(differ, 1000);
    let tw6 = TimeWaitTable::<Ipv6Addr>::new(1024, seed);
    let flows6 = FlowTable::<Ipv6Addr>::new(1024, seed);
    for i in 0..1000 {
        let t = tuple6(i * 7919);
        assert_eq!(TwHash::from_flow(flows6.hash_of(&t)), tw6.hash_of(&t));
    }
}

/// `may_hold` never says no for a tuple in the table (inserted, restarted, or found again
/// after removals shifted buckets back), and says no for most tuples that are not.
#[test]
fn may_hold_is_never_false_for_a_present_tuple() {
    let mut tw = TimeWaitTable::with_capacity(2048, 7);
    let now = Instant::from_millis(1);
    for i in 0..1400 {
        tw.insert(now, init(i), now + MSL2);
    }
    for i in (0..1400).step_by(3) {
        tw.remove(&tuple(i));
    }
    for i in (1..1400).step_by(5) {
        tw.restart(&tuple(i), now + MSL2);
    }
    let mut absent_no = 0;
    for i in 0..4000 {
        let t = tuple(i);
        let may = tw.may_hold(tw.hash_of(&t));
        if tw.get(&t).is_some() {
            assert!(may, "tuple {i} present but may_hold says no");
        } else if !may {
            absent_no += 1;
        }
    }
    // Absent tuples (2,600 + the 467 removed): nearly all end at an empty bucket.
    assert!(absent_no > 2_900, "{absent_no}");
}
