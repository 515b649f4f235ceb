//! `curl` and `wrk` against the `http` example over a private veth pair (root only; skipped
//! with a message otherwise): keep-alive, pipelining and partial requests from a raw kernel
//! socket, and wrk with and without `Connection: close` with zero errors; the same over IPv6
//! (`curl -6`, wrk at `[fd00:77::1]`). See `xtcp_testkit::veth`.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use xtcp_testkit::veth::{Server, Veth, in_netns, serial, wrk_at};

const PORT: u16 = 8080;

#[test]
fn curl_and_wrk_against_http() {
    require_privileges!("curl", "wrk");
    let _serial = serial();
    let veth = Veth::up("ht", 1);
    let server = Server::start("http", &veth, PORT, &[]);
    curl_and_wrk(&veth, server, &veth.ip_a, "-4");
}

/// The same over IPv6: `curl -6` and wrk at `http://[fd00:77::1]:8080/` of a server
/// listening on both families.
#[test]
fn curl_and_wrk_against_http_ipv6() {
    require_privileges!("curl", "wrk");
    let _serial = serial();
    let veth = Veth::up_ipv6("h6", 1);
    let ip6 = veth.ip6_a.expect("IPv6 pair").to_string();
    let server = Server::start("http", &veth, PORT, &["--ip", &ip6]);
    curl_and_wrk(&veth, server, &format!("[{ip6}]"), "-6");
}

/// curl (`family`: `-4` or `-6`), pipelining from a raw kernel socket, and wrk against the
/// server at `host` (an IPv6 address in brackets).
fn curl_and_wrk(veth: &Veth, mut server: Server, host: &str, family: &str) {
    let url = format!("http://{host}:{PORT}/");

    // curl: two requests over one keep-alive connection.
    let out = veth.exec(
        &veth.ns_b,
        "curl",
        &["-sS", "-v", family, "--max-time", "5", &url, &url],
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

    // Pipelined requests, the last one split in two writes, then Connection: close.
    let a: SocketAddr = format!("{host}:{PORT}").parse().unwrap();
    in_netns(&veth.ns_b, || {
        let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(3)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo")
            .unwrap();
        std::thread::sleep(Duration::from_millis(50));
        s.write_all(b"st: x\r\n\r\nGET /c HTTP/1.1\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut all = String::new();
        s.read_to_string(&mut all).unwrap();
        assert_eq!(all.matches("HTTP/1.1 200 OK").count(), 3, "{all}");
        assert!(all.ends_with("Hello from xtcp\n"), "{all}");
        assert_eq!(all.matches("Connection: close").count(), 1, "{all}");
    });

    // wrk, keep-alive: 5 s as the issue asks.
    wrk_at(veth, host, PORT, 5, 20, false);
    // wrk with Connection: close: a full handshake and teardown per request.
    let (requests, _, _) = wrk_at(veth, host, PORT, 3, 20, true);
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(requests)
    });
    assert!(st.top("passive_opens") >= Some(requests), "stats: {}", st.0);
    if family == "-6" {
        // They were the IPv6 stack's.
        assert!(
            st.core_ipv6(0, "passive_opens") >= Some(requests),
            "stats: {}",
            st.0
        );
    }
    // The server closes first: its side of every closed connection goes through TIME-WAIT.
    assert!(st.top("time_wait") > Some(0), "stats: {}", st.0);
    assert_eq!(st.top("rx_dropped_malformed"), Some(0));
    assert!(server.stop(), "http did not exit cleanly");
}

#[test]
fn bad_arguments_exit_2() {
    let bin = xtcp_testkit::veth::example_bin("http");
    for args in [
        &[][..],
        &["--iface", "x", "--ip", "1.2.3.4"][..],
        &["--iface", "x", "--ip", "nope", "--port", "80"][..],
        &[
            "--iface",
            "x",
            "--ip",
            "1.2.3.4",
            "--port",
            "80",
            "--xdp-mode",
            "turbo",
        ][..],
        &["--iface", "x", "--ip", "1.2.3.4", "--port", "80", "--extra"][..],
    ] {
        let out = std::process::Command::new(&bin)
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "args {args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("usage:"), "{err}");
    }
    let out = std::process::Command::new(&bin)
        .arg("--help")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
}
