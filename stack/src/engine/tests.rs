//! Unit tests of the engine's setup helpers (moved out of mod.rs, which is at the size limit).

use super::*;
use crate::tcp::rss::MICROSOFT_KEY;

#[test]
fn fewer_queues_than_the_device_is_an_error_naming_both() {
    let ch = |rx| {
        Some(nic::Channels {
            rx_queues: rx,
            max_rx_queues: 8,
        })
    };
    assert!(check_channels("eth0", 2, ch(2)).is_ok());
    assert!(check_channels("eth0", 4, ch(2)).is_ok());
    assert!(
        check_channels("eth0", 1, None).is_ok(),
        "unknown: not checked"
    );
    let e = check_channels("eth0", 2, ch(4)).unwrap_err().to_string();
    assert!(
        e.contains("eth0") && e.contains("4 queues") && e.contains("serves 2"),
        "{e}"
    );
}

#[test]
fn rss_is_used_only_when_its_table_names_our_queues() {
    let rss = |table: Vec<u16>| Some(Rss::new(MICROSOFT_KEY.to_vec(), table).unwrap());
    assert!(usable_rss(2, rss(vec![0, 1, 0, 1])).is_some());
    assert!(usable_rss(2, rss(vec![0, 1, 2, 3])).is_none());
    assert!(usable_rss(2, None).is_none());
}

#[test]
fn zero_copy_refusal_names_the_driver() {
    let e = EngineError::ZeroCopyRefused {
        queue: 1,
        driver: "veth".into(),
        error: XskError::Bind {
            mode: BindMode::ZeroCopy,
            error: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        },
    };
    let text = e.to_string();
    assert!(
        text.contains("veth driver") && text.contains("queue 1"),
        "{text}"
    );
}

#[test]
fn ipv6_sources_without_an_ipv6_address_are_refused() {
    struct Nop;
    impl App for Nop {
        fn on_event(&mut self, _: &mut Io<'_>, _: AppEvent) {}
    }
    let mut cfg = EngineConfig::new("no-such-if0", Ipv4Addr::new(10, 77, 0, 1));
    cfg.source_ips6 = vec!["fd00:78::1".parse().unwrap()];
    match Engine::start(cfg, |_| Nop) {
        Err(EngineError::Config(m)) => assert!(m.contains("source_ips6"), "{m}"),
        Err(e) => panic!("another error: {e}"),
        Ok(_) => panic!("started"),
    }
}
