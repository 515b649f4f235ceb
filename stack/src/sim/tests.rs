//! Tests of the simulator with toy hosts that speak raw Ethernet frames.

use super::*;
use crate::link::Link;

const ETHERTYPE: [u8; 2] = [0x88, 0xb5]; // IEEE local experimental

fn frame(dst: EthernetAddress, src: EthernetAddress, seq: u32, len: usize) -> Vec<u8> {
    assert!(len >= 18);
    let mut f = vec![0u8; len];
    f[0..6].copy_from_slice(&dst.0);
    f[6..12].copy_from_slice(&src.0);
    f[12..14].copy_from_slice(&ETHERTYPE);
    f[14..18].copy_from_slice(&seq.to_be_bytes());
    for (i, b) in f[18..].iter_mut().enumerate() {
        *b = (seq as usize + i) as u8;
    }
    f
}

fn seq_of(f: &[u8]) -> u32 {
    u32::from_be_bytes(f[14..18].try_into().unwrap())
}

/// Sends `count` frames to `dst`, `burst` at a time, one burst every `interval`, and records
/// every frame it receives.
struct Pinger {
    mac: EthernetAddress,
    dst: EthernetAddress,
    count: u32,
    burst: u32,
    len: usize,
    interval: Duration,
    sent: u32,
    next: Instant,
    received: Received,
}

impl Pinger {
    fn new(sim: &Simulation, me: usize, dst: EthernetAddress, count: u32) -> Pinger {
        Pinger {
            mac: sim.mac(me),
            dst,
            count,
            burst: 1,
            len: 64,
            interval: Duration::from_micros(100),
            sent: 0,
            next: Instant::ZERO,
            received: Vec::new(),
        }
    }
}

impl Host for Pinger {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        link.receive(64, |f| self.received.push((now, f.to_vec())));
        if self.sent < self.count && now >= self.next {
            for _ in 0..self.burst.min(self.count - self.sent) {
                let f = frame(self.dst, self.mac, self.sent, self.len);
                assert!(link.transmit(|buf| {
                    buf[..f.len()].copy_from_slice(&f);
                    f.len()
                }));
                self.sent += 1;
            }
            link.flush();
            self.next = now + self.interval;
        }
    }
    fn poll_at(&self) -> Option<Instant> {
        (self.sent < self.count).then_some(self.next)
    }
}

/// Reflects every frame to its source.
struct Echo {
    mac: EthernetAddress,
    polls: u32,
}

impl Host for Echo {
    fn poll(&mut self, _now: Instant, link: &mut MemoryLink) {
        self.polls += 1;
        let mut frames = Vec::new();
        link.receive(64, |f| frames.push(f.to_vec()));
        for mut f in frames {
            let src: [u8; 6] = f[6..12].try_into().unwrap();
            f[0..6].copy_from_slice(&src);
            f[6..12].copy_from_slice(&self.mac.0);
            assert!(link.transmit(|buf| {
                buf[..f.len()].copy_from_slice(&f);
                f.len()
            }));
        }
        link.flush();
    }
    fn poll_at(&self) -> Option<Instant> {
        None
    }
}

/// Records what it receives, `budget` frames per poll.
#[derive(Default)]
struct Sink {
    budget: usize,
    received: Received,
    polls: Vec<Instant>,
}

impl Sink {
    fn new() -> Sink {
        Sink {
            budget: 64,
            ..Sink::default()
        }
    }
}

impl Host for Sink {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.polls.push(now);
        link.receive(self.budget, |f| self.received.push((now, f.to_vec())));
    }
    fn poll_at(&self) -> Option<Instant> {
        None
    }
}

/// Wants one poll at `wake`, records every poll.
struct Sleeper {
    wake: Instant,
    polls: Vec<Instant>,
}

impl Host for Sleeper {
    fn poll(&mut self, now: Instant, _link: &mut MemoryLink) {
        self.polls.push(now);
    }
    fn poll_at(&self) -> Option<Instant> {
        let woke = self.polls.last().is_some_and(|&t| t >= self.wake);
        (!woke).then_some(self.wake)
    }
}

/// Never reads, never sends: a frozen stack.
struct Frozen;

impl Host for Frozen {
    fn poll(&mut self, _: Instant, _: &mut MemoryLink) {}
    fn poll_at(&self) -> Option<Instant> {
        None
    }
}

/// Always wants a poll now: a buggy host.
struct Spinner;

impl Host for Spinner {
    fn poll(&mut self, _: Instant, _: &mut MemoryLink) {}
    fn poll_at(&self) -> Option<Instant> {
        Some(Instant::ZERO)
    }
}

fn faulty() -> LinkConfig {
    LinkConfig {
        latency: Duration::from_millis(2),
        jitter: Duration::from_micros(700),
        loss: 0.1,
        duplicate: 0.1,
        reorder: 0.1,
        corrupt: 0.1,
        rate_bps: Some(10_000_000),
        queue_limit_bytes: 4000,
        ..LinkConfig::default()
    }
}

/// Ping-pong through faulty links; returns the capture and what the pinger got back.
type Received = Vec<(Instant, Vec<u8>)>;

fn faulty_run(seed: u64) -> (Vec<CapturedFrame>, Received, String) {
    let mut sim = Simulation::with_seed(seed, 2);
    sim.set_all_links(faulty());
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 300);
    p.burst = 3;
    let mut e = Echo {
        mac: sim.mac(1),
        polls: 0,
    };
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut e],
        Instant::from_secs(1),
    );
    let dump = sim.dump();
    (sim.take_capture(), p.received, dump)
}

#[test]
fn same_seed_same_capture_other_seed_differs() {
    let (cap_a, rx_a, dump_a) = faulty_run(7);
    let (cap_b, rx_b, dump_b) = faulty_run(7);
    assert!(cap_a.len() > 500, "only {} captured", cap_a.len());
    assert_eq!(cap_a, cap_b);
    assert_eq!(rx_a, rx_b);
    assert_eq!(dump_a, dump_b);
    // Every kind of fault happened, so the comparison covered them.
    for fate in [Fate::Delivered, Fate::Lost, Fate::QueueDropped] {
        assert!(cap_a.iter().any(|c| c.fate == fate), "no {fate}");
    }
    assert!(cap_a.iter().any(|c| c.duplicate));
    assert!(cap_a.iter().any(|c| c.reordered));
    assert!(cap_a.iter().any(|c| c.corruption.is_some()));

    let (cap_c, _, dump_c) = faulty_run(8);
    assert_ne!(cap_a, cap_c);
    assert_ne!(dump_a, dump_c);
}

#[test]
fn loss_rate_is_near_configured() {
    let mut sim = Simulation::new(SimConfig {
        seed: 99,
        link: LinkConfig {
            loss: 0.2,
            ..LinkConfig::default()
        },
        ..SimConfig::default()
    });
    let n = 20_000;
    let mut p = Pinger::new(&sim, 0, sim.mac(1), n);
    p.interval = Duration::from_micros(10);
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    let st = sim.stats();
    assert_eq!(st.sent, u64::from(n));
    assert_eq!(st.lost + st.delivered, u64::from(n));
    assert_eq!(s.received.len() as u64, st.delivered);
    let rate = st.lost as f64 / f64::from(n);
    // 20 000 Bernoulli(0.2) trials: sd = 0.0028, so 0.012 is over 4 sd.
    assert!((rate - 0.2).abs() < 0.012, "loss rate {rate}");
    assert_eq!(sim.link_stats(0, 1).lost, st.lost);
    assert_eq!(sim.link_stats(1, 0).sent, 0);
    // Frames that survive arrive in order and undamaged.
    let seqs: Vec<u32> = s.received.iter().map(|(_, f)| seq_of(f)).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
    for (_, f) in &s.received {
        assert_eq!(*f, frame(sim.mac(1), sim.mac(0), seq_of(f), 64));
    }
}

#[test]
fn bottleneck_serializes_and_drops_tail() {
    let mut sim = Simulation::with_seed(1, 2);
    sim.set_link(
        0,
        1,
        LinkConfig {
            latency: Duration::from_millis(1),
            rate_bps: Some(1_000_000),
            queue_limit_bytes: 100_000,
            ..LinkConfig::default()
        },
    );
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 10);
    p.burst = 10;
    p.len = 1000;
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    // 1000 bytes at 1 Mbit/s take 8 ms each; the k-th frame leaves at k * 8 ms.
    let times: Vec<Instant> = s.received.iter().map(|(t, _)| *t).collect();
    let expected: Vec<Instant> = (1..=10).map(|k| Instant::from_millis(8 * k + 1)).collect();
    assert_eq!(times, expected);

    // A 3000-byte queue: the first frame starts at once, two wait, the rest are dropped.
    let mut sim = Simulation::with_seed(1, 2);
    sim.link_config_mut(0, 1).rate_bps = Some(1_000_000);
    sim.link_config_mut(0, 1).queue_limit_bytes = 3000;
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 10);
    p.burst = 10;
    p.len = 1000;
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    let seqs: Vec<u32> = s.received.iter().map(|(_, f)| seq_of(f)).collect();
    assert_eq!(seqs, [0, 1, 2]);
    assert_eq!(sim.stats().queue_dropped, 7);
    assert_eq!(sim.captured_with(Fate::QueueDropped).count(), 7);

    // Once the queue has drained, the link accepts frames again.
    p.count = 11;
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(2),
    );
    assert_eq!(s.received.len(), 4);
    assert_eq!(seq_of(&s.received[3].1), 10);
}

#[test]
fn fractional_serialization_does_not_drift() {
    // 100 bytes at 3 Mbit/s is 266.67 us: rounding per frame would drift by 33 us per frame.
    let mut sim = Simulation::with_seed(1, 2);
    sim.set_link(
        0,
        1,
        LinkConfig {
            latency: Duration::ZERO,
            rate_bps: Some(3_000_000),
            ..LinkConfig::default()
        },
    );
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 300);
    p.burst = 300;
    p.len = 100;
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    assert_eq!(s.received.len(), 300);
    // 300 * 800 bits / 3e6 = 80 ms exactly.
    assert_eq!(s.received[299].0, Instant::from_millis(80));
}

#[test]
fn time_jumps_to_poll_at() {
    let mut sim = Simulation::with_seed(1, 2);
    let mut a = Sleeper {
        wake: Instant::from_secs(60),
        polls: Vec::new(),
    };
    let mut b = Sink::new();
    let started = std::time::Instant::now();
    sim.run_until(
        &mut [&mut a as &mut dyn Host, &mut b],
        Instant::from_secs(120),
    );
    assert_eq!(a.polls, [Instant::ZERO, Instant::from_secs(60)]);
    assert_eq!(b.polls, [Instant::ZERO]);
    assert_eq!(sim.now(), Instant::from_secs(120));
    assert_eq!(sim.steps(), 2);
    assert!(started.elapsed() < std::time::Duration::from_millis(100));
}

#[test]
fn run_calls_poll_once_at_start_and_never_go_back() {
    let mut sim = Simulation::with_seed(1, 1);
    let mut s = Sink::new();
    sim.run_until(&mut [&mut s], Instant::from_secs(1));
    sim.run_until(&mut [&mut s], Instant::from_millis(500));
    assert_eq!(sim.now(), Instant::from_secs(1));
    sim.run_for(&mut [&mut s], Duration::from_secs(1));
    // The call into the past polled nobody.
    assert_eq!(s.polls, [Instant::ZERO, Instant::from_secs(1)]);
    assert_eq!(sim.now(), Instant::from_secs(2));
}

#[test]
fn run_while_stops_at_the_instant_the_condition_changes() {
    let mut sim = Simulation::with_seed(1, 2);
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 1);
    let mut e = Echo {
        mac: sim.mac(1),
        polls: 0,
    };
    let done = sim.run_while(
        &mut [&mut p as &mut dyn Host, &mut e],
        Instant::from_secs(1),
        |_| true,
    );
    assert_eq!(done, None);
    assert_eq!(sim.now(), Instant::from_secs(1));

    // Typed hosts: the condition can look at them.
    let mut sim = Simulation::with_seed(1, 2);
    let dst = sim.mac(1);
    let mut hosts = [
        Pinger::new(&sim, 0, dst, 3),
        Pinger::new(&sim, 1, sim.mac(0), 0),
    ];
    let t = sim.run_while(&mut hosts, Instant::from_secs(1), |h| {
        h[1].received.len() < 3
    });
    // Frames leave at 0, 100 and 200 us and take 1 ms.
    assert_eq!(t, Some(Instant::from_micros(1200)));
    assert_eq!(sim.now(), Instant::from_micros(1200));
}

#[test]
fn echo_round_trip_and_idle() {
    let mut sim = Simulation::with_seed(1, 2);
    sim.set_link_both(0, 1, LinkConfig::with_latency(Duration::from_millis(5)));
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 4);
    let mut e = Echo {
        mac: sim.mac(1),
        polls: 0,
    };
    let idle = sim.run_until_idle(
        &mut [&mut p as &mut dyn Host, &mut e],
        Instant::from_secs(1),
    );
    // The last ping leaves at 300 us and is back 10 ms later.
    assert_eq!(idle, Some(Instant::from_micros(10_300)));
    let rtts: Vec<Instant> = p.received.iter().map(|(t, _)| *t).collect();
    assert_eq!(
        rtts,
        [0, 100, 200, 300].map(|us| Instant::from_micros(us + 10_000))
    );
    for (i, (_, f)) in p.received.iter().enumerate() {
        assert_eq!(seq_of(f), i as u32);
        assert_eq!(f[0..6], sim.mac(0).0);
        assert_eq!(f[6..12], sim.mac(1).0);
    }
    assert_eq!(sim.stats().delivered, 8);
    assert_eq!(sim.in_flight(), 0);
}

#[test]
fn broadcast_unicast_and_no_route() {
    let mut sim = Simulation::with_seed(1, 3);
    let mut sinks = [Sink::new(), Sink::new(), Sink::new()];
    let m = [sim.mac(0), sim.mac(1), sim.mac(2)];
    assert_eq!(m[2], EthernetAddress([2, 0, 0, 0, 0, 3]));
    assert_eq!(sim.node_by_mac(m[1]), Some(1));
    sim.link_mut(0)
        .push_tx(&frame(EthernetAddress::BROADCAST, m[0], 1, 60));
    sim.link_mut(0).push_tx(&frame(m[2], m[0], 2, 60));
    sim.link_mut(0)
        .push_tx(&frame(EthernetAddress([2, 0, 0, 0, 9, 9]), m[0], 3, 60));
    sim.link_mut(1).push_tx(&[0xff; 10]);
    sim.run_until(&mut sinks, Instant::from_secs(1));
    let seqs = |s: &Sink| {
        s.received
            .iter()
            .map(|(_, f)| seq_of(f))
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&sinks[0]), Vec::<u32>::new());
    assert_eq!(seqs(&sinks[1]), [1]);
    assert_eq!(seqs(&sinks[2]), [1, 2]);
    let st = sim.stats();
    assert_eq!((st.sent, st.delivered, st.no_route), (4, 3, 2));
    let no_route: Vec<_> = sim.captured_with(Fate::NoRoute).collect();
    assert_eq!(no_route.len(), 2);
    assert!(no_route.iter().all(|c| c.to.is_none()));
    assert_eq!(sim.delivered(0, 2).count(), 2);
}

#[test]
fn duplicates_are_visible_and_follow_the_original() {
    let mut sim = Simulation::with_seed(3, 2);
    sim.link_config_mut(0, 1).duplicate = 1.0;
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 5);
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    let seqs: Vec<u32> = s.received.iter().map(|(_, f)| seq_of(f)).collect();
    assert_eq!(seqs, [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
    let flags: Vec<bool> = sim.delivered(0, 1).map(|c| c.duplicate).collect();
    assert_eq!(flags, [false, true].repeat(5));
    assert_eq!(sim.stats().duplicated, 5);
    assert_eq!(sim.stats().delivered, 10);
}

#[test]
fn reordering_is_the_only_source_of_reordering() {
    // Jitter alone keeps FIFO order.
    let mut sim = Simulation::with_seed(4, 2);
    sim.link_config_mut(0, 1).jitter = Duration::from_millis(5);
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 200);
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    let seqs: Vec<u32> = s.received.iter().map(|(_, f)| seq_of(f)).collect();
    assert_eq!(seqs, (0..200).collect::<Vec<_>>());
    let delays: Vec<u64> = s
        .received
        .iter()
        .map(|(t, f)| (*t - Instant::from_micros(100 * u64::from(seq_of(f)))).as_micros() as u64)
        .collect();
    assert!(delays.iter().all(|&d| (1000..=6000).contains(&d)));
    assert!(
        delays.iter().min() != delays.iter().max(),
        "jitter had no effect"
    );

    // Reordering: picked frames arrive after frames sent later.
    let mut sim = Simulation::with_seed(4, 2);
    sim.link_config_mut(0, 1).reorder = 0.2;
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 200);
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    let seqs: Vec<u32> = s.received.iter().map(|(_, f)| seq_of(f)).collect();
    assert_eq!(seqs.len(), 200);
    let inversions = seqs.windows(2).filter(|w| w[0] > w[1]).count();
    assert!(inversions > 10, "{inversions} inversions");
    let reordered: Vec<u32> = sim
        .delivered(0, 1)
        .filter(|c| c.reordered)
        .map(|c| seq_of(&c.data))
        .collect();
    assert_eq!(reordered.len() as u64, sim.stats().reordered);
    // A reordered frame is overtaken by the next one, since the extra delay (>= 2.5 ms) is far
    // above the 100 us spacing.
    let pos = |seq: u32| seqs.iter().position(|&s| s == seq).unwrap();
    for &r in &reordered {
        if r + 1 < 200 && !reordered.contains(&(r + 1)) {
            assert!(pos(r + 1) < pos(r), "frame {} did not overtake {r}", r + 1);
        }
    }
}

#[test]
fn corruption_flips_one_bit_past_the_ethernet_header() {
    let mut sim = Simulation::with_seed(5, 2);
    sim.link_config_mut(0, 1).corrupt = 1.0;
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 100);
    let mut s = Sink::new();
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    assert_eq!(s.received.len(), 100);
    let mut offsets = std::collections::BTreeSet::new();
    for ((_, got), c) in s.received.iter().zip(sim.delivered(0, 1)) {
        assert_eq!(*got, c.data);
        // Find the original by position: frames are in order, seq may be the damaged field.
        let corruption = c.corruption.expect("every frame corrupted");
        let mut original = got.clone();
        original[corruption.offset] ^= corruption.mask;
        let seq = seq_of(&original);
        assert_eq!(original, frame(sim.mac(1), sim.mac(0), seq, 64));
        let flipped: u32 = got
            .iter()
            .zip(&original)
            .map(|(a, b)| (a ^ b).count_ones())
            .sum();
        assert_eq!(flipped, 1);
        assert!(corruption.offset >= 14);
        offsets.insert(corruption.offset);
    }
    assert!(
        offsets.len() > 20,
        "corruption positions not spread: {offsets:?}"
    );
    assert_eq!(sim.stats().corrupted, 100);
    assert!(sim.dump().contains("corrupt@"));
}

#[test]
fn full_rx_queue_drops_and_frozen_host_does_not_spin() {
    let mut sim = Simulation::new(SimConfig {
        memory_link: MemoryLinkConfig {
            rx_frames: 4,
            ..MemoryLinkConfig::default()
        },
        capture: true,
        ..SimConfig::default()
    });
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 10);
    p.burst = 10;
    let mut f = Frozen;
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut f],
        Instant::from_secs(1),
    );
    assert_eq!(sim.stats().delivered, 4);
    assert_eq!(sim.stats().rx_dropped, 6);
    assert_eq!(sim.link(1).rx_len(), 4);
    assert!(sim.steps() < 10, "{} steps", sim.steps());
}

#[test]
fn receive_budget_is_polled_again_at_the_same_instant() {
    let mut sim = Simulation::with_seed(1, 2);
    let mut p = Pinger::new(&sim, 0, sim.mac(1), 50);
    p.burst = 50;
    let mut s = Sink::new();
    s.budget = 8;
    sim.run_until(
        &mut [&mut p as &mut dyn Host, &mut s],
        Instant::from_secs(1),
    );
    assert_eq!(s.received.len(), 50);
    assert!(
        s.received
            .iter()
            .all(|(t, _)| *t == Instant::from_millis(1))
    );
    assert_eq!(s.polls.len(), 1 + 7);
}

#[test]
#[should_panic(expected = "simulation stuck")]
fn spinning_host_panics_with_a_clear_message() {
    let mut sim = Simulation::with_seed(1, 1);
    sim.run_until(&mut [Spinner], Instant::from_secs(1));
}

#[test]
fn zero_latency_ping_pong_is_caught() {
    let result = std::panic::catch_unwind(|| {
        let mut sim = Simulation::new(SimConfig {
            link: LinkConfig::with_latency(Duration::ZERO),
            max_steps_per_instant: 1000,
            ..SimConfig::default()
        });
        let mut a = Echo {
            mac: sim.mac(0),
            polls: 0,
        };
        let mut b = Echo {
            mac: sim.mac(1),
            polls: 0,
        };
        let f = frame(sim.mac(1), sim.mac(0), 0, 60);
        sim.link_mut(0).push_tx(&f);
        sim.run_until(&mut [&mut a, &mut b], Instant::from_secs(1));
    });
    let msg = *result.unwrap_err().downcast::<String>().unwrap();
    assert!(msg.contains("simulation stuck at 0.000000s"), "{msg}");
}

#[test]
fn test_rng_is_independent_of_faults() {
    let mut a = Simulation::with_seed(10, 2);
    let mut b = Simulation::with_seed(10, 2);
    b.set_all_links(faulty());
    assert_eq!(a.rng().bytes(32), b.rng().bytes(32));
    let mut c = Simulation::with_seed(11, 2);
    assert_ne!(
        Simulation::with_seed(10, 2).rng().next_u64(),
        c.rng().next_u64()
    );
}

#[test]
fn one_links_faults_do_not_shift_anothers() {
    // Loss on 1->0 must not change which frames are lost on 0->1.
    let lost_on_0_1 = |loss_1_0: f64| {
        let mut sim = Simulation::with_seed(21, 2);
        sim.link_config_mut(0, 1).loss = 0.3;
        sim.link_config_mut(1, 0).loss = loss_1_0;
        let mut hosts = [
            Pinger::new(&sim, 0, sim.mac(1), 200),
            Pinger::new(&sim, 1, sim.mac(0), 200),
        ];
        sim.run_until(&mut hosts, Instant::from_secs(1));
        sim.captured_with(Fate::Lost)
            .filter(|c| c.from == 0)
            .map(|c| seq_of(&c.data))
            .collect::<Vec<_>>()
    };
    let a = lost_on_0_1(0.0);
    assert!(a.len() > 30);
    assert_eq!(a, lost_on_0_1(0.9));
}

#[test]
fn dump_has_one_line_per_copy() {
    let (cap, _, dump) = faulty_run(7);
    assert_eq!(dump.lines().count(), cap.len());
    let first = dump.lines().next().unwrap();
    assert!(first.contains("n0>n1"), "{first}");
    assert!(first.contains("0.00"), "{first}");
}
