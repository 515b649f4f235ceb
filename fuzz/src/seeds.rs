//! Corpus seeds from a simulator capture: a client (node 0) opens connections to a listener
//! on node 1 (the harness's addresses), sends a request, reads the echo and closes, over a
//! link with loss and reordering. Every captured frame seeds the wire targets; the frames
//! delivered to node 1, with the clock jumps between them, seed `stack_receive`.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use xtcp::link::memory::MemoryLink;
use xtcp::sim::{Fate, Host, LinkConfig, SimConfig, Simulation};
use xtcp::stack::{ConnHandle, ListenerId, Stack, StackConfig};
use xtcp::tcp::Event;
use xtcp::time::{Duration, Instant};
use xtcp::wire::EthernetAddress;
use xtcp::wire::icmpv4::{self, Icmpv4Message, Unreachable};

use crate::{PORT, Record};

struct Peer {
    stack: Stack,
    listener: Option<ListenerId>,
    target: Option<SocketAddrV4>,
    left: u32,
    current: Option<ConnHandle>,
}

impl Host for Peer {
    fn poll(&mut self, now: Instant, link: &mut MemoryLink) {
        self.stack.poll(now, link);
        if let Some(l) = self.listener {
            while self.stack.accept(l).is_some() {}
        }
        while let Some((h, e)) = self.stack.poll_event() {
            match e {
                Event::Connected if self.target.is_some() => {
                    let _ = self.stack.send(h, &[0x41; 300]);
                }
                Event::Readable => {
                    let data = self
                        .stack
                        .recv_slice(h)
                        .map(<[u8]>::to_vec)
                        .unwrap_or_default();
                    let _ = self.stack.consume(h, data.len());
                    if self.listener.is_some() {
                        let _ = self.stack.send(h, &data);
                    } else {
                        let _ = self.stack.close(h);
                    }
                }
                Event::PeerClosed if self.listener.is_some() => {
                    let _ = self.stack.close(h);
                }
                Event::Closed | Event::Reset | Event::TimedOut => {
                    if self.current == Some(h) {
                        self.current = None;
                    }
                }
                _ => {}
            }
        }
        if let Some(t) = self.target
            && self.current.is_none()
            && self.left > 0
        {
            self.left -= 1;
            self.current = self.stack.connect(now, None, t).ok();
        }
        self.stack.flush(now, link);
    }
    fn poll_at(&self) -> Option<Instant> {
        self.stack.poll_at()
    }
}

/// Runs the scenario with `seed`; returns the capture as (time, to node, frame).
pub fn capture(
    seed: u64,
    connections: u32,
    loss: f64,
) -> Vec<(Instant, Option<usize>, Fate, Vec<u8>)> {
    let mut sim = Simulation::new(SimConfig {
        seed,
        capture: true,
        ..SimConfig::default()
    });
    sim.set_all_links(LinkConfig {
        loss,
        reorder: loss,
        ..LinkConfig::with_latency(Duration::from_millis(1))
    });
    let mk = |sim: &Simulation, node: usize| {
        let mut secret = [0u8; 32];
        secret[0] = node as u8 + 1;
        Stack::new(
            StackConfig {
                mac: sim.mac(node),
                ips: vec![sim.ipv4(node)],
                secret,
                ..StackConfig::default()
            },
            sim.now(),
        )
    };
    let target = SocketAddrV4::new(sim.ipv4(1), PORT);
    let mut server = mk(&sim, 1);
    let l = server.listen(target).expect("listen");
    let mut hosts = [
        Peer {
            stack: mk(&sim, 0),
            listener: None,
            target: Some(target),
            left: connections,
            current: None,
        },
        Peer {
            stack: server,
            listener: Some(l),
            target: None,
            left: 0,
            current: None,
        },
    ];
    sim.run_for(&mut hosts, Duration::from_secs(20));
    sim.capture()
        .iter()
        .map(|c| (c.time, c.to, c.fate, c.data.clone()))
        .collect()
}

/// A router's Fragmentation Needed (next-hop MTU 1280) back to the sender of `frame`, an
/// IPv4 frame of the stack's; `None` for anything else.
fn frag_needed_for(frame: &[u8]) -> Option<Vec<u8>> {
    if frame.len() < 14 + 28 || frame[12..14] != [0x08, 0x00] {
        return None;
    }
    let l3 = &frame[14..];
    let quote = l3.get(..usize::from(l3[0] & 0x0f) * 4 + icmpv4::QUOTED_PAYLOAD_LEN)?;
    let src_mac = EthernetAddress(frame[6..12].try_into().ok()?);
    let src_ip = Ipv4Addr::new(l3[12], l3[13], l3[14], l3[15]);
    let router = (EthernetAddress([2, 0, 0, 0, 0, 0xfe]), Ipv4Addr::new(10, 0, 0, 254));
    let message = Icmpv4Message::DstUnreachable(Unreachable::FragNeeded { next_hop_mtu: 1280 });
    let mut buf = vec![0u8; 14 + 20 + 8 + quote.len()];
    let n = icmpv4::emit_error_frame(&mut buf, router, (src_mac, src_ip), message, quote).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// Writes the seed corpora under `dir/<target>/`. Returns the number of files.
pub fn write_corpora(dir: &Path) -> std::io::Result<usize> {
    let mut files = 0;
    let mut put = |target: &str, name: String, data: &[u8]| -> std::io::Result<()> {
        let d = dir.join(target);
        std::fs::create_dir_all(&d)?;
        std::fs::write(d.join(name), data)?;
        files += 1;
        Ok(())
    };
    for (seed, conns, loss) in [(1u64, 3u32, 0.0), (2, 4, 0.1)] {
        let cap = capture(seed, conns, loss);
        let mut stream = Vec::new();
        let mut last = Instant::ZERO;
        for (i, (t, to, fate, frame)) in cap.iter().enumerate() {
            let name = format!("sim{seed}-{i:04}");
            put("wire_ethernet", name.clone(), frame)?;
            put("wire_frame", name.clone(), frame)?;
            // The same frame on VLAN 100 (PCP 5), so the fuzzer starts from tagged frames too.
            let mut tagged = frame.clone();
            tagged.splice(12..12, [0x81, 0x00, 0xa0, 0x64]);
            put("wire_ethernet", format!("{name}-vlan"), &tagged)?;
            put("wire_frame", format!("{name}-vlan"), &tagged)?;
            if frame.len() > 14 {
                let l3 = &frame[14..];
                if frame[12..14] == [0x08, 0x06] {
                    put("wire_arp", name.clone(), l3)?;
                } else {
                    put("wire_ipv4", name.clone(), l3)?;
                    let ihl = usize::from(l3[0] & 0x0f) * 4;
                    if l3.len() > ihl && ihl >= 20 {
                        let mut seg = l3[12..20].to_vec(); // the pseudo-header addresses
                        seg.extend_from_slice(&l3[ihl..]);
                        if seg.len() > 28 {
                            let off = usize::from(seg[8 + 12] >> 4) * 4;
                            if off > 20 && seg.len() >= 8 + off {
                                put("wire_tcp_options", name.clone(), &seg[8 + 20..8 + off])?;
                            }
                        }
                        put("wire_tcp", name.clone(), &seg)?;
                    }
                }
            }
            // Every 4th segment the stack sent comes back quoted in a Fragmentation Needed
            // (in or out of the replayed connections' windows): seeds for the ICMP parser
            // and the stack's ICMP path.
            let icmp = (*to == Some(0) && i % 4 == 0)
                .then(|| frag_needed_for(frame))
                .flatten();
            if let Some(icmp) = &icmp {
                put("wire_icmpv4", name.clone(), &icmp[34..])?;
            }
            let replayed = match (&icmp, *to == Some(1) && *fate == Fate::Delivered) {
                (Some(icmp), _) => Some(&icmp[..]),
                (None, true) => Some(&frame[..]),
                (None, false) => None,
            };
            if let Some(frame) = replayed {
                let ms = t
                    .saturating_since(last)
                    .as_millis()
                    .min(u128::from(u16::MAX)) as u16;
                if ms > 0 {
                    Record::Advance(ms).encode(&mut stream);
                }
                last = *t;
                Record::Raw(frame).encode(&mut stream);
            }
        }
        put("stack_receive", format!("sim{seed}-replay"), &stream)?;
        // The same replay cut in pieces, so that short inputs start from real traffic too.
        for (k, chunk) in stream.chunks(512).enumerate().take(8) {
            put("stack_receive", format!("sim{seed}-part{k}"), chunk)?;
        }
    }
    Ok(files)
}
