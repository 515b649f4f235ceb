//! The established-connection path for profiling (`valgrind --tool=callgrind`): opens
//! `connections` connections, then feeds `acks` pure ACKs to them in a pseudo-random order,
//! 64 per poll: `ack_profile [connections] [acks]`. Prints the server-side ns per segment.

use xtcp::link::memory::{MemoryLink, MemoryLinkConfig};
use xtcp_benches::{RigConfig, ServerRig, feed, timed};

fn main() {
    let mut args = std::env::args().skip(1);
    let n: usize = args
        .next()
        .map_or(100_000, |a| a.parse().expect("connections"));
    let acks: usize = args.next().map_or(1_000_000, |a| a.parse().expect("acks"));
    let mut rig = ServerRig::new(RigConfig {
        max_connections: n + 1024,
        ..RigConfig::default()
    });
    let conns = rig.establish(n);
    let mut link = MemoryLink::new(MemoryLinkConfig {
        max_frame_len: 1514,
        rx_frames: 64,
        tx_frames: 64,
    });
    let mut buf = [0u8; 128];
    let mut x = 12345u64;
    let mut spent = std::time::Duration::ZERO;
    let mut done = 0;
    while done < acks {
        for _ in 0..64 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let len = rig.pure_ack(&conns[(x >> 33) as usize % n], &mut buf);
            link.push_rx(&buf[..len]);
        }
        let now = rig.now;
        timed(&mut spent, || feed(&mut rig.server, now, &mut link));
        done += 64;
    }
    assert_eq!(link.tx_len(), 0, "a pure ACK needs no answer");
    println!(
        "{done} pure ACKs to {n} connections, {:.0} ns each (server side)",
        spent.as_nanos() as f64 / done as f64
    );
}
