//! `XskLink` against the Linux kernel over a private veth pair (root only; skipped with a
//! message otherwise).
//!
//! Each test makes its own pair of namespaces with `scripts/veth.sh up --name xl<pid><n>` and
//! a guard removes them on every exit path, panics included. The AF_XDP socket lives in
//! namespace `-a`; the kernel side is a raw `AF_PACKET` socket on the peer in namespace `-b`,
//! bound to the local experimental EtherType 0x88B5 so it sees only test frames.
//!
//! Namespaces: a dedicated thread enters `-b` with setns(2), opens the packet socket, then
//! enters `-a` and creates the `XskLink`; sockets keep the namespace they were created in,
//! and the thread stays in `-a` until the link is dropped. Only that thread changes namespace,
//! so the test harness and the host are unaffected, and no subprocess is needed.
//!
//! XDP program: the project's steering program is not used here. The tests set
//! `inhibit_prog_load = false`, so the link attaches its own redirect-all program, which
//! sends every frame of queue 0 on the fresh veth into the socket.
#![cfg(feature = "afxdp")]

use std::collections::HashSet;
use std::time::{Duration, Instant};

use xtcp_testkit::require_privileges;
use xtcp_testkit::veth::{PacketSocket, Veth, enter_netns};

use xtcp::afxdp::{BindMode, XskConfig, XskLink};
use xtcp::link::Link;

const ETHERTYPE: u16 = 0x88B5;
const MAGIC: &[u8; 4] = b"XTCP";
const FRAME_LEN: usize = 60;

/// Runs `f` on a fresh thread with the kernel-side packet socket (made in `ns_b`) and the
/// thread left in `ns_a`, where `f` creates the XskLink. The thread, with its namespace,
/// ends with `f`; a panic in `f` is re-raised here after the thread is gone.
fn with_namespaces<T: Send>(veth: &Veth, f: impl FnOnce(PacketSocket) -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(&veth.ns_b);
            let peer = PacketSocket::open(&veth.if_b, ETHERTYPE);
            enter_netns(&veth.ns_a);
            f(peer)
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

// ---------------------------------------------------------------------------------------
// Test frames: Ethernet header, EtherType 0x88B5, "XTCP", sequence number, filler.
// ---------------------------------------------------------------------------------------

fn write_frame(buf: &mut [u8], dst: [u8; 6], src: [u8; 6], seq: u32) -> usize {
    buf[0..6].copy_from_slice(&dst);
    buf[6..12].copy_from_slice(&src);
    buf[12..14].copy_from_slice(&ETHERTYPE.to_be_bytes());
    buf[14..18].copy_from_slice(MAGIC);
    buf[18..22].copy_from_slice(&seq.to_be_bytes());
    for (k, b) in buf[22..FRAME_LEN].iter_mut().enumerate() {
        *b = (seq as usize).wrapping_add(k) as u8;
    }
    FRAME_LEN
}

/// The sequence number of a well-formed test frame from `src`, checking every byte.
fn parse_frame(frame: &[u8], src: [u8; 6]) -> Option<u32> {
    if frame.len() < FRAME_LEN
        || frame[6..12] != src
        || frame[12..14] != ETHERTYPE.to_be_bytes()
        || &frame[14..18] != MAGIC
    {
        return None;
    }
    let seq = u32::from_be_bytes(frame[18..22].try_into().unwrap());
    let filler_ok = frame[22..FRAME_LEN]
        .iter()
        .enumerate()
        .all(|(k, &b)| b == (seq as usize).wrapping_add(k) as u8);
    assert!(filler_ok, "frame {seq} payload corrupted");
    Some(seq)
}

fn test_config(iface: &str) -> XskConfig {
    XskConfig {
        // See the module docs: the link's redirect-all program on the private veth.
        inhibit_prog_load: false,
        ..XskConfig::new(iface)
    }
}

fn assert_balanced(link: &XskLink, frame_count: u32) {
    let acc = link.frame_accounting();
    assert_eq!(acc.total(), frame_count, "frames leaked: {acc:?}");
    assert_eq!(acc.held, 0, "frames held outside a callback: {acc:?}");
}

/// Reaps completions until every transmitted frame is back (copy mode completes when the
/// peer has taken the skb), then checks the resting state.
fn settle(link: &mut XskLink, cfg: &XskConfig) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while link.tx_in_flight() > 0 && Instant::now() < deadline {
        link.flush();
        link.reap_completions();
        std::thread::sleep(Duration::from_millis(1));
    }
    link.receive(usize::MAX, |_| {});
    let acc = link.frame_accounting();
    assert_balanced(link, cfg.frame_count);
    assert_eq!(
        acc.tx_staged + acc.tx_kernel,
        0,
        "TX never completed: {acc:?}"
    );
    assert_eq!(
        acc.rx_kernel,
        cfg.fill_target(),
        "fill ring not topped up: {acc:?}"
    );
    assert_eq!(acc.free, cfg.frame_count - cfg.fill_target(), "{acc:?}");
}

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

#[test]
fn kernel_frames_reach_the_socket_and_socket_frames_reach_the_kernel() {
    require_privileges!();
    let veth = Veth::up("xl", 1);
    let (mac_a, mac_b) = (veth.mac_a, veth.mac_b);
    let cfg = test_config(&veth.if_a);
    with_namespaces(&veth, |peer| {
        let mut link = XskLink::new(&cfg).expect("create XskLink on veth");
        eprintln!(
            "bound {} queue 0, zero-copy: {}, fd {}, max frame {}",
            cfg.iface,
            link.is_zero_copy(),
            link.fd(),
            link.max_frame_len()
        );
        assert_eq!(
            link.max_frame_len(),
            1514,
            "veth MTU 1500 + Ethernet header"
        );
        assert_balanced(&link, cfg.frame_count);
        assert_eq!(link.frame_accounting().rx_kernel, cfg.fill_target());

        // Kernel → XskLink.
        assert!(
            !link.wait_readable(0).unwrap(),
            "RX ring not empty before any send"
        );
        const N: u32 = 200;
        let mut buf = [0u8; 2048];
        for seq in 0..N {
            let len = write_frame(&mut buf, mac_a, mac_b, seq);
            assert!(peer.send(&buf[..len]), "peer send {seq} refused");
        }
        assert!(
            link.wait_readable(1000).unwrap(),
            "poll(2) never reported RX"
        );
        let mut seen = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while seen.len() < N as usize && Instant::now() < deadline {
            link.receive(64, |frame| {
                if let Some(seq) = parse_frame(frame, mac_b) {
                    assert!(seen.insert(seq), "frame {seq} received twice");
                }
            });
            assert_balanced(&link, cfg.frame_count);
        }
        assert_eq!(seen.len(), N as usize, "kernel frames lost on the way in");
        let st = link.stats();
        assert!(st.rx_frames >= N as u64 && st.rx_batches >= 1, "{st:?}");

        // XskLink → kernel, with a single flush: copy mode sends at most 32 frames per
        // kick, so this also checks that one flush pushes out the whole TX ring.
        for seq in 0..N {
            assert!(link.transmit(|b| write_frame(b, mac_b, mac_a, seq)));
        }
        assert_eq!(link.stats().kicks, 0, "transmit must not kick");
        link.flush();
        let mut got = HashSet::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while got.len() < N as usize && Instant::now() < deadline {
            match peer.recv(&mut buf) {
                Some(n) => {
                    if let Some(seq) = parse_frame(&buf[..n], mac_a) {
                        assert_eq!(n, FRAME_LEN, "length changed in transit");
                        assert!(got.insert(seq), "frame {seq} delivered twice");
                    }
                }
                None => std::thread::sleep(Duration::from_micros(200)),
            }
        }
        assert_eq!(got.len(), N as usize, "socket frames lost on the way out");
        let st = link.stats();
        assert_eq!(st.tx_frames, N as u64, "{st:?}");
        assert!(st.kicks >= 1, "copy mode needs a kick to send: {st:?}");

        // A callback that writes nothing sends nothing and leaks nothing.
        assert!(link.transmit(|_| 0));
        link.flush();
        assert_eq!(link.stats().tx_frames, N as u64);
        settle(&mut link, &cfg);
        drop(link);
    });
}

#[test]
fn ten_thousand_round_trips_leak_no_frame() {
    require_privileges!();
    let veth = Veth::up("xl", 1);
    let (mac_a, mac_b) = (veth.mac_a, veth.mac_b);
    // A small UMEM so 10k frames cycle through every frame many times.
    let cfg = XskConfig {
        frame_count: 256,
        rx_ring: 256,
        tx_ring: 256,
        fill_ring: 256,
        comp_ring: 256,
        batch: 32,
        ..test_config(&veth.if_a)
    };
    with_namespaces(&veth, |peer| {
        let mut link = XskLink::new(&cfg).expect("create XskLink on veth");
        const TOTAL: u32 = 10_000;
        // In flight (sent, echo not yet back) is bounded so neither the veth's 256-entry
        // ring nor the AF_PACKET socket buffer overflows: the test measures leaks, not loss.
        const WINDOW: u32 = 64;
        let mut next = 0u32;
        let mut echoed = vec![false; TOTAL as usize];
        let mut echoed_count = 0u32;
        let mut buf = [0u8; 2048];
        let start = Instant::now();
        let deadline = start + Duration::from_secs(30);
        while echoed_count < TOTAL && Instant::now() < deadline {
            // XskLink sends within the window.
            while next < TOTAL && next - echoed_count < WINDOW {
                let seq = next;
                if !link.transmit(|b| write_frame(b, mac_b, mac_a, seq)) {
                    break;
                }
                next += 1;
            }
            link.flush();
            // The kernel side echoes what it got.
            while let Some(n) = peer.recv(&mut buf) {
                if let Some(seq) = parse_frame(&buf[..n], mac_a) {
                    let len = write_frame(&mut buf, mac_a, mac_b, seq);
                    while !peer.send(&buf[..len]) {
                        assert!(Instant::now() < deadline, "peer cannot send");
                        std::thread::yield_now();
                    }
                }
            }
            // XskLink reads the echoes.
            link.receive(usize::MAX, |frame| {
                if let Some(seq) = parse_frame(frame, mac_b) {
                    let slot = &mut echoed[seq as usize];
                    assert!(!*slot, "echo {seq} received twice");
                    *slot = true;
                    echoed_count += 1;
                }
            });
            assert_balanced(&link, cfg.frame_count);
        }
        let elapsed = start.elapsed();
        let st = link.stats();
        eprintln!("{echoed_count} round trips in {elapsed:?}; {st:?}");
        assert_eq!(
            echoed_count, TOTAL,
            "round trips lost (sent {next}); {st:?}"
        );
        assert_eq!(st.tx_frames, TOTAL as u64);
        assert!(st.rx_frames >= TOTAL as u64);
        // Each frame was reused dozens of times.
        assert!(
            st.tx_completed >= (TOTAL - cfg.frame_count) as u64,
            "{st:?}"
        );
        // Batching: far fewer kicks and RX reads than frames.
        assert!(st.rx_batches < TOTAL as u64, "{st:?}");
        settle(&mut link, &cfg);
        drop(link);
    });
}

#[test]
fn tx_back_pressure_is_counted_and_loses_no_frame() {
    require_privileges!();
    let veth = Veth::up("xl", 1);
    let (mac_a, mac_b) = (veth.mac_a, veth.mac_b);
    let cfg = XskConfig {
        frame_count: 64,
        rx_ring: 64,
        tx_ring: 64,
        fill_ring: 64,
        comp_ring: 64,
        batch: 16,
        bind: BindMode::Copy,
        // The other tests use need_wakeup; this one checks the always-kick path.
        need_wakeup: false,
        ..test_config(&veth.if_a)
    };
    with_namespaces(&veth, |peer| {
        let mut link = XskLink::new(&cfg).expect("create XskLink on veth");
        assert!(!link.is_zero_copy());
        // Without flushing, only the free half of the UMEM (32 frames) can be written:
        // 16 staged, 16 more pushed to the TX ring when the stage fills, then refusals.
        let mut accepted = 0u32;
        for seq in 0..100 {
            if link.transmit(|b| write_frame(b, mac_b, mac_a, seq)) {
                accepted += 1;
            }
            assert_balanced(&link, cfg.frame_count);
        }
        assert_eq!(accepted, cfg.frame_count - cfg.fill_target());
        let st = link.stats();
        assert!(st.tx_no_free_frame + st.tx_ring_full > 0, "{st:?}");
        assert_eq!(link.frame_accounting().free, 0);
        // Receiving still works: the RX share was never lent to TX.
        let mut buf = [0u8; 128];
        let len = write_frame(&mut buf, mac_a, mac_b, 7);
        assert!(peer.send(&buf[..len]));
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut got = 0;
        while got == 0 && Instant::now() < deadline {
            link.receive(16, |f| got += parse_frame(f, mac_b).is_some() as u32);
        }
        assert_eq!(got, 1);
        // Flushing sends everything that was accepted, then the frames come back.
        link.flush();
        let mut delivered = 0;
        let deadline = Instant::now() + Duration::from_secs(5);
        while delivered < accepted && Instant::now() < deadline {
            match peer.recv(&mut buf) {
                Some(n) => delivered += parse_frame(&buf[..n], mac_a).is_some() as u32,
                None => {
                    link.flush();
                    std::thread::sleep(Duration::from_micros(200));
                }
            }
        }
        assert_eq!(delivered, accepted);
        settle(&mut link, &cfg);
        drop(link);
    });
}

/// Every one of N 60-byte frames is transmitted and completed, frames arrive, and no UMEM
/// frame leaks; prints one `rate:` line with the receive and transmit rates. The rate is not
/// a goal (none is asserted): for comparing AF_XDP layers set `XTCP_RATE_FRAMES=200000` and
/// run with `--nocapture`, interleaved with the other layer's binary, on an idle machine.
#[test]
fn rx_tx_60_byte_frames_complete_and_report_a_rate() {
    require_privileges!();
    let veth = Veth::up("xr", 1);
    let (mac_a, mac_b) = (veth.mac_a, veth.mac_b);
    let cfg = test_config(&veth.if_a);
    let n: u32 = std::env::var("XTCP_RATE_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    with_namespaces(&veth, |peer| {
        let mut link = XskLink::new(&cfg).expect("create XskLink on veth");
        // TX: the socket sends n frames as fast as the rings take them; the peer drops them
        // (its packet socket buffer fills), which costs the sending thread the veth path.
        let start = Instant::now();
        let deadline = start + Duration::from_secs(10);
        let mut sent = 0u32;
        while sent < n && Instant::now() < deadline {
            while sent < n && link.transmit(|b| write_frame(b, mac_b, mac_a, sent)) {
                sent += 1;
                if sent.is_multiple_of(64) {
                    break;
                }
            }
            link.flush();
        }
        while link.tx_in_flight() > 0 && Instant::now() < deadline {
            link.flush();
            link.reap_completions();
        }
        let tx_secs = start.elapsed().as_secs_f64();
        let tx_done = link.stats().tx_completed;
        // RX: a paced-by-ENOBUFS kernel sender on another thread; this thread busy-polls.
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (received, rx_secs) = std::thread::scope(|s| {
            s.spawn(|| {
                let mut buf = [0u8; 128];
                let mut seq = 0u32;
                while seq < n && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let len = write_frame(&mut buf, mac_a, mac_b, seq);
                    if peer.send(&buf[..len]) {
                        seq += 1;
                    } else {
                        std::thread::yield_now();
                    }
                }
            });
            let mut got = 0u32;
            let mut first = None;
            let mut last = Instant::now();
            let deadline = Instant::now() + Duration::from_secs(10);
            while got < n && Instant::now() < deadline {
                let n = link.receive(64, |f| got += parse_frame(f, mac_b).is_some() as u32);
                if n > 0 {
                    last = Instant::now();
                    first.get_or_insert(last);
                } else if first.is_some_and(|_| last.elapsed() > Duration::from_millis(500)) {
                    break;
                }
            }
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
            (got, secs)
        });
        eprintln!(
            "rate: tx {tx_done} frames in {tx_secs:.3} s = {:.3} Mpps; rx {received} frames in {rx_secs:.3} s = {:.3} Mpps",
            tx_done as f64 / tx_secs / 1e6,
            received as f64 / rx_secs.max(1e-9) / 1e6
        );
        assert_eq!(tx_done, n as u64, "TX incomplete");
        assert!(received > 0, "nothing received");
        settle(&mut link, &cfg);
        drop(link);
    });
}
