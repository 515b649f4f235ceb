//! Hand-built frames against the echo example over veth: what a peer sees on the wire, with
//! the engine, the XDP program and the production passive open in the path.
//!
//! The probe is a raw `AF_PACKET` socket on the kernel side (namespace `-b`) speaking for an
//! address the kernel there does not own (`.9` of the pair's subnet), so the kernel neither
//! answers the echo server's replies with RSTs nor sees our segments as its own; the server
//! answers to the probe's MAC, as it does for every passive open.
//!
//! RFC 7323 §5.3 R1 (PAWS): after a handshake with timestamps, data with a fresh TSval is
//! echoed; data at the next sequence number with a TSval 2^20 older than TS.Recent must be
//! dropped and answered with an ACK that does not cover it, and never echoed. Checked with a
//! final ACK that carries TSopt and with one that leaves it out (the case that once let the
//! stale segment through: the listener took "no TSopt on the final ACK" for "no timestamps").

use std::net::Ipv4Addr;
use std::time::Duration;

use xtcp::wire::{
    EthernetAddress, SeqNumber, TcpControl, TcpRepr, TcpTimestamp, emit_tcp_frame, parse_tcp_frame,
};
use xtcp_testkit::require_privileges;
use xtcp_testkit::veth::{PacketSocket, Server, Veth, in_netns, serial};

const PORT: u16 = 7;
const PROBE_PORT: u16 = 45_000;
const ETH_P_IP: u16 = 0x0800;
const WAIT: Duration = Duration::from_secs(2);
/// How long "no echo" is watched for.
const QUIET: Duration = Duration::from_millis(500);

/// One side of a hand-driven TCP connection over a packet socket.
struct Probe {
    sock: PacketSocket,
    mac: EthernetAddress,
    server_mac: EthernetAddress,
    ip: Ipv4Addr,
    server_ip: Ipv4Addr,
    port: u16,
    /// Next sequence number to send, and the server's next.
    snd_nxt: u32,
    rcv_nxt: u32,
    tsval: u32,
    ts_recent: u32,
}

/// A received segment, owned.
#[derive(Debug)]
struct Reply {
    control: TcpControl,
    seq: u32,
    ack: Option<u32>,
    payload: Vec<u8>,
    tsval: Option<u32>,
}

impl Probe {
    fn send(&mut self, control: TcpControl, payload: &[u8], ts: Option<u32>) {
        let repr = TcpRepr {
            src_port: self.port,
            dst_port: PORT,
            control,
            seq_number: SeqNumber(self.snd_nxt),
            ack_number: (control != TcpControl::Syn).then_some(SeqNumber(self.rcv_nxt)),
            window_len: 65535,
            max_seg_size: (control == TcpControl::Syn).then_some(1460),
            timestamp: ts.map(|tsval| TcpTimestamp {
                tsval,
                tsecr: self.ts_recent,
            }),
            payload,
            ..TcpRepr::default()
        };
        let mut buf = [0u8; 1600];
        let len = emit_tcp_frame(
            &mut buf,
            self.mac,
            self.server_mac,
            self.ip,
            self.server_ip,
            &repr,
        )
        .expect("frame fits");
        assert!(self.sock.send(&buf[..len]), "AF_PACKET send pushed back");
    }

    /// The next segment from the server to the probe within `limit`.
    fn recv(&mut self, limit: Duration) -> Option<Reply> {
        let (ip, port) = (self.ip, self.port);
        let frame = self.sock.recv_until(limit, |f| {
            parse_tcp_frame(f).is_ok_and(|t| t.ip.dst_addr == ip && t.tcp.dst_port == port)
        })?;
        let f = parse_tcp_frame(&frame).expect("parsed above");
        let reply = Reply {
            control: f.tcp.control,
            seq: f.tcp.seq_number.0,
            ack: f.tcp.ack_number.map(|a| a.0),
            payload: f.tcp.payload.to_vec(),
            tsval: f.tcp.timestamp.map(|t| t.tsval),
        };
        if let Some(tsval) = reply.tsval {
            self.ts_recent = tsval;
        }
        Some(reply)
    }

    fn handshake(&mut self, ts_on_final_ack: bool) {
        self.send(TcpControl::Syn, &[], Some(self.tsval));
        let synack = self.recv(WAIT).expect("SYN-ACK");
        assert_eq!(synack.control, TcpControl::Syn, "{synack:?}");
        assert_eq!(synack.ack, Some(self.snd_nxt + 1));
        assert!(synack.tsval.is_some(), "the server offers timestamps back");
        self.snd_nxt += 1;
        self.rcv_nxt = synack.seq + 1;
        self.tsval += 1;
        let ts = ts_on_final_ack.then_some(self.tsval);
        self.send(TcpControl::None, &[], ts);
    }
}

fn paws_probe(tag: &str, ts_on_final_ack: bool) {
    let _serial = serial();
    let veth = Veth::up(tag, 1);
    let server = Server::start("echo", &veth, PORT, &[]);
    let server_ip: Ipv4Addr = veth.ip_a.parse().unwrap();
    let mut probe_ip = server_ip.octets();
    probe_ip[3] = 9;
    let (if_b, mac_a, mac_b) = (veth.if_b.clone(), veth.mac_a, veth.mac_b);
    in_netns(&veth.ns_b, move || {
        let mut p = Probe {
            sock: PacketSocket::open(&if_b, ETH_P_IP),
            mac: EthernetAddress(mac_b),
            server_mac: EthernetAddress(mac_a),
            ip: Ipv4Addr::from(probe_ip),
            server_ip,
            port: PROBE_PORT,
            snd_nxt: 1_000_000,
            rcv_nxt: 0,
            tsval: 5_000_000,
            ts_recent: 0,
        };
        p.handshake(ts_on_final_ack);

        // Fresh data: echoed.
        p.tsval += 1;
        p.send(TcpControl::None, b"fresh", Some(p.tsval));
        let echo = loop {
            let r = p.recv(WAIT).expect("echo of the fresh segment");
            if !r.payload.is_empty() {
                break r;
            }
        };
        assert_eq!(echo.payload, b"fresh");
        p.snd_nxt += 5;
        p.rcv_nxt = echo.seq + 5;
        p.send(TcpControl::None, &[], Some(p.tsval));

        // The next sequence number, TSval 2^20 older than TS.Recent: an ACK that does not
        // cover it, and no echo.
        let stale = p.tsval.wrapping_sub(1 << 20);
        p.send(TcpControl::None, b"stale", Some(stale));
        let ack = p.recv(WAIT).expect("PAWS answers with an ACK");
        assert!(ack.payload.is_empty(), "stale segment echoed: {ack:?}");
        assert_eq!(
            ack.ack,
            Some(p.snd_nxt),
            "the ACK must not cover the stale bytes"
        );
        while let Some(r) = p.recv(QUIET) {
            assert!(r.payload.is_empty(), "stale segment echoed: {r:?}");
        }

        // The same bytes with a current TSval: accepted and echoed.
        p.tsval += 1;
        p.send(TcpControl::None, b"again", Some(p.tsval));
        let echo = loop {
            let r = p.recv(WAIT).expect("echo of the fresh retransmission");
            if !r.payload.is_empty() {
                break r;
            }
        };
        assert_eq!(echo.payload, b"again");
        p.snd_nxt += 5;
        p.rcv_nxt = echo.seq + 5;
        // Leave with a RST (which PAWS never drops).
        p.send(TcpControl::Rst, &[], Some(stale));
    });
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("paws_drops").is_some_and(|n| n >= 1)
    });
    assert_eq!(st.top("paws_drops"), Some(1), "stats: {}", st.0);
    if !ts_on_final_ack {
        assert_eq!(st.top("ts_missing_drops"), Some(1), "stats: {}", st.0);
    }
    let st = server.wait_stats(Duration::from_secs(3), |s| s.top("established") == Some(0));
    assert_eq!(
        st.top("established"),
        Some(0),
        "the RST closed it: {}",
        st.0
    );
}

#[test]
fn paws_drops_a_stale_segment_on_the_wire() {
    require_privileges!();
    paws_probe("pw", true);
}

#[test]
fn paws_holds_when_the_final_ack_omits_timestamps() {
    require_privileges!();
    paws_probe("pn", false);
}
