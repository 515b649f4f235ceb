//! Connection churn between two xtcp stacks over the deterministic simulator: a client opens
//! connections (closed loop, `--concurrency` in flight), closes each as soon as it is
//! established; the server accepts and closes on the client's FIN. Prints handshakes,
//! teardowns, TIME-WAIT entries, virtual time and wall-clock rate.
//!
//! `cargo run --release -p xtcp --example sim_demo -- [--connections N] [--concurrency N]
//! [--loss P] [--seed S]`

use std::net::SocketAddrV4;
use std::process::exit;

use xtcp::link::memory::MemoryLink;
use xtcp::sim::{Host, LinkConfig, SimConfig, Simulation};
use xtcp::stack::{ListenerId, Stack, StackConfig};
use xtcp::tcp::Event;
use xtcp::time::{Duration, Instant};

struct Opts {
    connections: usize,
    concurrency: usize,
    loss: f64,
    seed: u64,
}

fn parse_args() -> Opts {
    let mut o = Opts {
        connections: 20_000,
        concurrency: 64,
        loss: 0.0,
        seed: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < args.len() {
        let val = args.get(i + 1).cloned().unwrap_or_default();
        let bad = |what: &str| -> ! {
            eprintln!("sim_demo: {what} needs a value, got {val:?}");
            exit(2)
        };
        match args[i].as_str() {
            "--connections" => o.connections = val.parse().unwrap_or_else(|_| bad("--connections")),
            "--concurrency" => o.concurrency = val.parse().unwrap_or_else(|_| bad("--concurrency")),
            "--loss" => o.loss = val.parse().unwrap_or_else(|_| bad("--loss")),
            "--seed" => o.seed = val.parse().unwrap_or_else(|_| bad("--seed")),
            other => {
                eprintln!(
                    "sim_demo: unknown argument {other:?} (expected --connections N, --concurrency N, --loss P, --seed S)"
                );
                exit(2)
            }
        }
        i += 2;
    }
    if o.concurrency == 0 || !(0.0..1.0).contains(&o.loss) {
        eprintln!("sim_demo: --concurrency must be > 0 and --loss in [0, 1)");
        exit(2);
    }
    o
}

struct Node {
    stack: Stack,
    listener: Option<ListenerId>,
    target: Option<SocketAddrV4>,
    to_open: usize,
    in_flight: usize,
    concurrency: usize,
    handshakes: usize,
    teardowns: usize,
    failures: usize,
}

impl Node {
    fn app(&mut self, now: Instant) {
        if let Some(l) = self.listener {
            while self.stack.accept(l).is_some() {}
        }
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                Event::Connected => {
                    self.handshakes += 1;
                    if self.target.is_some() {
                        let _ = self.stack.close(h);
                    }
                }
                Event::PeerClosed if self.listener.is_some() => {
                    let _ = self.stack.close(h);
                }
                Event::Closed => {
                    self.teardowns += 1;
                    if self.target.is_some() {
                        self.in_flight -= 1;
                    }
                }
                Event::Reset | Event::TimedOut => self.failures += 1,
                _ => {}
            }
        }
        if let Some(t) = self.target {
            while self.to_open > 0 && self.in_flight < self.concurrency {
                match self.stack.connect(now, None, t) {
                    Ok(_) => {
                        self.to_open -= 1;
                        self.in_flight += 1;
                    }
                    Err(e) => {
                        eprintln!("sim_demo: connect failed: {e}");
                        exit(1);
                    }
                }
            }
        }
    }
}

impl Host for Node {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.poll(now, link);
        self.app(now);
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

fn stack(sim: &Simulation, i: usize) -> Stack {
    let mut secret = [7u8; 32];
    secret[0] = i as u8;
    Stack::new(
        StackConfig {
            mac: sim.mac(i),
            ips: vec![sim.ipv4(i)],
            time_wait_capacity: 1 << 20,
            max_connections: 1 << 16,
            max_syn_recv: 1 << 16,
            secret,
            ..StackConfig::default()
        },
        sim.now(),
    )
}

fn main() {
    let o = parse_args();
    let mut sim = Simulation::new(SimConfig {
        seed: o.seed,
        link: LinkConfig {
            latency: Duration::from_micros(50),
            loss: o.loss,
            ..LinkConfig::default()
        },
        ..SimConfig::default()
    });
    let server_addr = SocketAddrV4::new(sim.ipv4(1), 80);
    let client = Node {
        stack: stack(&sim, 0),
        listener: None,
        target: Some(server_addr),
        to_open: o.connections,
        in_flight: 0,
        concurrency: o.concurrency,
        handshakes: 0,
        teardowns: 0,
        failures: 0,
    };
    let mut server_stack = stack(&sim, 1);
    let listener = server_stack.listen(server_addr).expect("listen");
    let server = Node {
        stack: server_stack,
        listener: Some(listener),
        target: None,
        to_open: 0,
        in_flight: 0,
        concurrency: o.concurrency,
        handshakes: 0,
        teardowns: 0,
        failures: 0,
    };
    let mut hosts = [client, server];
    let wall = std::time::Instant::now();
    let total = o.connections;
    let done = sim.run_while(&mut hosts, Instant::from_secs(3600), |h| {
        h[0].teardowns + h[0].failures < total || h[1].teardowns + h[1].failures < total
    });
    let secs = wall.elapsed().as_secs_f64();
    let [c, s] = &hosts;
    let cc = c.stack.counters();
    let sc = s.stack.counters();
    println!(
        "xtcp simulator demo: client and server stacks, {} connections, {} in flight, loss {}",
        total, o.concurrency, o.loss
    );
    println!(
        "  handshakes      client {:>8}  server {:>8}",
        c.handshakes, s.handshakes
    );
    println!(
        "  teardowns       client {:>8}  server {:>8}",
        c.teardowns, s.teardowns
    );
    println!("  failures        client {:>8}", c.failures);
    println!(
        "  TIME-WAIT       client {:>8}  server {:>8}",
        cc.time_wait, sc.time_wait
    );
    println!(
        "  retransmits     client {:>8}  server {:>8}",
        cc.retransmits, sc.retransmits
    );
    println!(
        "  virtual time    {:.3} s",
        done.unwrap_or(sim.now()).total_micros() as f64 / 1e6
    );
    println!(
        "  wall time       {:.3} s  ({:.0} lifecycles/s, both stacks on one core)",
        secs,
        total as f64 / secs
    );
    if done.is_none() || c.teardowns + c.failures < total {
        eprintln!("sim_demo: did not finish");
        exit(1);
    }
}
