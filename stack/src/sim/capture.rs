//! What the simulator records about each frame copy, and its counters.

use crate::time::Instant;
use core::fmt;

/// What finally happened to one copy of a frame on one directed link.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Fate {
    /// Placed in the receiver's RX queue.
    Delivered,
    /// Dropped on the wire by the configured loss probability.
    Lost,
    /// Dropped at the tail of a full bottleneck queue (`rate_bps` with `queue_limit_bytes`).
    QueueDropped,
    /// Arrived but the receiver's RX queue was full (or the frame exceeded its
    /// `max_frame_len`).
    RxDropped,
    /// No node has the destination MAC address, or the frame is shorter than an Ethernet
    /// header. `to` is `None`.
    NoRoute,
}

impl fmt::Display for Fate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Fate::Delivered => "delivered",
            Fate::Lost => "lost",
            Fate::QueueDropped => "queue-drop",
            Fate::RxDropped => "rx-drop",
            Fate::NoRoute => "no-route",
        })
    }
}

/// The bit the simulator flipped in a corrupted frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Corruption {
    /// Byte offset in the frame (always past the 14-byte Ethernet header when the frame is
    /// longer than that: the FCS would catch header damage on a real wire).
    pub offset: usize,
    /// The single bit flipped: `frame[offset] ^= mask`.
    pub mask: u8,
}

/// One captured frame copy. Drops are recorded when they happen (at send time, except
/// [`Fate::RxDropped`]); deliveries when the frame reaches the receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedFrame {
    /// When the fate was decided: arrival for delivered and RX-dropped frames, send time
    /// otherwise.
    pub time: Instant,
    /// When the sender's poll produced the frame.
    pub sent: Instant,
    /// Sending node index.
    pub from: usize,
    /// Receiving node index; `None` for [`Fate::NoRoute`].
    pub to: Option<usize>,
    pub fate: Fate,
    /// This copy is the extra one made by the `duplicate` fault.
    pub duplicate: bool,
    /// This copy was given the extra `reorder` delay.
    pub reordered: bool,
    /// Set when a bit was flipped; `data` holds the corrupted bytes.
    pub corruption: Option<Corruption>,
    /// The frame as the receiver sees (or would have seen) it.
    pub data: Vec<u8>,
}

impl CapturedFrame {
    /// One tcpdump-like line: time, path, fate and flags, then the decoded frame.
    pub fn line(&self) -> String {
        let to = match self.to {
            Some(t) => format!("n{t}"),
            None => "?".to_string(),
        };
        let mut flags = String::new();
        if self.duplicate {
            flags.push_str(" dup");
        }
        if self.reordered {
            flags.push_str(" reordered");
        }
        if let Some(c) = self.corruption {
            flags.push_str(&format!(" corrupt@{}^{:#04x}", c.offset, c.mask));
        }
        format!(
            "{:>12} n{}>{:<3} {:<10}{} | {}",
            self.time.to_string(),
            self.from,
            to,
            self.fate,
            flags,
            super::describe(&self.data)
        )
    }
}

/// Frame counters of the simulator, globally and per directed link.
///
/// `sent` counts frames taken from senders globally, but copies entering the link per directed
/// link (a broadcast to three nodes is one global send and three link sends). Every other
/// counter counts copies. A frame copy ends in exactly one of `delivered`, `lost`,
/// `queue_dropped`, `rx_dropped`, `no_route` (or is still in flight); `duplicated`,
/// `corrupted` and `reordered` count copies that got that fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SimStats {
    pub sent: u64,
    pub sent_bytes: u64,
    pub delivered: u64,
    pub delivered_bytes: u64,
    pub lost: u64,
    pub queue_dropped: u64,
    pub rx_dropped: u64,
    pub no_route: u64,
    pub duplicated: u64,
    pub corrupted: u64,
    pub reordered: u64,
}

impl SimStats {
    pub(crate) fn count_fate(&mut self, fate: Fate, bytes: usize) {
        match fate {
            Fate::Delivered => {
                self.delivered += 1;
                self.delivered_bytes += bytes as u64;
            }
            Fate::Lost => self.lost += 1,
            Fate::QueueDropped => self.queue_dropped += 1,
            Fate::RxDropped => self.rx_dropped += 1,
            Fate::NoRoute => self.no_route += 1,
        }
    }
}
