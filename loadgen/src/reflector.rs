//! `reflector`: the copy-mode AF_XDP I/O ceiling for a workload.
//!
//! A stateless responder on the server's interface: one AF_XDP socket on queue 0, the XDP
//! steering program sending it the listening port's frames, and one pinned thread that
//! answers every client frame at once with the frames a server would send for it, keeping no
//! state at all:
//!
//! | client frame | answer (`echo`) | answer (`respond-close`) |
//! |---|---|---|
//! | SYN | SYN-ACK (MSS, SACK-permitted, timestamps when offered) | same |
//! | data (± FIN) | ACK + the same bytes (+ FIN if the client's had one) | ACK + response + FIN |
//! | FIN, no data | FIN-ACK (the server closes after the client) | ACK (our FIN went first) |
//! | ACK, RST | nothing | nothing |
//!
//! The sequence numbers follow from the client's segment (our ISN is a function of theirs;
//! afterwards our sequence number is their acknowledgement), so the client's full TCP sees a
//! correct server. What it measures: the rate at which copy-mode AF_XDP on this interface and
//! core can receive a connection's frames and send the answers, with no TCP state, timers or
//! tables: an upper bound for any server on this I/O path (`ceiling_pct` of the xtcp rows).
//!
//! Between bursts it waits like the xtcp engine's idle mode (spin 1000 empty polls, then
//! `poll` up to 1 ms), so that it shares the core with the server side's NAPI kthread on the
//! same terms as the xtcp server in the bench.
//!
//! It is **not** a TCP server: no retransmission, no window, no TIME-WAIT; a lost frame is a
//! failed connection at the client.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Instant;

use xtcp::afxdp::{XskConfig, XskLink};
use xtcp::link::Link;
use xtcp::wire::{SeqNumber, TcpControl, TcpRepr, TcpTimestamp, emit_tcp_frame, parse_tcp_frame};
use xtcp_xdp_ebpf::{XdpMode, XdpSteering};

use crate::util;

/// How the reflector answers data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReflectMode {
    /// Echo data back; answer a FIN with FIN-ACK (connect, crr, rr).
    Echo,
    /// Answer a request with a response and FIN; answer the client's FIN with an ACK
    /// (server-close).
    RespondClose,
}

pub struct ReflectorConfig {
    pub iface: String,
    pub ip: Ipv4Addr,
    pub port: u16,
    pub mode: ReflectMode,
    pub core: Option<usize>,
    pub stats: Option<PathBuf>,
}

/// The response of `respond-close`: the same bytes as the Linux reference server's.
pub const RESPONSE: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

/// Frames answered per receive batch (each answer is staged before any is sent).
const BATCH: usize = 64;
const FRAME: usize = 2048;
/// Empty iterations before waiting on the socket (the engine's `idle_spins` default).
const IDLE_SPINS: u32 = 1000;

/// The answer to one client segment, written into `out`; `None` when there is none.
pub fn answer(frame: &[u8], mode: ReflectMode, now_ms: u32, out: &mut [u8]) -> Option<usize> {
    let f = parse_tcp_frame(frame).ok()?;
    let t = &f.tcp;
    let ts = t.timestamp.map(|x| TcpTimestamp {
        tsval: now_ms,
        tsecr: x.tsval,
    });
    let mut r = TcpRepr {
        src_port: t.dst_port,
        dst_port: t.src_port,
        control: TcpControl::None,
        psh: false,
        seq_number: SeqNumber(0),
        ack_number: None,
        window_len: 65535,
        window_scale: None,
        max_seg_size: None,
        sack_permitted: false,
        sack_ranges: [None; 3],
        timestamp: ts,
        payload: &[],
    };
    match (t.control, t.ack_number) {
        (TcpControl::Syn, None) => {
            r.control = TcpControl::Syn;
            // Stateless ISN: any function of theirs works, we never check it.
            r.seq_number = SeqNumber(t.seq_number.0 ^ 0x5eed_1234);
            r.ack_number = Some(t.seq_number + 1);
            r.max_seg_size = Some(1460);
            r.sack_permitted = t.sack_permitted;
        }
        (TcpControl::Rst, _) | (TcpControl::Syn, Some(_)) | (_, None) => return None,
        (control, Some(their_ack)) => {
            let fin = control == TcpControl::Fin;
            if t.payload.is_empty() && !fin {
                return None; // a pure ACK
            }
            r.seq_number = their_ack;
            r.ack_number = Some(t.seq_number + t.segment_len());
            match (mode, t.payload.is_empty()) {
                (ReflectMode::Echo, false) => {
                    r.payload = t.payload;
                    r.psh = true;
                    if fin {
                        r.control = TcpControl::Fin;
                    }
                }
                (ReflectMode::Echo, true) => r.control = TcpControl::Fin,
                (ReflectMode::RespondClose, false) => {
                    r.payload = RESPONSE;
                    r.psh = true;
                    r.control = TcpControl::Fin;
                }
                (ReflectMode::RespondClose, true) => {}
            }
        }
    }
    emit_tcp_frame(
        out,
        f.eth.dst_addr,
        f.eth.src_addr,
        f.ip.dst_addr,
        f.ip.src_addr,
        &r,
    )
    .ok()
}

/// Runs until SIGINT/SIGTERM. Prints `reflector listening on IP:PORT` once ready.
pub fn serve(cfg: ReflectorConfig) -> Result<(), String> {
    util::install_stop_handler();
    let mut steering = XdpSteering::attach(&cfg.iface, XdpMode::Auto)
        .map_err(|e| format!("cannot attach the XDP program to {}: {e}", cfg.iface))?;
    let mut link = XskLink::new(&XskConfig::new(cfg.iface.clone()))
        .map_err(|e| format!("AF_XDP socket on {}: {e}", cfg.iface))?;
    steering
        .register_xsk(0, link.fd())
        .map_err(|e| format!("registering the AF_XDP socket: {e}"))?;
    steering
        .add_listener(cfg.ip, cfg.port)
        .map_err(|e| format!("XDP listener: {e}"))?;
    crate::sys::pin_to(cfg.core);
    println!(
        "reflector listening on {}:{} (iface {}, {} mode, {:?})",
        cfg.ip,
        cfg.port,
        cfg.iface,
        steering.mode(),
        cfg.mode
    );
    let _ = std::io::Write::flush(&mut std::io::stdout());

    let epoch = Instant::now();
    let mut stage = vec![[0u8; FRAME]; BATCH];
    let mut lens = [0usize; BATCH];
    let (mut busy_ns, mut loop_ns, mut answered, mut received) = (0u64, 0u64, 0u64, 0u64);
    let mut prev = 0u64;
    let mut prev_busy = false;
    let mut empty = 0u32;
    let mut wait_ns = 0u64;
    let mut next_write = 0u64;
    let mode = cfg.mode;
    loop {
        let ns = epoch.elapsed().as_nanos() as u64;
        loop_ns += ns - prev;
        if prev_busy {
            busy_ns += ns - prev;
        }
        prev = ns;
        if util::stop_requested() {
            break;
        }
        let now_ms = (ns / 1_000_000) as u32;
        let mut n = 0;
        let got = link.receive(BATCH, |frame| {
            if let Some(len) = answer(frame, mode, now_ms, &mut stage[n]) {
                lens[n] = len;
                n += 1;
            }
        });
        received += got as u64;
        for (buf, &len) in stage.iter().zip(&lens).take(n) {
            if link.transmit(|out| {
                out[..len].copy_from_slice(&buf[..len]);
                len
            }) {
                answered += 1;
            }
        }
        if n > 0 {
            link.flush();
        }
        prev_busy = got > 0;
        // Like the engine's idle mode (what its prefer-busy falls back to on veth): spin a
        // while, then wait on the socket, so the core is left to the kernel's receive path
        // (the NAPI kthread pinned beside us) when there is nothing to answer.
        if got > 0 {
            empty = 0;
        } else {
            empty += 1;
            if empty >= IDLE_SPINS {
                let t = epoch.elapsed().as_nanos() as u64;
                let _ = link.wait_readable(1);
                wait_ns += (epoch.elapsed().as_nanos() as u64).saturating_sub(t);
            }
        }
        if ns >= next_write {
            next_write = ns + 100_000_000;
            write_stats(&cfg, [busy_ns, loop_ns, wait_ns], received, answered);
        }
    }
    write_stats(&cfg, [busy_ns, loop_ns, wait_ns], received, answered);
    drop(steering);
    Ok(())
}

/// `times`: busy_ns, loop_ns, wait_ns (as the engine's stats file names them).
fn write_stats(cfg: &ReflectorConfig, times: [u64; 3], rx: u64, tx: u64) {
    let [busy_ns, loop_ns, wait_ns] = times;
    let Some(path) = &cfg.stats else { return };
    let v = serde_json::json!({
        "server": "reflector",
        "rx_frames": rx,
        "tx_frames": tx,
        "time_wait": 0,
        "cores": [{ "core": cfg.core, "busy_ns": busy_ns, "loop_ns": loop_ns, "wait_ns": wait_ns }],
    });
    let tmp = path.with_extension("tmp");
    if std::fs::write(&tmp, v.to_string() + "\n").is_ok() {
        let _ = std::fs::rename(&tmp, path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use xtcp::wire::EthernetAddress;

    const A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
    const B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
    const IP_A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const IP_B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn seg(control: TcpControl, seq: u32, ack: Option<u32>, payload: &[u8]) -> Vec<u8> {
        let r = TcpRepr {
            src_port: 40000,
            dst_port: 8080,
            control,
            psh: false,
            seq_number: SeqNumber(seq),
            ack_number: ack.map(SeqNumber),
            window_len: 1000,
            window_scale: None,
            max_seg_size: None,
            sack_permitted: false,
            sack_ranges: [None; 3],
            timestamp: Some(TcpTimestamp {
                tsval: 77,
                tsecr: 0,
            }),
            payload,
        };
        let mut buf = vec![0u8; 256];
        let n = emit_tcp_frame(&mut buf, A, B, IP_A, IP_B, &r).unwrap();
        buf.truncate(n);
        buf
    }

    fn reply(frame: &[u8], mode: ReflectMode) -> Option<Vec<u8>> {
        let mut out = vec![0u8; FRAME];
        let n = answer(frame, mode, 5, &mut out)?;
        out.truncate(n);
        Some(out)
    }

    #[test]
    fn syn_gets_syn_ack() {
        let r = reply(&seg(TcpControl::Syn, 1000, None, b""), ReflectMode::Echo).unwrap();
        let f = parse_tcp_frame(&r).unwrap();
        assert_eq!((f.eth.src_addr, f.eth.dst_addr), (B, A));
        assert_eq!((f.ip.src_addr, f.ip.dst_addr), (IP_B, IP_A));
        assert_eq!((f.tcp.src_port, f.tcp.dst_port), (8080, 40000));
        assert_eq!(f.tcp.control, TcpControl::Syn);
        assert_eq!(f.tcp.ack_number, Some(SeqNumber(1001)));
        assert_eq!(f.tcp.max_seg_size, Some(1460));
        assert_eq!(f.tcp.timestamp.unwrap().tsecr, 77);
    }

    #[test]
    fn data_fin_and_acks() {
        // Echo: data comes back at our sequence number (their ack), acknowledged.
        let r = reply(
            &seg(TcpControl::None, 1001, Some(9), b"hi"),
            ReflectMode::Echo,
        )
        .unwrap();
        let f = parse_tcp_frame(&r).unwrap();
        assert_eq!(f.tcp.payload, b"hi");
        assert_eq!(f.tcp.seq_number, SeqNumber(9));
        assert_eq!(f.tcp.ack_number, Some(SeqNumber(1003)));
        assert_eq!(f.tcp.control, TcpControl::None);
        // Echo: the client's FIN (with its handshake ACK) gets FIN-ACK.
        let r = reply(&seg(TcpControl::Fin, 1001, Some(9), b""), ReflectMode::Echo).unwrap();
        let f = parse_tcp_frame(&r).unwrap();
        assert_eq!(f.tcp.control, TcpControl::Fin);
        assert_eq!(f.tcp.ack_number, Some(SeqNumber(1002)));
        // respond-close: a request gets the response and our FIN.
        let r = reply(
            &seg(TcpControl::None, 1001, Some(9), b"GET / HTTP/1.1\r\n\r\n"),
            ReflectMode::RespondClose,
        )
        .unwrap();
        let f = parse_tcp_frame(&r).unwrap();
        assert_eq!(f.tcp.payload, RESPONSE);
        assert_eq!(f.tcp.control, TcpControl::Fin);
        // respond-close: the client's FIN after ours gets a plain ACK.
        let r = reply(
            &seg(TcpControl::Fin, 1019, Some(70), b""),
            ReflectMode::RespondClose,
        )
        .unwrap();
        let f = parse_tcp_frame(&r).unwrap();
        assert_eq!(f.tcp.control, TcpControl::None);
        assert_eq!(f.tcp.ack_number, Some(SeqNumber(1020)));
        // Pure ACKs, RSTs and garbage get nothing.
        assert!(
            reply(
                &seg(TcpControl::None, 1001, Some(9), b""),
                ReflectMode::Echo
            )
            .is_none()
        );
        assert!(reply(&seg(TcpControl::Rst, 1001, Some(9), b""), ReflectMode::Echo).is_none());
        assert!(reply(&[0u8; 20], ReflectMode::Echo).is_none());
    }
}
