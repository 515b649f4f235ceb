//! What feature `trace` reports: a drop with its reason (a corrupted checksum) and the state
//! transitions of a connection's life, captured from a `tracing` subscriber around a stack
//! driven by hand and over the simulator.
#![cfg(feature = "trace")]

use std::io::Write;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};

use xtcp::link::memory::MemoryLink;
use xtcp::stack::{Stack, StackConfig};
use xtcp::time::Instant;
use xtcp::wire::frame::emit_tcp_frame;
use xtcp::wire::{EthernetAddress, Ipv4Addr, SeqNumber, TcpControl, TcpRepr};

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// Runs `f` with a subscriber that keeps `xtcp=debug` events; returns what it wrote.
fn traced(f: impl FnOnce()) -> String {
    let buf = Buf::default();
    let sub = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new("xtcp=debug"))
        .with_writer(buf.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(sub, f);
    let out = buf.0.lock().unwrap().clone();
    String::from_utf8(out).unwrap()
}

const OUR_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const PEER_MAC: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

fn syn(seq: u32) -> Vec<u8> {
    from_peer(40000, TcpControl::Syn, seq)
}

#[test]
fn a_checksum_drop_is_traced_with_its_reason() {
    let mut stack = Stack::new(StackConfig::default(), Instant::ZERO);
    stack
        .listen(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80))
        .unwrap();
    let mut link = MemoryLink::default();
    let mut bad = syn(1000);
    let last = bad.len() - 1;
    bad[last] ^= 0x40; // the TCP checksum no longer matches
    assert!(link.push_rx(&bad));
    let out = traced(|| {
        stack.poll(Instant::ZERO, &mut link);
    });
    assert_eq!(stack.counters().rx_dropped_malformed, 1);
    let line = out
        .lines()
        .find(|l| l.contains("drop: malformed frame"))
        .unwrap_or_else(|| panic!("no drop traced:\n{out}"));
    assert!(
        line.contains("reason=bad checksum") || line.contains("reason=checksum"),
        "{line}"
    );
    assert!(
        line.contains("xtcp::stack"),
        "target is the module path: {line}"
    );
}

#[test]
fn no_listener_and_state_transitions_are_traced() {
    let mut stack = Stack::new(StackConfig::default(), Instant::ZERO);
    stack
        .listen(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80))
        .unwrap();
    let mut link = MemoryLink::default();
    // Port 81: nobody listens.
    let to_closed_port = frame(40001, 81, TcpControl::Syn, 5);
    assert!(link.push_rx(&to_closed_port));
    let out = traced(|| {
        stack.poll(Instant::ZERO, &mut link);
    });
    assert!(
        out.contains("drop: no listener (RST sent)") && out.contains("10.0.0.1:81<10.0.0.2:40001"),
        "{out}"
    );
}

/// One connection over the simulator: the client closes once established, the server
/// closes on the peer's FIN.
struct Host1 {
    stack: Stack,
    listener: Option<xtcp::ListenerId>,
    target: Option<SocketAddrV4>,
}

impl xtcp::sim::Host for Host1 {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.poll(now, link);
        if let Some(l) = self.listener {
            while self.stack.accept(l).is_some() {}
        }
        if let Some(t) = self.target.take() {
            self.stack.connect(now, None, t).unwrap();
        }
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                xtcp::tcp::Event::Connected if self.listener.is_none() => {
                    self.stack.close(h).unwrap()
                }
                xtcp::tcp::Event::PeerClosed => {
                    let _ = self.stack.close(h);
                }
                _ => {}
            }
        }
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

#[test]
fn every_state_transition_of_a_lifecycle_is_traced() {
    use xtcp::sim::{SimConfig, Simulation};
    let mut sim = Simulation::new(SimConfig::default());
    let cfg = |sim: &Simulation, i: usize| StackConfig {
        mac: sim.mac(i),
        ips: vec![sim.ipv4(i)],
        ..StackConfig::default()
    };
    let server_addr = SocketAddrV4::new(sim.ipv4(1), 80);
    let mut server = Stack::new(cfg(&sim, 1), sim.now());
    let l = server.listen(server_addr).unwrap();
    let mut hosts = [
        Host1 {
            stack: Stack::new(cfg(&sim, 0), sim.now()),
            listener: None,
            target: Some(server_addr),
        },
        Host1 {
            stack: server,
            listener: Some(l),
            target: None,
        },
    ];
    let out = traced(|| sim.run_for(&mut hosts, xtcp::time::Duration::from_secs(5)));
    let states: Vec<&str> = out.lines().filter(|l| l.contains(" state ")).collect();
    // Client: CLOSED -> SYN-SENT -> ESTABLISHED -> FIN-WAIT-1 -> TIME-WAIT (the server's FIN
    // acknowledges ours). Server: its connection is made from the final ACK, which carries the
    // client's FIN (a compact SYN-RECEIVED entry before that is not a connection), so CLOSED ->
    // CLOSE-WAIT -> LAST-ACK -> CLOSED.
    for (from, to) in [
        ("CLOSED", "SYN-SENT"),
        ("SYN-SENT", "ESTABLISHED"),
        ("ESTABLISHED", "FIN-WAIT-1"),
        ("FIN-WAIT-1", "TIME-WAIT"),
        ("CLOSED", "CLOSE-WAIT"),
        ("CLOSE-WAIT", "LAST-ACK"),
        ("LAST-ACK", "CLOSED"),
    ] {
        assert!(
            states
                .iter()
                .any(|l| l.contains(&format!("from={from} to={to}"))),
            "no {from} -> {to} in:\n{}",
            states.join("\n")
        );
    }
}

/// A frame from the peer 10.0.0.2:`src_port` to our port 80.
fn from_peer(src_port: u16, control: TcpControl, seq: u32) -> Vec<u8> {
    frame(src_port, 80, control, seq)
}

/// A frame from the peer 10.0.0.2:`src_port` to 10.0.0.1:`dst_port` (a SYN carries MSS 1460).
fn frame(src_port: u16, dst_port: u16, control: TcpControl, seq: u32) -> Vec<u8> {
    let repr = TcpRepr {
        src_port,
        dst_port,
        control,
        seq_number: SeqNumber(seq),
        window_len: 1024,
        max_seg_size: (control == TcpControl::Syn).then_some(1460),
        ..TcpRepr::default()
    };
    let mut buf = vec![0u8; 1514];
    let n = emit_tcp_frame(
        &mut buf,
        PEER_MAC,
        OUR_MAC,
        Ipv4Addr::new(10, 0, 0, 2),
        Ipv4Addr::new(10, 0, 0, 1),
        &repr,
    )
    .unwrap();
    buf.truncate(n);
    buf
}

#[test]
fn syn_cookie_mode_changes_are_traced_and_counted() {
    let mut stack = Stack::new(StackConfig::default(), Instant::ZERO);
    stack
        .listen_with_backlog(SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80), 2, 16)
        .unwrap();
    let mut link = MemoryLink::default();
    // Four SYNs against a SYN backlog of two: the third and fourth get cookies.
    for port in 40000..40004 {
        assert!(link.push_rx(&from_peer(port, TcpControl::Syn, 1000)));
    }
    let on = traced(|| {
        stack.poll(Instant::ZERO, &mut link);
    });
    let c = stack.counters();
    assert_eq!((c.syn_cookies_sent, c.syn_cookie_mode_changes), (2, 1));
    assert_eq!(
        on.matches("sending SYN cookies").count(),
        1,
        "one line when the mode changes, none per cookie:\n{on}"
    );
    assert!(on.contains("port=80"), "{on}");
    // An RST at RCV.NXT frees one SYN-RECEIVED entry (RFC 9293 §3.10.7.4); the next SYN
    // finds room and cookies stop.
    assert!(link.push_rx(&from_peer(40000, TcpControl::Rst, 1001)));
    assert!(link.push_rx(&from_peer(40010, TcpControl::Syn, 1000)));
    let off = traced(|| {
        stack.poll(Instant::ZERO, &mut link);
    });
    let c = stack.counters();
    assert_eq!((c.syn_cookies_sent, c.syn_cookie_mode_changes), (2, 2));
    assert!(off.contains("SYN queue has room: cookies off"), "{off}");
}
