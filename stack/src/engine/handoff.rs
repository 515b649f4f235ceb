//! Frames that reach the wrong core, handed to the core that owns their connection.
//!
//! A core's active opens use source ports that tell which core owns them ([`Ownership`]):
//! where the NIC's RSS key and indirection table are known (read at start), the owner of a
//! tuple is the queue that table sends its replies to, and each core picks only ports whose
//! replies come back to itself (`StackConfig::rss`); where they are not (veth with a kernel
//! peer, a NIC without RSS), each core owns a disjoint slice of the ephemeral range. Either
//! way any core can compute the owner of a received segment from its destination port and
//! addresses alone, with no shared state.
//!
//! A reply that arrives on another queue anyway (veth picks the receive queue from the
//! sender's transmit queue; an indirection table changed at run time) is copied into a
//! bounded lock-free queue for its owner ([`Handoff`], one queue per ordered pair of cores,
//! as Seastar's native stack forwards packets to the owning shard), and the owner receives
//! it on its next poll before its own socket's frames. A full queue drops the frame (TCP
//! recovers it like any loss) and counts it. Passive opens are not handed off: the core
//! that received the SYN owns the connection, and the peer's later segments of the same
//! flow hash to the same queue.
//!
//! Per frame: one classification (Ethernet, IPv4 and TCP headers read in place, no checksum)
//! for frames to our ephemeral range only; a copy for frames handed off; no locks, no
//! allocation, no syscalls.

use crossbeam_queue::ArrayQueue;

use crate::link::Link;
use crate::tcp::rss::Rss;
use crate::wire::ethernet::{EtherType, EthernetFrame};
use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{Ipv6Packet, Ipv6Repr, next_header};
use crate::wire::tcp::TcpPacket;
use crate::wire::vlan::{TPID_8021Q, VlanPacket};

/// Largest frame handed between cores (a standard Ethernet frame without FCS, with one
/// 802.1Q tag; larger frames are dropped and counted).
pub const HANDOFF_FRAME: usize = 1518;
/// Frames in flight per ordered pair of cores.
pub const HANDOFF_DEPTH: usize = 512;

/// Which core owns a tuple of one of our active opens.
#[derive(Debug, Clone)]
pub struct Ownership {
    queues: u32,
    first: u16,
    count: u32,
    rss: Option<Rss>,
}

impl Ownership {
    /// `range`: the engine's whole ephemeral range; `rss`: the device's table, if known.
    pub fn new(queues: u32, range: core::ops::RangeInclusive<u16>, rss: Option<Rss>) -> Self {
        let first = *range.start();
        let count = u32::from(*range.end()).saturating_sub(u32::from(first)) + 1;
        Ownership {
            queues: queues.max(1),
            first,
            count,
            rss,
        }
    }

    /// Core `queue`'s slice of the ephemeral range when ports are sliced (no RSS): the
    /// whole range with RSS, where the port's hash decides.
    pub fn port_slice(&self, queue: u32) -> core::ops::RangeInclusive<u16> {
        if self.rss.is_some() || self.queues == 1 {
            let last = u32::from(self.first) + self.count - 1;
            return self.first..=last as u16;
        }
        let per = self.count / self.queues;
        let start = u32::from(self.first) + queue * per;
        let end = if queue + 1 == self.queues {
            u32::from(self.first) + self.count - 1
        } else {
            start + per - 1
        };
        start as u16..=end as u16
    }

    pub fn rss(&self) -> Option<&Rss> {
        self.rss.as_ref()
    }

    /// The core that owns a segment arriving for local port `local_port` from `remote`;
    /// `None` when the port is not in our ephemeral range (a listener's connection).
    pub fn owner(
        &self,
        local: core::net::Ipv4Addr,
        local_port: u16,
        remote: core::net::Ipv4Addr,
        remote_port: u16,
    ) -> Option<u32> {
        let off = u32::from(local_port).checked_sub(u32::from(self.first))?;
        if off >= self.count {
            return None;
        }
        Some(match &self.rss {
            Some(rss) => u32::from(rss.rx_queue_v4(local, local_port, remote, remote_port)),
            None => (off / (self.count / self.queues).max(1)).min(self.queues - 1),
        })
    }

    /// [`Ownership::owner`] for an IPv6 segment.
    pub fn owner6(
        &self,
        local: core::net::Ipv6Addr,
        local_port: u16,
        remote: core::net::Ipv6Addr,
        remote_port: u16,
    ) -> Option<u32> {
        let off = u32::from(local_port).checked_sub(u32::from(self.first))?;
        if off >= self.count {
            return None;
        }
        Some(match &self.rss {
            Some(rss) => u32::from(rss.rx_queue(local, local_port, remote, remote_port)),
            None => (off / (self.count / self.queues).max(1)).min(self.queues - 1),
        })
    }

    /// The owner of a received frame, read from its headers in place; `None` for anything
    /// not a TCP segment to our ephemeral range (malformed frames included: the stacks
    /// count those). A frame with one VLAN tag is read past it (the stack checks the VID).
    /// IPv6: past the extension headers the stack accepts.
    pub fn owner_of_frame(&self, frame: &[u8]) -> Option<u32> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let (ethertype, payload) = match eth.ethertype() {
            t if u16::from(t) == TPID_8021Q => {
                let tag = VlanPacket::new_checked(eth.payload()).ok()?;
                (tag.ethertype(), tag.payload())
            }
            t => (t, eth.payload()),
        };
        match ethertype {
            EtherType::Ipv4 => {}
            EtherType::Ipv6 => return self.owner_of_ipv6(payload),
            _ => return None,
        }
        let ip = Ipv4Packet::new_checked(payload).ok()?;
        if ip.protocol() != crate::wire::ipv4::PROTOCOL_TCP {
            return None;
        }
        let tcp = TcpPacket::new_checked(ip.payload()).ok()?;
        self.owner(ip.dst_addr(), tcp.dst_port(), ip.src_addr(), tcp.src_port())
    }

    /// IPv6: past the extension headers the stack accepts (the same walk as the stack's,
    /// off the common path: only when the first Next Header is not TCP).
    fn owner_of_ipv6(&self, packet: &[u8]) -> Option<u32> {
        let ip = Ipv6Packet::new_checked(packet).ok()?;
        let payload = ip.payload();
        let tcp = if ip.next_header() == next_header::TCP {
            payload
        } else {
            let repr = Ipv6Repr::parse(&ip).ok()?;
            if repr.next_header != next_header::TCP {
                return None;
            }
            payload.get(payload.len().checked_sub(repr.payload_len)?..)?
        };
        let tcp = TcpPacket::new_checked(tcp).ok()?;
        self.owner6(ip.dst_addr(), tcp.dst_port(), ip.src_addr(), tcp.src_port())
    }
}

/// One handed-off frame.
struct Slot {
    len: u16,
    data: [u8; HANDOFF_FRAME],
}

/// The queues between every ordered pair of cores; shared by all of them.
pub struct Handoff {
    queues: u32,
    pairs: Vec<ArrayQueue<Slot>>,
}

impl Handoff {
    pub fn new(queues: u32) -> Handoff {
        let n = queues as usize;
        Handoff {
            queues,
            pairs: (0..n * n).map(|_| ArrayQueue::new(HANDOFF_DEPTH)).collect(),
        }
    }

    /// Whether frames wait for core `me` (a core about to sleep checks this first).
    pub fn has_pending(&self, me: u32) -> bool {
        (0..self.queues).any(|from| from != me && !self.pair(from, me).is_empty())
    }

    fn pair(&self, from: u32, to: u32) -> &ArrayQueue<Slot> {
        &self.pairs[(from * self.queues + to) as usize]
    }
}

/// One core's handoff counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoffStats {
    /// Frames this core received for another core and queued for it.
    pub rx_handoffs_out: u64,
    /// Frames other cores queued for this core, received here.
    pub rx_handoffs_in: u64,
    /// Frames for another core dropped: its queue was full, or the frame too large.
    pub rx_handoff_drops: u64,
}

/// Core `me`'s view of its link: frames other cores handed over first, then its own
/// socket's, minus those it hands to their owners. Transmission goes straight to the link.
pub struct HandoffLink<'a, L> {
    pub link: &'a mut L,
    pub me: u32,
    pub hub: &'a Handoff,
    pub owners: &'a Ownership,
    pub stats: &'a mut HandoffStats,
}

impl<L: Link> Link for HandoffLink<'_, L> {
    fn max_frame_len(&self) -> usize {
        self.link.max_frame_len()
    }

    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, mut f: F) -> usize {
        let mut n = 0;
        for from in 0..self.hub.queues {
            if from == self.me {
                continue;
            }
            let q = self.hub.pair(from, self.me);
            while n < budget {
                let Some(slot) = q.pop() else { break };
                f(&slot.data[..usize::from(slot.len)]);
                self.stats.rx_handoffs_in += 1;
                n += 1;
            }
        }
        if n >= budget {
            return n;
        }
        let (me, hub, owners, stats) = (self.me, self.hub, self.owners, &mut *self.stats);
        n + self
            .link
            .receive(budget - n, |frame| match owners.owner_of_frame(frame) {
                Some(owner) if owner != me => {
                    if frame.len() > HANDOFF_FRAME {
                        stats.rx_handoff_drops += 1;
                        return;
                    }
                    let mut slot = Slot {
                        len: frame.len() as u16,
                        data: [0; HANDOFF_FRAME],
                    };
                    slot.data[..frame.len()].copy_from_slice(frame);
                    match hub.pair(me, owner).push(slot) {
                        Ok(()) => stats.rx_handoffs_out += 1,
                        Err(_) => stats.rx_handoff_drops += 1,
                    }
                }
                _ => f(frame),
            })
    }

    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        self.link.transmit(f)
    }

    fn flush(&mut self) {
        self.link.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::memory::{MemoryLink, MemoryLinkConfig};
    use crate::tcp::rss::MICROSOFT_KEY;
    use crate::wire::{EthernetAddress, Ipv4Addr, SeqNumber, TcpRepr, emit_tcp_frame};

    const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
    const REMOTE: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);

    fn frame(local_port: u16) -> Vec<u8> {
        let repr = TcpRepr {
            src_port: 80,
            dst_port: local_port,
            seq_number: SeqNumber(1),
            ack_number: Some(SeqNumber(1)),
            ..TcpRepr::default()
        };
        let mut buf = vec![0u8; 128];
        let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
        let n = emit_tcp_frame(&mut buf, mac, mac, REMOTE, LOCAL, &repr).unwrap();
        buf.truncate(n);
        buf
    }

    #[test]
    fn slices_partition_the_range_and_name_their_owner() {
        let o = Ownership::new(3, 32768..=60999, None);
        let slices: Vec<_> = (0..3).map(|q| o.port_slice(q)).collect();
        assert_eq!(*slices[0].start(), 32768);
        assert_eq!(*slices[2].end(), 60999);
        for q in 0..3u32 {
            for port in [*slices[q as usize].start(), *slices[q as usize].end()] {
                assert_eq!(o.owner(LOCAL, port, REMOTE, 80), Some(q), "port {port}");
            }
        }
        assert_eq!(*slices[0].end() + 1, *slices[1].start());
        assert_eq!(o.owner(LOCAL, 80, REMOTE, 40000), None, "a listener's port");
    }

    #[test]
    fn with_rss_the_owner_is_the_reply_queue() {
        let rss = Rss::new(MICROSOFT_KEY.to_vec(), vec![0, 1, 2, 3]).unwrap();
        let o = Ownership::new(4, 32768..=60999, Some(rss.clone()));
        assert_eq!(o.port_slice(2), 32768..=60999);
        for port in 40000..40100 {
            let want = u32::from(rss.rx_queue_v4(LOCAL, port, REMOTE, 80));
            assert_eq!(o.owner_of_frame(&frame(port)), Some(want));
        }
    }

    #[test]
    fn a_tagged_frame_has_the_same_owner() {
        let o = Ownership::new(3, 32768..=60999, None);
        for q in 0..3u32 {
            let port = *o.port_slice(q).start();
            let mut f = frame(port);
            f.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
            assert_eq!(o.owner_of_frame(&f), Some(q));
            f[16..18].copy_from_slice(&[0x08, 0x06]); // ARP inside the tag
            assert_eq!(o.owner_of_frame(&f), None);
            assert_eq!(o.owner_of_frame(&f[..16]), None, "tag cut short");
        }
    }

    /// An IPv6 segment has the owner of its local port too: untagged, behind a tag, and past
    /// a Destination Options header; with RSS, the queue the Toeplitz hash names.
    #[test]
    fn ipv6_frames_have_owners() {
        use crate::wire::frame::emit_tcp6_frame;
        let (local, remote): (core::net::Ipv6Addr, core::net::Ipv6Addr) =
            ("fd00::1".parse().unwrap(), "fd00::2".parse().unwrap());
        let frame6 = |port: u16| {
            let repr = TcpRepr {
                src_port: 80,
                dst_port: port,
                seq_number: SeqNumber(1),
                ack_number: Some(SeqNumber(1)),
                ..TcpRepr::default()
            };
            let mut buf = vec![0u8; 160];
            let mac = EthernetAddress([2, 0, 0, 0, 0, 1]);
            let n = emit_tcp6_frame(&mut buf, mac, mac, remote, local, &repr).unwrap();
            buf.truncate(n);
            buf
        };
        let o = Ownership::new(3, 32768..=60999, None);
        for q in 0..3u32 {
            let port = *o.port_slice(q).start();
            let f = frame6(port);
            assert_eq!(o.owner_of_frame(&f), Some(q));
            let mut tagged = f.clone();
            tagged.splice(12..12, [0x81, 0x00, 0x00, 0x64]);
            assert_eq!(o.owner_of_frame(&tagged), Some(q));
            // Destination Options (8 bytes: Next Header TCP, PadN) before the TCP header.
            let mut ext = f.clone();
            ext.splice(54..54, [6, 0, 1, 4, 0, 0, 0, 0]);
            ext[20] = 60;
            let len = u16::from_be_bytes([ext[18], ext[19]]) + 8;
            ext[18..20].copy_from_slice(&len.to_be_bytes());
            assert_eq!(o.owner_of_frame(&ext), Some(q));
            // A Fragment header (the stack takes none): no owner, processed where it lands.
            ext[20] = 44;
            assert_eq!(o.owner_of_frame(&ext), None);
            assert_eq!(o.owner_of_frame(&f[..60]), None, "cut short");
        }
        // A listener's port (outside the range): nobody's.
        assert_eq!(o.owner_of_frame(&frame6(80)), None);
        let rss = Rss::new(MICROSOFT_KEY.to_vec(), vec![0, 1, 2, 3]).unwrap();
        let o = Ownership::new(4, 32768..=60999, Some(rss.clone()));
        for port in [32768u16, 40000, 50001, 60999] {
            let want = u32::from(rss.rx_queue(local, port, remote, 80));
            assert_eq!(o.owner_of_frame(&frame6(port)), Some(want));
        }
    }

    fn core<'a>(
        link: &'a mut MemoryLink,
        me: u32,
        hub: &'a Handoff,
        owners: &'a Ownership,
        stats: &'a mut HandoffStats,
    ) -> HandoffLink<'a, MemoryLink> {
        HandoffLink {
            link,
            me,
            hub,
            owners,
            stats,
        }
    }

    /// Core 0 receives frames for both cores: its own go to its stack, core 1's cross over,
    /// are received by core 1 on its next poll, and a full queue drops and counts.
    #[test]
    fn frames_cross_to_their_owner_and_overflow_is_counted() {
        let o = Ownership::new(2, 32768..=60999, None);
        let hub = Handoff::new(2);
        let mine = *o.port_slice(0).start();
        let theirs = *o.port_slice(1).start();
        let mut link0 = MemoryLink::new(MemoryLinkConfig::default());
        let mut link1 = MemoryLink::new(MemoryLinkConfig::default());
        let (mut s0, mut s1) = (HandoffStats::default(), HandoffStats::default());
        link0.push_rx(&frame(mine));
        link0.push_rx(&frame(theirs));
        link0.push_rx(&frame(80));
        let mut got0 = Vec::new();
        let mut l0 = core(&mut link0, 0, &hub, &o, &mut s0);
        l0.receive(64, |f| got0.push(f.to_vec()));
        assert_eq!(got0, [frame(mine), frame(80)]);
        assert_eq!(s0.rx_handoffs_out, 1);
        let mut got1 = Vec::new();
        let mut l1 = core(&mut link1, 1, &hub, &o, &mut s1);
        l1.receive(64, |f| got1.push(f.to_vec()));
        assert_eq!(got1, [frame(theirs)]);
        assert_eq!(s1.rx_handoffs_in, 1);

        // Nobody drains core 1's queue: beyond its depth, frames are dropped and counted.
        for _ in 0..HANDOFF_DEPTH + 5 {
            link0.push_rx(&frame(theirs));
        }
        let mut l0 = core(&mut link0, 0, &hub, &o, &mut s0);
        while l0.receive(64, |_| panic!("not core 0's")) > 0 {}
        assert_eq!(s0.rx_handoffs_out, 1 + HANDOFF_DEPTH as u64);
        assert_eq!(s0.rx_handoff_drops, 5);
    }
}
