//! Packet capture (feature `pcap`): what xtcp receives and sends, written as a pcap file that
//! `tcpdump -r`, `tshark -r` and Wireshark read.
//!
//! Two pieces:
//! - [`PcapFile`]: the writer. Nanosecond timestamps (pcap magic `0xa1b23c4d`), Ethernet link
//!   type, a snap length ([`CaptureConfig::snap_len`]) and a size and packet limit after which
//!   frames are counted, not written. Records are appended to an in-memory buffer and written
//!   to the file once per batch ([`PcapFile::end_batch`]) or when the buffer is full: one
//!   `write` per batch, never one per frame. The file format is written by the `pcap-file`
//!   crate.
//! - [`CaptureLink`]: a [`Link`] wrapper that records every frame handed to the stack by
//!   `receive` and every non-empty frame the stack writes through `transmit`, timestamped with
//!   `CLOCK_REALTIME` (so per-core files merge with `mergecap`). It composes around any link:
//!   the AF_XDP socket in the engine and in the load generator, the in-memory link in tests.
//!   Built with `None` it forwards after one predictable branch per `receive` call and per
//!   `transmit` call (none per received frame; the capturing paths are out of line). The
//!   engine does better: with capture off its cores poll the bare socket (a second
//!   instance of the loop), so an engine without capture runs exactly the code it ran before.
//!
//! The simulator writes its own capture (virtual time) with the same writer:
//! [`crate::sim::Simulation::write_pcap`].
//!
//! Per-core files: the engine gives every queue its own writer (no lock, no cross-core
//! traffic); with one queue the file is exactly the configured path, with several, queue `i`
//! writes `PATH.i` ([`CaptureConfig::path_for_queue`]).
//!
//! Errors: the first write error stops the capture (counted in [`CaptureStats::write_errors`]
//! and kept for [`PcapFile::error`]); the datapath never fails because of the capture.

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};

use crate::link::Link;

/// Where and how much to capture. Defaults are listed on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaptureConfig {
    /// The pcap file (created or truncated).
    pub path: PathBuf,
    /// Bytes of each frame written; the rest is cut (the record keeps the original length).
    /// Default 65535 (whole frames).
    pub snap_len: u32,
    /// Stop writing once the file would exceed this many bytes. Default 1 GiB.
    pub max_bytes: u64,
    /// Stop writing after this many frames. Default unlimited (`u64::MAX`).
    pub max_packets: u64,
    /// Size of the in-memory batch buffer. Default 256 KiB.
    pub buffer_bytes: usize,
}

impl CaptureConfig {
    /// The defaults listed on each field, writing to `path`.
    pub fn new(path: impl Into<PathBuf>) -> CaptureConfig {
        CaptureConfig {
            path: path.into(),
            snap_len: 65535,
            max_bytes: 1 << 30,
            max_packets: u64::MAX,
            buffer_bytes: 256 * 1024,
        }
    }

    /// The file of queue `queue` out of `queues`: the path itself for a single queue,
    /// `PATH.<queue>` otherwise.
    pub fn path_for_queue(&self, queue: u32, queues: u32) -> PathBuf {
        if queues <= 1 {
            self.path.clone()
        } else {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{queue}"));
            PathBuf::from(p)
        }
    }
}

/// Counters of one capture file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CaptureStats {
    /// Frames written (or buffered to be written).
    pub packets: u64,
    /// Bytes of the file, header included.
    pub bytes: u64,
    /// Frames cut to the snap length.
    pub truncated: u64,
    /// Frames not written because a limit was reached or the capture stopped on an error.
    pub skipped: u64,
    /// `write` calls made (batches written).
    pub writes: u64,
    /// Write errors (the capture stops at the first).
    pub write_errors: u64,
}

/// A pcap writer with batched output. See the module docs.
#[derive(Debug)]
pub struct PcapFile {
    file: File,
    buf: Vec<u8>,
    snap_len: u32,
    max_bytes: u64,
    max_packets: u64,
    stats: CaptureStats,
    error: Option<io::Error>,
}

/// Bytes of a pcap record header.
const RECORD_HEADER: usize = 16;
/// Bytes of the pcap file header.
const FILE_HEADER: usize = 24;

impl PcapFile {
    /// Creates (or truncates) the file and writes the pcap header.
    pub fn create(config: &CaptureConfig) -> io::Result<PcapFile> {
        Self::create_at(config, &config.path)
    }

    /// As [`PcapFile::create`], at another path (the per-queue file).
    pub fn create_at(config: &CaptureConfig, path: &Path) -> io::Result<PcapFile> {
        if config.snap_len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "snap length must be positive",
            ));
        }
        let mut file = File::create(path)?;
        let header = PcapHeader {
            version_major: 2,
            version_minor: 4,
            ts_correction: 0,
            ts_accuracy: 0,
            snaplen: config.snap_len,
            datalink: DataLink::ETHERNET,
            ts_resolution: TsResolution::NanoSecond,
            endianness: Endianness::native(),
        };
        let mut head = Vec::with_capacity(FILE_HEADER);
        header.write_to(&mut head).map_err(io::Error::other)?;
        file.write_all(&head)?;
        Ok(PcapFile {
            file,
            buf: Vec::with_capacity(config.buffer_bytes.max(RECORD_HEADER + 64)),
            snap_len: config.snap_len,
            max_bytes: config.max_bytes,
            max_packets: config.max_packets,
            stats: CaptureStats {
                bytes: head.len() as u64,
                ..CaptureStats::default()
            },
            error: None,
        })
    }

    /// Appends one frame, seen at `ts` since the Unix epoch, to the batch. Writes the batch
    /// out first if the frame does not fit in the buffer. Never allocates once the buffer has
    /// its configured capacity.
    pub fn record(&mut self, ts: Duration, frame: &[u8]) {
        let incl = frame.len().min(self.snap_len as usize);
        let size = (RECORD_HEADER + incl) as u64;
        if self.error.is_some()
            || self.stats.packets >= self.max_packets
            || self.stats.bytes + size > self.max_bytes
        {
            self.stats.skipped += 1;
            return;
        }
        if self.buf.len() + size as usize > self.buf.capacity() {
            self.write_out();
        }
        let packet = PcapPacket::new(ts, frame.len() as u32, &frame[..incl]);
        let written = match self.endian() {
            Endianness::Little => packet.write_to::<_, byteorder_slice::LittleEndian>(
                &mut self.buf,
                TsResolution::NanoSecond,
                self.snap_len,
            ),
            Endianness::Big => packet.write_to::<_, byteorder_slice::BigEndian>(
                &mut self.buf,
                TsResolution::NanoSecond,
                self.snap_len,
            ),
        };
        match written {
            Ok(_) => {
                self.stats.packets += 1;
                self.stats.bytes += size;
                if incl < frame.len() {
                    self.stats.truncated += 1;
                }
            }
            // Only a timestamp beyond 2106 gets here: count it, keep capturing.
            Err(_) => self.stats.skipped += 1,
        }
    }

    fn endian(&self) -> Endianness {
        Endianness::native()
    }

    /// Writes the buffered records to the file (one `write_all`); call once per batch.
    pub fn end_batch(&mut self) {
        if !self.buf.is_empty() {
            self.write_out();
        }
    }

    fn write_out(&mut self) {
        if self.error.is_none() {
            self.stats.writes += 1;
            if let Err(e) = self.file.write_all(&self.buf) {
                self.stats.write_errors += 1;
                self.error = Some(e);
            }
        }
        self.buf.clear();
    }

    /// Writes what is buffered and syncs nothing (the kernel's page cache holds it).
    pub fn flush(&mut self) -> io::Result<()> {
        self.end_batch();
        match &self.error {
            Some(e) => Err(io::Error::new(e.kind(), e.to_string())),
            None => Ok(()),
        }
    }

    pub fn stats(&self) -> CaptureStats {
        self.stats
    }

    /// The write error that stopped the capture, if any.
    pub fn error(&self) -> Option<&io::Error> {
        self.error.as_ref()
    }
}

impl Drop for PcapFile {
    fn drop(&mut self) {
        self.end_batch();
    }
}

/// The wall clock as a pcap timestamp.
fn wall_clock() -> Duration {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
}

/// A [`Link`] wrapper that records received and transmitted frames in a [`PcapFile`] (or does
/// nothing but forward, when built with `None`). See the module docs.
#[derive(Debug)]
pub struct CaptureLink<L> {
    inner: L,
    pcap: Option<Box<PcapFile>>,
}

impl<L: Link> CaptureLink<L> {
    /// Wraps `inner`; `pcap: None` forwards every call unchanged.
    pub fn new(inner: L, pcap: Option<PcapFile>) -> CaptureLink<L> {
        CaptureLink {
            inner,
            pcap: pcap.map(Box::new),
        }
    }

    /// Wraps `inner`, capturing into a new file per `config` (none when `config` is `None`).
    pub fn with_config(inner: L, config: Option<&CaptureConfig>) -> io::Result<CaptureLink<L>> {
        let pcap = config.map(PcapFile::create).transpose()?;
        Ok(CaptureLink::new(inner, pcap))
    }

    pub fn inner(&self) -> &L {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut L {
        &mut self.inner
    }

    /// The capture's counters (`None` when capture is off).
    pub fn capture_stats(&self) -> Option<CaptureStats> {
        self.pcap.as_ref().map(|p| p.stats())
    }

    /// Writes out what is buffered.
    pub fn flush_capture(&mut self) -> io::Result<()> {
        self.pcap.as_mut().map_or(Ok(()), |p| p.flush())
    }

    /// Writes out the capture, closes the file, and returns the link.
    pub fn into_inner(self) -> L {
        self.inner
    }
}

impl<L: Link> Link for CaptureLink<L> {
    #[inline]
    fn max_frame_len(&self) -> usize {
        self.inner.max_frame_len()
    }

    #[inline]
    fn receive<F: FnMut(&[u8])>(&mut self, budget: usize, f: F) -> usize {
        match self.pcap.as_deref_mut() {
            None => self.inner.receive(budget, f),
            Some(pcap) => receive_captured(&mut self.inner, pcap, budget, f),
        }
    }

    #[inline]
    fn transmit<F: FnOnce(&mut [u8]) -> usize>(&mut self, f: F) -> bool {
        match self.pcap.as_deref_mut() {
            None => self.inner.transmit(f),
            Some(pcap) => transmit_captured(&mut self.inner, pcap, f),
        }
    }

    #[inline]
    fn flush(&mut self) {
        self.inner.flush();
        if let Some(pcap) = self.pcap.as_deref_mut() {
            pcap.end_batch();
        }
    }
}

// The capturing paths stay out of line, so that with capture off the wrapper's methods are
// one branch around the inner link's call.

#[inline(never)]
fn receive_captured<L: Link, F: FnMut(&[u8])>(
    inner: &mut L,
    pcap: &mut PcapFile,
    budget: usize,
    mut f: F,
) -> usize {
    let n = inner.receive(budget, |frame| {
        pcap.record(wall_clock(), frame);
        f(frame)
    });
    if n > 0 {
        pcap.end_batch();
    }
    n
}

#[inline(never)]
fn transmit_captured<L: Link, F: FnOnce(&mut [u8]) -> usize>(
    inner: &mut L,
    pcap: &mut PcapFile,
    f: F,
) -> bool {
    inner.transmit(|buf| {
        let n = f(buf);
        if n > 0 {
            pcap.record(wall_clock(), &buf[..n.min(buf.len())]);
        }
        n
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::link::memory::MemoryLink;
    use pcap_file::pcap::PcapReader;

    fn tmp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("xtcp-capture-{}-{name}", std::process::id()))
    }

    fn read_all(path: &Path) -> (PcapHeader, Vec<(Duration, u32, Vec<u8>)>) {
        let mut r = PcapReader::new(File::open(path).unwrap()).unwrap();
        let header = r.header();
        let mut out = Vec::new();
        // Raw records: pcap-file's checked reader refuses `orig_len > snaplen`, which is
        // exactly what a cut frame has (tcpdump and tshark read it fine).
        while let Some(p) = r.next_raw_packet() {
            let p = p.unwrap();
            let ts = Duration::new(u64::from(p.ts_sec), p.ts_frac);
            out.push((ts, p.orig_len, p.data.to_vec()));
        }
        (header, out)
    }

    #[test]
    fn nanosecond_records_snap_length_and_limits() {
        let path = tmp("limits");
        let mut cfg = CaptureConfig::new(&path);
        cfg.snap_len = 10;
        cfg.max_packets = 3;
        let mut p = PcapFile::create(&cfg).unwrap();
        p.record(Duration::new(5, 123_456_789), &[1, 2, 3]);
        p.record(Duration::new(6, 1), &[7; 40]);
        p.record(Duration::new(7, 2), &[8; 10]);
        p.record(Duration::new(8, 3), &[9; 4]); // over the packet limit
        let s = p.stats();
        assert_eq!((s.packets, s.truncated, s.skipped), (3, 1, 1));
        assert_eq!(s.writes, 0, "nothing written before the batch ends");
        drop(p);
        let (h, pkts) = read_all(&path);
        assert_eq!(h.ts_resolution, TsResolution::NanoSecond);
        assert_eq!(h.snaplen, 10);
        assert_eq!(h.datalink, DataLink::ETHERNET);
        assert_eq!(pkts.len(), 3);
        assert_eq!(pkts[0], (Duration::new(5, 123_456_789), 3, vec![1, 2, 3]));
        assert_eq!(pkts[1], (Duration::new(6, 1), 40, vec![7; 10]));
        assert_eq!(std::fs::metadata(&path).unwrap().len(), s.bytes);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn size_limit_and_full_buffer() {
        let path = tmp("size");
        let mut cfg = CaptureConfig::new(&path);
        cfg.buffer_bytes = 100; // two 40-byte records
        cfg.max_bytes = (FILE_HEADER + 5 * (RECORD_HEADER + 24)) as u64;
        let mut p = PcapFile::create(&cfg).unwrap();
        for i in 0..8u8 {
            p.record(Duration::from_secs(u64::from(i)), &[i; 24]);
        }
        let s = p.stats();
        assert_eq!((s.packets, s.skipped), (5, 3));
        assert_eq!(s.writes, 2, "written when the buffer filled, not per frame");
        p.end_batch();
        assert_eq!(p.stats().writes, 3);
        drop(p);
        assert_eq!(read_all(&path).1.len(), 5);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), cfg.max_bytes);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn link_wrapper_records_both_directions_once_per_batch() {
        let path = tmp("link");
        let cfg = CaptureConfig::new(&path);
        let mut link = CaptureLink::with_config(MemoryLink::default(), Some(&cfg)).unwrap();
        for i in 0..3u8 {
            assert!(link.inner_mut().push_rx(&[i; 60]));
        }
        let mut seen = 0;
        assert_eq!(link.receive(64, |f| seen += f.len()), 3);
        assert_eq!(seen, 180);
        assert_eq!(link.capture_stats().unwrap().writes, 1);
        assert!(link.transmit(|b| {
            b[..70].fill(9);
            70
        }));
        assert!(link.transmit(|_| 0), "an empty frame is not recorded");
        link.flush();
        let s = link.capture_stats().unwrap();
        assert_eq!((s.packets, s.writes), (4, 2));
        assert_eq!(
            link.inner_mut().pop_tx(|f| f.to_vec()).unwrap(),
            vec![9u8; 70]
        );
        drop(link);
        let pkts = read_all(&path).1;
        assert_eq!(pkts.len(), 4);
        assert_eq!(pkts[3].2, vec![9u8; 70]);
        assert!(pkts.windows(2).all(|w| w[0].0 <= w[1].0));
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn off_forwards_unchanged() {
        let mut link = CaptureLink::new(MemoryLink::default(), None);
        assert!(link.inner_mut().push_rx(&[1; 60]));
        assert_eq!(link.receive(8, |_| {}), 1);
        assert!(link.capture_stats().is_none());
        assert!(link.flush_capture().is_ok());
    }

    #[test]
    fn per_queue_paths() {
        let c = CaptureConfig::new("/tmp/x.pcap");
        assert_eq!(c.path_for_queue(0, 1), PathBuf::from("/tmp/x.pcap"));
        assert_eq!(c.path_for_queue(1, 2), PathBuf::from("/tmp/x.pcap.1"));
    }
}
