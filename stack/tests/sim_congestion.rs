//! Congestion control over a simulated bottleneck: a 20 Mbit/s link with a drop-tail queue
//! and 10 ms of one-way delay (BDP 50 KB).
//!
//! - One CUBIC flow with 0.1 % random loss keeps at least 80 % of the bottleneck busy with
//!   goodput (payload bytes delivered in order to the application).
//! - Two CUBIC flows started together share it within 20 % of each other.
//!
//! Each test prints its figures: goodput, utilisation, retransmissions, per-flow shares.

use std::net::SocketAddrV4;

use xtcp::sim::{LinkConfig, SimConfig, Simulation};
use xtcp::tcp::{CongestionAlgorithm, TcpConfig};
use xtcp::time::{Duration, Instant};
use xtcp_testkit::bulk::{Bulk, stack_for};

const RATE_BPS: u64 = 20_000_000;
const ONE_WAY: Duration = Duration::from_millis(10);
/// Drop-tail queue: about 1.3 BDP.
const QUEUE: usize = 64 * 1024;

struct Setup {
    sim: Simulation,
    hosts: [Bulk; 2],
}

fn setup(seed: u64, loss: f64, flows: usize, cc: CongestionAlgorithm) -> Setup {
    let mut sim = Simulation::new(SimConfig {
        seed,
        capture: false,
        ..SimConfig::default()
    });
    // Data direction: the bottleneck, with random loss.
    sim.set_link(
        0,
        1,
        LinkConfig {
            latency: ONE_WAY,
            loss,
            rate_bps: Some(RATE_BPS),
            queue_limit_bytes: QUEUE,
            ..LinkConfig::default()
        },
    );
    // ACK direction: same delay, no bottleneck.
    sim.set_link(1, 0, LinkConfig::with_latency(ONE_WAY));
    let tcp = TcpConfig {
        send_buffer: 1 << 20,
        recv_buffer: 1 << 20,
        congestion: cc,
        ..TcpConfig::default()
    };
    let server_addr = SocketAddrV4::new(sim.ipv4(1), 5001);
    let mut client = Bulk::new(stack_for(&sim, 0, tcp), usize::MAX / 2, 11, 99);
    client.connect_to = Some(server_addr);
    client.flows = flows;
    let mut server = Bulk::new(stack_for(&sim, 1, tcp), 0, 99, 11);
    server.flows = flows;
    server.listener = Some(server.stack.listen(server_addr).unwrap());
    Setup {
        sim,
        hosts: [client, server],
    }
}

/// Payload bytes each flow delivered to the server's application between `from` and `to`.
fn measure(s: &mut Setup, from: Instant, to: Instant) -> Vec<u64> {
    s.sim.run_until(&mut s.hosts, from);
    let before: Vec<u64> = s.hosts[1].conns.iter().map(|f| f.received as u64).collect();
    s.sim.run_until(&mut s.hosts, to);
    let after: Vec<u64> = s.hosts[1].conns.iter().map(|f| f.received as u64).collect();
    for f in &s.hosts[1].conns {
        assert_eq!(f.mismatch, None, "payload corrupted");
    }
    after.iter().zip(&before).map(|(a, b)| a - b).collect()
}

fn utilisation(bytes: u64, over: Duration) -> f64 {
    bytes as f64 * 8.0 / (RATE_BPS as f64 * over.as_secs_f64())
}

fn single_flow(cc: CongestionAlgorithm, loss: f64) -> (f64, u64, u64) {
    let mut s = setup(2024, loss, 1, cc);
    let (from, to) = (Instant::from_secs(5), Instant::from_secs(35));
    let got = measure(&mut s, from, to);
    let u = utilisation(got[0], to - from);
    let c = s.hosts[0].stack.counters();
    (u, got[0], c.retransmits)
}

#[test]
fn one_cubic_flow_keeps_the_bottleneck_busy_under_random_loss() {
    let (u, bytes, rtx) = single_flow(CongestionAlgorithm::Cubic, 0.001);
    println!(
        "sim_congestion: 1 CUBIC flow, 20 Mbit/s, RTT 20 ms, queue 64 KiB, 0.1 % loss: \
         goodput {:.2} Mbit/s = {:.1} % of the bottleneck ({} bytes in 30 s, {} retransmits)",
        u * RATE_BPS as f64 / 1e6,
        u * 100.0,
        bytes,
        rtx
    );
    assert!(u >= 0.80, "utilisation {:.1} % < 80 %", u * 100.0);
    // Reference, not a requirement: NewReno under the same conditions.
    let (u_reno, _, rtx_reno) = single_flow(CongestionAlgorithm::NewReno, 0.001);
    println!(
        "sim_congestion: 1 NewReno flow, same link: {:.1} % of the bottleneck ({} retransmits)",
        u_reno * 100.0,
        rtx_reno
    );
    assert!(u_reno >= 0.5, "NewReno utilisation {:.1} %", u_reno * 100.0);
}

#[test]
fn two_cubic_flows_share_the_bottleneck_within_20_percent() {
    let mut s = setup(7, 0.0, 2, CongestionAlgorithm::Cubic);
    let (from, to) = (Instant::from_secs(10), Instant::from_secs(70));
    let got = measure(&mut s, from, to);
    assert_eq!(got.len(), 2);
    let (a, b) = (got[0] as f64, got[1] as f64);
    let ratio = a.min(b) / a.max(b);
    let jain = (a + b).powi(2) / (2.0 * (a * a + b * b));
    let total = utilisation(got[0] + got[1], to - from);
    println!(
        "sim_congestion: 2 CUBIC flows, 20 Mbit/s, RTT 20 ms, queue 64 KiB: {:.2} and {:.2} \
         Mbit/s, smaller/larger = {:.3}, Jain index {:.4}, together {:.1} % of the bottleneck",
        a * 8.0 / 60e6,
        b * 8.0 / 60e6,
        ratio,
        jain,
        total * 100.0
    );
    assert!(ratio >= 0.8, "flows differ by more than 20 %: {got:?}");
    assert!(total >= 0.8, "together they use {:.1} %", total * 100.0);
}

#[test]
fn congestion_control_is_chosen_per_connection_through_the_stack() {
    let mut s = setup(1, 0.0, 0, CongestionAlgorithm::Cubic);
    let addr = SocketAddrV4::new(s.sim.ipv4(1), 5001);
    let now = s.sim.now();
    let stack = &mut s.hosts[0].stack;
    let a = stack.connect(now, None, addr).unwrap();
    let b = stack.connect(now, None, addr).unwrap();
    stack
        .set_congestion_algorithm(b, CongestionAlgorithm::NewReno)
        .unwrap();
    let alg = |h| {
        stack
            .connection(h)
            .map(|c| c.congestion_control().algorithm())
    };
    assert_eq!(alg(a), Some(CongestionAlgorithm::Cubic));
    assert_eq!(alg(b), Some(CongestionAlgorithm::NewReno));
}
