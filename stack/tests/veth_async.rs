//! `xtcp::rt` over a private veth pair (root only; skipped with a message otherwise):
//! - `async_echo` passes the checks of the callback `echo` (veth_echo.rs): 1,000 sequential
//!   connections alternating who closes first, 100 concurrent with distinct patterns,
//!   10 MiB byte-exact with half-close from the kernel side;
//! - `hyper_server` (hyper 1 http1 on xtcp::rt streams) answers curl (keep-alive reuse),
//!   pipelined and split requests, and wrk with and without `Connection: close`, with zero
//!   errors.
//!
//! See `xtcp_testkit::veth` for the setup. SIGTERM must stop both cleanly.
#![cfg(feature = "rt")]

use xtcp_testkit::require_privileges;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use xtcp_testkit::veth::{
    Pattern, Server, Veth, connect, echo_checks, in_netns, roundtrip, serial, wrk,
};

#[test]
fn kernel_client_to_async_echo() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("ae", 1);
    const PORT: u16 = 7;
    let mut server = Server::start("async_echo", &veth, PORT, &[]);
    assert!(veth.xdp_attached(), "XDP program not attached");
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();

    echo_checks(&veth, &server, a, "async_echo");
    assert!(server.stop(), "async_echo did not exit cleanly on SIGTERM");
    assert!(
        !veth.xdp_attached(),
        "XDP program still attached after exit"
    );
}

#[test]
fn curl_and_wrk_against_hyper_server() {
    require_privileges!("curl", "wrk");
    let _serial = serial();
    let veth = Veth::up("hy", 1);
    const PORT: u16 = 8080;
    let mut server = Server::start("hyper_server", &veth, PORT, &[]);
    let url = format!("http://{}:{PORT}/", veth.ip_a);

    // curl: two requests over one keep-alive connection.
    let out = veth.exec(
        &veth.ns_b,
        "curl",
        &["-sS", "-v", "--max-time", "5", &url, &url],
    );
    let body = String::from_utf8_lossy(&out.stdout);
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "curl failed: {log}");
    assert_eq!(body.matches("Hello from xtcp").count(), 2, "body: {body}");
    assert!(log.contains("200 OK"), "{log}");
    assert!(
        log.contains("Re-using existing connection") || log.contains("Reusing existing"),
        "curl did not reuse the connection: {log}"
    );

    // Pipelined requests, the second split over two writes, the last with Connection:
    // close: three answers in order, then hyper closes.
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();
    in_netns(&veth.ns_b, || {
        let mut s = connect(a);
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"st: x\r\n\r\nGET /c HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
        assert!(all.ends_with("Hello from xtcp\n"), "{all}");
        assert_eq!(
            all.to_ascii_lowercase()
                .matches("connection: close")
                .count(),
            1,
            "{all}"
        );
    });

    wrk(&veth, PORT, 5, 20, false);
    let (requests, _, _) = wrk(&veth, PORT, 3, 20, true);
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(requests)
    });
    assert!(st.top("passive_opens") >= Some(requests), "stats: {}", st.0);
    assert_eq!(st.top("rx_dropped_malformed"), Some(0));
    assert!(server.stop(), "hyper_server did not exit cleanly");
}

#[test]
fn async_echo_on_two_queues_runs_one_executor_per_core() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("aq", 2);
    const PORT: u16 = 7;
    // Native mode: in SKB mode every frame reports receive queue 0.
    let server = Server::start(
        "async_echo",
        &veth,
        PORT,
        &["--queues", "2", "--xdp-mode", "native", "--cores", "0,1"],
    );
    assert!(
        server.ready_line.contains("2 queues"),
        "{}",
        server.ready_line
    );
    // Keep every flow on the queue its first segment chose (see veth_echo.rs).
    let rehash = veth.exec(&veth.ns_b, "sysctl", &["-qw", "net.core.txrehash=0"]);
    assert!(rehash.status.success(), "sysctl net.core.txrehash=0 failed");
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();
    const N: u64 = 200;
    in_netns(&veth.ns_b, || {
        for i in 0..N {
            let mut m = vec![0u8; 100 + i as usize];
            Pattern::new(i).fill(&mut m);
            roundtrip(a, &m, i % 2 == 0);
        }
    });
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(N)
    });
    assert_eq!(st.top("passive_opens"), Some(N), "stats: {}", st.0);
    let q0 = st.core(0, "passive_opens").unwrap();
    let q1 = st.core(1, "passive_opens").unwrap();
    eprintln!("async_echo connections per queue: {q0} + {q1}");
    assert!(q0 > 0 && q1 > 0, "connections did not spread: {q0} + {q1}");
    assert_eq!(st.top("resets_sent"), Some(0), "stats: {}", st.0);
}
