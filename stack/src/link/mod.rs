//! Frame I/O: the [`Link`] trait, batched and zero-copy, and its in-memory implementation.
//!
//! Call order per poll of a stack, for every implementation:
//! 1. [`Link::receive`] hands out up to `budget` received frames, each borrowed in place for
//!    the duration of one callback call; the frame is recycled (e.g. returned to the AF_XDP
//!    fill ring) when the callback returns.
//! 2. [`Link::transmit`] hands out one writable frame at a time; the callback writes the frame
//!    and returns its length (0 = nothing to send, the frame is recycled).
//! 3. [`Link::flush`] makes everything transmitted since the last flush visible to the
//!    peer (the AF_XDP TX kick): once per batch, never per frame.
//!
//! The core cannot tell implementations apart: the in-memory link (tests, simulator, benches)
//! and the AF_XDP socket behave the same through this trait.

pub mod memory;

/// A source and sink of Ethernet frames.
pub trait Link {
    /// Largest frame (Ethernet header included, FCS excluded) that `transmit` accepts.
    fn max_frame_len(&self) -> usize;

    /// Calls `f` for up to `budget` received frames. Returns how many frames were handed out.
    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, f: F) -> usize;

    /// Hands out one writable frame buffer of `max_frame_len()` bytes; `f` returns the length
    /// it wrote. Returns `false` without calling `f` when no TX frame is free (the link counts
    /// it); the caller keeps its state and retries on a later poll.
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool;

    /// Publishes the frames transmitted since the last flush.
    fn flush(&mut self);
}
