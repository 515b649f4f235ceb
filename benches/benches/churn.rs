//! Server-side connection churn over the in-memory link (issue 4's benchmarks):
//! - `lifecycle/tw_{0,1M,10M}`: SYN → SYN-ACK → ACK → FIN → FIN+ACK → ACK, 64 connections side
//!   by side per iteration, with the server's TIME-WAIT table holding 0, 1 M or 10 M entries;
//! - `lifecycle_batch1`: the same, one connection at a time;
//! - `lifecycle_cookies`: every SYN answered with a SYN cookie;
//! - `flow_lookup_1M`: a pure ACK to one of 1 M established connections (the whole
//!   per-segment path), and a bare flow-table lookup among 1 M entries;
//! - `syncookie`: cookie generation plus validation.
//!
//! Only time inside server calls is counted, as thread CPU time (see `xtcp_benches`). Throughput is
//! in lifecycles (or segments, lookups, cookies); criterion prints elements/s.
//! `XTCP_BENCH_QUICK=1` shortens every measurement (used by `scripts/bench.sh`).

use std::hint::black_box;
use std::time::Duration as WallDuration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp::stack::SynCookieMode;
use xtcp::tcp::FourTuple;
use xtcp::tcp::flow_table::FlowTable;
use xtcp::tcp::syncookie::{CookieOptions, SynCookies};
use xtcp::time::Instant;
use xtcp::wire::{Ipv4Addr, SeqNumber};
use xtcp_benches::{RigConfig, ServerRig, feed, timed};

const BATCH: usize = 64;

fn quick() -> bool {
    std::env::var_os("XTCP_BENCH_QUICK").is_some()
}

fn tune(c: &mut Criterion) -> Criterion {
    let _ = c;
    let (warm, measure) = if quick() { (200, 1000) } else { (1000, 3000) };
    Criterion::default()
        .sample_size(10)
        .warm_up_time(WallDuration::from_millis(warm))
        .measurement_time(WallDuration::from_millis(measure))
        .configure_from_args()
}

fn lifecycle(c: &mut Criterion) {
    let mut g = c.benchmark_group("lifecycle");
    g.throughput(Throughput::Elements(BATCH as u64));
    let sizes = [
        ("tw_0", 0usize),
        ("tw_1M", 1_000_000),
        ("tw_10M", 10_000_000),
    ];
    for (name, tw) in sizes {
        // Built on first use, so that a filtered-out benchmark costs no setup.
        let mut rig: Option<ServerRig> = None;
        g.bench_function(BenchmarkId::from_parameter(name), |b| {
            let rig = rig.get_or_insert_with(|| ServerRig::warmed(tw));
            b.iter_custom(|iters| (0..iters).map(|_| rig.churn(BATCH)).sum());
        });
        if let Some(rig) = rig {
            assert_eq!(rig.server.counters().time_wait as usize, tw);
            assert_eq!(rig.server.connection_count(), 0);
        }
    }
    g.finish();

    let mut g = c.benchmark_group("lifecycle_batch1");
    g.throughput(Throughput::Elements(1));
    let mut rig: Option<ServerRig> = None;
    g.bench_function("tw_0", |b| {
        let rig = rig.get_or_insert_with(|| ServerRig::new(RigConfig::default()));
        b.iter_custom(|iters| (0..iters).map(|_| rig.churn(1)).sum());
    });
    g.finish();

    let mut g = c.benchmark_group("lifecycle_cookies");
    g.throughput(Throughput::Elements(BATCH as u64));
    let mut rig: Option<ServerRig> = None;
    g.bench_function("tw_0", |b| {
        let rig = rig.get_or_insert_with(|| {
            ServerRig::new(RigConfig {
                syn_cookies: SynCookieMode::Always,
                ..RigConfig::default()
            })
        });
        b.iter_custom(|iters| (0..iters).map(|_| rig.churn(BATCH)).sum());
    });
    if let Some(rig) = rig {
        assert!(rig.server.counters().syn_cookies_validated > 0);
    }
    g.finish();
}

fn flow_lookup(c: &mut Criterion) {
    const N: usize = 1_000_000;
    let mut g = c.benchmark_group("flow_lookup_1M");
    // The whole per-segment path: parse, flow lookup, segment processing, settle: a pure
    // ACK (nothing to answer) to one of 1 M established connections, 64 per poll.
    g.throughput(Throughput::Elements(64));
    type PureAck = (ServerRig, Vec<Vec<u8>>, MemoryLink);
    let mut setup: Option<PureAck> = None;
    let mut next = 0;
    g.bench_function("stack_pure_ack", |b| {
        let (rig, frames, link) = setup.get_or_insert_with(|| {
            let mut rig = ServerRig::new(RigConfig {
                max_connections: N + 1024,
                ..RigConfig::default()
            });
            let conns = rig.establish(N);
            assert_eq!(rig.server.connection_count(), N);
            // Pre-built frames for a pseudo-random walk over the connections.
            let mut x = 12345u64;
            let frames = (0..8192)
                .map(|_| {
                    x = lcg(x);
                    let e = &conns[(x >> 33) as usize % N];
                    let mut buf = vec![0u8; 128];
                    let len = rig.pure_ack(e, &mut buf);
                    buf.truncate(len);
                    buf
                })
                .collect();
            let link = MemoryLink::new(MemoryLinkConfig {
                max_frame_len: 1514,
                rx_frames: 64,
                tx_frames: 64,
            });
            (rig, frames, link)
        });
        let now = rig.now;
        b.iter_custom(|iters| {
            let mut spent = WallDuration::ZERO;
            for _ in 0..iters {
                for _ in 0..64 {
                    link.push_rx(&frames[next % frames.len()]);
                    next += 1;
                }
                timed(&mut spent, || feed(&mut rig.server, now, link));
            }
            spent
        });
        assert_eq!(link.tx_len(), 0, "a pure ACK needs no answer");
    });
    drop(setup);

    // The table alone: random hits among 1 M entries (keys pre-shuffled and read in order,
    // so that only the table's memory is accessed at random).
    g.throughput(Throughput::Elements(1024));
    let mut setup: Option<(FlowTable, Vec<FourTuple>)> = None;
    let mut at = 0;
    g.bench_function("flow_table_get", |b| {
        let (table, keys) = setup.get_or_insert_with(|| {
            let mut table = FlowTable::with_capacity(N, 0x1234_5678);
            let mut keys: Vec<FourTuple> = (0..N as u32)
                .map(|k| FourTuple {
                    local_addr: Ipv4Addr::new(10, 0, 0, 1),
                    remote_addr: Ipv4Addr::from(0x0b00_0000 | (k >> 15)),
                    local_port: 80,
                    remote_port: 10_000 + (k & 0x7fff) as u16,
                })
                .collect();
            for (i, k) in keys.iter().enumerate() {
                table.insert(*k, i as u32).unwrap();
            }
            let mut x = 99u64;
            for i in (1..N).rev() {
                x = lcg(x);
                keys.swap(i, (x >> 33) as usize % (i + 1));
            }
            (table, keys)
        });
        b.iter_custom(|iters| {
            let mut spent = WallDuration::ZERO;
            timed(&mut spent, || {
                for _ in 0..iters {
                    let mut sum = 0u32;
                    for _ in 0..1024 {
                        sum = sum.wrapping_add(table.get(&keys[at]).unwrap_or(0));
                        at = (at + 1) % N;
                    }
                    black_box(sum);
                }
            });
            spent
        });
    });
    g.finish();
}

fn lcg(x: u64) -> u64 {
    x.wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407)
}

fn syncookie(c: &mut Criterion) {
    let mut g = c.benchmark_group("syncookie");
    g.throughput(Throughput::Elements(1));
    let now = Instant::from_secs(100);
    let mut cookies = SynCookies::new([7; 32], now);
    let mut k = 0u32;
    let opts = CookieOptions {
        wscale: Some(7),
        sack_permitted: true,
        timestamps: true,
    };
    g.bench_function("generate_validate", |b| {
        b.iter_custom(|iters| {
            let mut spent = WallDuration::ZERO;
            timed(&mut spent, || {
                for _ in 0..iters {
                    k = k.wrapping_add(1);
                    let tuple = FourTuple {
                        local_addr: Ipv4Addr::new(10, 0, 0, 1),
                        remote_addr: Ipv4Addr::from(0x0b00_0000 | (k >> 15)),
                        local_port: 80,
                        remote_port: 10_000 + (k & 0x7fff) as u16,
                    };
                    let isn = SeqNumber(k.wrapping_mul(0x9e37_79b9));
                    let cookie = cookies.generate(now, black_box(&tuple), isn, 1460, opts);
                    let tsecr = cookie.tsval_low_bits.map(|bits| (1000 << 6) | bits);
                    let res = cookies.validate(now, &tuple, isn, cookie.isn, tsecr);
                    black_box(res.expect("valid cookie"));
                }
            });
            spent
        });
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = tune(&mut Criterion::default());
    targets = lifecycle, flow_lookup, syncookie
}
criterion_main!(benches);
