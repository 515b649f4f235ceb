//! RSS-aware active opens: for random Toeplitz keys, indirection tables, queues and
//! destinations, every source port a stack chooses hashes its reply back to the stack's own
//! queue, and the ports of all queues together never collide.

use std::collections::HashSet;
use std::net::SocketAddrV4;

use proptest::prelude::*;
use xtcp::stack::{Stack, StackConfig};
use xtcp::tcp::rss::{Rss, RssSteering};
use xtcp::time::Instant;
use xtcp::wire::Ipv4Addr;

const LOCAL: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);

fn stack(rss: &Rss, queue: u16) -> Stack {
    let cfg = StackConfig {
        ips: vec![LOCAL],
        max_connections: 256,
        max_syn_recv: 16,
        time_wait_capacity: 16,
        rss: Some(RssSteering {
            rss: rss.clone(),
            queue,
        }),
        ..StackConfig::default()
    };
    Stack::new(cfg, Instant::ZERO)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn chosen_ports_hash_back_to_the_opening_queue(
        key in proptest::collection::vec(any::<u8>(), 40),
        queues in 1u16..8,
        table_seed in any::<u64>(),
        remote in any::<[u8; 4]>(),
        remote_port in 1u16..,
    ) {
        // A 128-entry table over `queues` queues, in a random order.
        let mut x = table_seed | 1;
        let table: Vec<u16> = (0..128)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                if i < queues as usize { i as u16 } else { (x % u64::from(queues)) as u16 }
            })
            .collect();
        let rss = Rss::new(key, table).unwrap();
        let remote_ip = Ipv4Addr::from(remote);
        let dst = SocketAddrV4::new(remote_ip, remote_port);
        let mut seen = HashSet::new();
        for queue in 0..queues {
            let mut s = stack(&rss, queue);
            for _ in 0..20 {
                let h = s.connect(Instant::ZERO, None, dst).unwrap();
                let t = s.connection(h).unwrap().tuple();
                prop_assert_eq!(rss.rx_queue_v4(LOCAL, t.local_port, remote_ip, remote_port), queue);
                prop_assert!(seen.insert(t.local_port), "port {} chosen twice", t.local_port);
            }
        }
    }
}
