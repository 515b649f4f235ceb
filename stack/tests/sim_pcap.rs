//! The simulator's capture written as pcap and read back by `tshark` (unprivileged; skipped
//! with a message when tshark is not installed): 10 connections, each with a SYN, a SYN-ACK
//! and a FIN each way, every checksum verified by tshark.
#![cfg(feature = "pcap")]

use std::collections::BTreeSet;
use std::net::SocketAddrV4;
use std::process::Command;

use xtcp::link::memory::MemoryLink;
use xtcp::sim::{Host, SimConfig, Simulation};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig};
use xtcp::tcp::{Event, State};
use xtcp::time::Instant;

const PORT: u16 = 80;

/// Opens `total` connections one after another and closes each once established (client),
/// or accepts and closes on the peer's FIN (server).
struct Churn {
    stack: Stack,
    listener: Option<ListenerId>,
    target: Option<SocketAddrV4>,
    total: usize,
    opened: usize,
    current: Option<ConnHandle>,
    finished: usize,
}

impl Host for Churn {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.poll(now, link);
        if let Some(l) = self.listener {
            while self.stack.accept(l).is_some() {}
        }
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                Event::Connected if self.target.is_some() => self.stack.close(h).unwrap(),
                Event::PeerClosed if self.listener.is_some() => self.stack.close(h).unwrap(),
                Event::Closed => self.finished += 1,
                Event::Reset | Event::TimedOut => panic!("unexpected {e:?}"),
                _ => {}
            }
        }
        if let Some(t) = self.target {
            let idle = self.current.is_none_or(|h| {
                matches!(
                    self.stack.state(h),
                    None | Some(State::FinWait2) | Some(State::TimeWait)
                )
            });
            if idle && self.opened < self.total && self.finished == self.opened {
                self.current = Some(self.stack.connect(now, None, t).unwrap());
                self.opened += 1;
            }
        }
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

fn stack_for(sim: &Simulation, node: usize) -> Stack {
    let mut secret = [0u8; 32];
    secret[0] = node as u8 + 1;
    let cfg = StackConfig {
        mac: sim.mac(node),
        ips: vec![sim.ipv4(node)],
        secret,
        ..StackConfig::default()
    };
    Stack::new(cfg, sim.now())
}

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("-v")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn simulator_pcap_reads_back_in_tshark() {
    if !tshark_available() {
        xtcp_testkit::veth::skip(
            "sim_pcap::simulator_pcap_reads_back_in_tshark",
            "tshark not installed (scripts/install-deps.sh)",
        );
        return;
    }
    let mut sim = Simulation::new(SimConfig {
        seed: 3,
        capture: true,
        ..SimConfig::default()
    });
    let server_addr = SocketAddrV4::new(sim.ipv4(1), PORT);
    let mut server = stack_for(&sim, 1);
    let l = server.listen(server_addr).unwrap();
    let mut hosts = [
        Churn {
            stack: stack_for(&sim, 0),
            listener: None,
            target: Some(server_addr),
            total: 10,
            opened: 0,
            current: None,
            finished: 0,
        },
        Churn {
            stack: server,
            listener: Some(l),
            target: None,
            total: 0,
            opened: 0,
            current: None,
            finished: 0,
        },
    ];
    let done = sim.run_while(&mut hosts, Instant::from_secs(30), |h| {
        h[0].finished < 10 || h[1].finished < 10
    });
    assert!(done.is_some(), "not finished:\n{}", sim.dump());

    let path = std::env::temp_dir().join(format!("xtcp-sim-{}.pcap", std::process::id()));
    let stats = sim.write_pcap(&path).unwrap();
    assert_eq!(stats.packets, sim.capture().len() as u64);
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
        ])
        .args(["-Y", "tcp"])
        .args([
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
        ])
        .args([
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-r",
        ])
        .arg(&path)
        .output()
        .expect("run tshark");
    let _ = std::fs::remove_file(&path);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let mut sets: [BTreeSet<u16>; 4] = Default::default();
    let mut rows = 0;
    for line in text.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 5, "{line:?}");
        assert_eq!((f[3], f[4]), ("1", "1"), "checksum not good: {line:?}");
        let (sp, dp): (u16, u16) = (f[0].parse().unwrap(), f[1].parse().unwrap());
        let flags = u16::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap();
        let from_client = dp == PORT;
        let client = if from_client { sp } else { dp };
        match (flags & 0x12, from_client) {
            (0x02, true) => sets[0].insert(client),
            (0x12, false) => sets[1].insert(client),
            _ => false,
        };
        if flags & 0x01 != 0 {
            sets[if from_client { 2 } else { 3 }].insert(client);
        }
        rows += 1;
    }
    // Every frame but the ARP exchange is TCP: 10 x (3 handshake + 4 teardown) at least.
    assert!(
        rows >= 70 && rows + 2 >= sim.capture().len(),
        "{rows} TCP rows"
    );
    assert_eq!(sets.map(|s| s.len()), [10; 4], "SYN, SYN-ACK, FIN each way");
}
