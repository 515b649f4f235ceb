//! The Linux kernel as a client of the `echo` example over a private veth pair (root only;
//! skipped with a message otherwise): sequential and concurrent connections, a 10 MiB
//! byte-exact echo with half-close, checksums in a capture, ping and ARP while attached,
//! two queues with one engine thread each, and the echo checks over IPv6 (a dual-stack
//! server). See `xtcp_testkit::veth` for the setup.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use xtcp_testkit::veth::{Pattern, Server, Veth, echo_checks, in_netns, roundtrip, serial};

const PORT: u16 = 7;

fn addr(veth: &Veth) -> SocketAddr {
    format!("{}:{PORT}", veth.ip_a).parse().unwrap()
}

#[test]
fn kernel_client_to_echo() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("ec", 1);
    let mut server = Server::start("echo", &veth, PORT, &[]);
    assert!(veth.xdp_attached(), "XDP program not attached");
    let a = addr(&veth);

    let st = echo_checks(&veth, &server, a, "echo");
    assert!(st.top("rx_frames") > Some(10_000));
    assert!(st.core(0, "tx_frames") > Some(10_000));
    assert!(server.stop(), "echo did not exit cleanly on SIGTERM");
    assert!(
        !veth.xdp_attached(),
        "XDP program still attached after exit"
    );
}

/// The same checks over IPv6: the server listens on both families (`--ip` twice), the
/// kernel client connects to its IPv6 address; IPv4 still answers beside it.
#[test]
fn kernel_client_to_echo_ipv6() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up_ipv6("e6", 1);
    let ip6 = veth.ip6_a.expect("IPv6 pair").to_string();
    let mut server = Server::start("echo", &veth, PORT, &["--ip", &ip6]);
    let a6: SocketAddr = format!("[{ip6}]:{PORT}").parse().unwrap();

    let st = echo_checks(&veth, &server, a6, "echo over IPv6");
    // Every one of those connections was the IPv6 stack's.
    let v6 = |k: &str| st.core_ipv6(0, k);
    assert!(v6("passive_opens") >= Some(1101), "stats: {}", st.0);
    assert_eq!(v6("rx_dropped_malformed"), Some(0), "stats: {}", st.0);
    // And IPv4 beside it.
    let a4 = addr(&veth);
    in_netns(&veth.ns_b, || roundtrip(a4, b"ipv4 still served", true));
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(v6("passive_opens").unwrap_or(0) + 1)
    });
    assert!(
        st.top("passive_opens") > v6("passive_opens"),
        "no IPv4 connection counted: {}",
        st.0
    );
    assert!(server.stop(), "echo did not exit cleanly on SIGTERM");
    assert!(
        !veth.xdp_attached(),
        "XDP program still attached after exit"
    );
}

#[test]
fn capture_has_no_bad_checksums() {
    require_privileges!("tcpdump");
    let _serial = serial();
    let veth = Veth::up("ck", 1);
    let _server = Server::start("echo", &veth, PORT, &[]);
    let pcap = std::env::temp_dir().join(format!("xtcp-{}.pcap", veth.name));
    // Capture on the kernel peer, whose TX checksum offload veth.sh turned off: every
    // checksum in the capture is final, ours and the kernel's.
    let mut dump = Command::new("ip")
        .args([
            "netns", "exec", &veth.ns_b, "tcpdump", "-i", &veth.if_b, "-U", "-n",
        ])
        .arg("-w")
        .arg(&pcap)
        .arg("tcp")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tcpdump");
    // tcpdump says "listening on" once the capture runs.
    let mut err = dump.stderr.take().unwrap();
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    while !String::from_utf8_lossy(&seen).contains("listening on") {
        match err.read(&mut byte) {
            Ok(1) => seen.push(byte[0]),
            _ => break,
        }
    }
    let a = addr(&veth);
    in_netns(&veth.ns_b, || {
        for i in 0..20u64 {
            let mut m = vec![0u8; 30_000 + i as usize];
            Pattern::new(i).fill(&mut m);
            roundtrip(a, &m, i % 2 == 0);
        }
    });
    std::thread::sleep(Duration::from_millis(200));
    // Safety: kill(2) on the PID of a child we spawned and have not reaped.
    unsafe { libc::kill(dump.id() as libc::pid_t, libc::SIGINT) };
    let _ = dump.wait();
    let out = Command::new("tcpdump")
        .args(["-vv", "-n", "-r"])
        .arg(&pcap)
        .output()
        .expect("tcpdump -r");
    let _ = std::fs::remove_file(&pcap);
    let text = String::from_utf8_lossy(&out.stdout);
    let correct = text.matches("(correct)").count();
    let bad: Vec<&str> = text.lines().filter(|l| l.contains("incorrect")).collect();
    assert!(bad.is_empty(), "bad checksums:\n{}", bad.join("\n"));
    // Both directions: segments from xtcp (source port 7) were verified too.
    let from_xtcp = text
        .lines()
        .filter(|l| l.contains(&format!("{}.{PORT} >", veth.ip_a)))
        .count();
    assert!(correct > 200, "only {correct} verified checksums");
    assert!(from_xtcp > 100, "only {from_xtcp} segments from xtcp");
    eprintln!("{correct} checksums verified, {from_xtcp} segments from xtcp, none bad");
}

#[test]
fn ping_and_arp_while_attached() {
    require_privileges!("ping");
    let _serial = serial();
    let veth = Veth::up("pg", 1);
    let _server = Server::start("echo", &veth, PORT, &[]);
    // Forget the xtcp side's MAC so that the pings need a fresh ARP exchange, which the XDP
    // program must pass to the kernel.
    let flush = veth.exec(&veth.ns_b, "ip", &["neigh", "flush", "dev", &veth.if_b]);
    assert!(flush.status.success());
    let ping = veth.exec(
        &veth.ns_b,
        "ping",
        &["-c", "3", "-i", "0.2", "-W", "2", &veth.ip_a],
    );
    assert!(
        ping.status.success(),
        "ping failed: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    let neigh = veth.exec(&veth.ns_b, "ip", &["neigh", "show", &veth.ip_a]);
    let neigh = String::from_utf8_lossy(&neigh.stdout);
    assert!(neigh.contains("lladdr"), "no ARP entry: {neigh}");
    // The other way too: the kernel on the xtcp side still sends and receives.
    let ping = veth.exec(
        &veth.ns_a,
        "ping",
        &["-c", "2", "-i", "0.2", "-W", "2", &veth.ip_b],
    );
    assert!(ping.status.success(), "ping from the xtcp side failed");
    // And TCP still goes to xtcp.
    let a = addr(&veth);
    in_netns(&veth.ns_b, || roundtrip(a, b"still here", true));
}

#[test]
fn two_queues_two_threads() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("mq", 2);
    // Native mode: in SKB mode every frame reports receive queue 0.
    let server = Server::start(
        "echo",
        &veth,
        PORT,
        &["--queues", "2", "--xdp-mode", "native", "--cores", "0,1"],
    );
    assert!(
        server.ready_line.contains("2 queues"),
        "{}",
        server.ready_line
    );
    // On veth a frame arrives on the receive queue numbered like the sender's transmit
    // queue, which the kernel picks from the socket's random transmit hash. The kernel
    // re-rolls that hash after a retransmission timeout or a spurious retransmission
    // (`net.core.txrehash`), which would move a flow to the other queue, whose core has no
    // state for it: keep every flow on its queue.
    let rehash = veth.exec(&veth.ns_b, "sysctl", &["-qw", "net.core.txrehash=0"]);
    assert!(rehash.status.success(), "sysctl net.core.txrehash=0 failed");
    let a = addr(&veth);
    const N: u64 = 300;
    let failures = in_netns(&veth.ns_b, || {
        // Each kernel socket gets a random transmit hash, so its flow lands on either queue.
        let mut failures = Vec::new();
        for i in 0..N {
            let mut m = vec![0u8; 100 + i as usize];
            Pattern::new(i).fill(&mut m);
            if let Err(e) = std::panic::catch_unwind(|| roundtrip(a, &m, i % 2 == 0)) {
                failures.push(format!("{i}: {e:?}"));
            }
        }
        failures
    });
    assert!(
        failures.is_empty(),
        "{} failed connections ({:?}); stats: {}",
        failures.len(),
        &failures[..failures.len().min(3)],
        server.stats().0
    );
    let st = server.wait_stats(Duration::from_secs(3), |s| {
        s.top("passive_opens") >= Some(N)
    });
    assert_eq!(st.top("passive_opens"), Some(N), "stats: {}", st.0);
    let q0 = st.core(0, "passive_opens").unwrap();
    let q1 = st.core(1, "passive_opens").unwrap();
    eprintln!("connections per queue: {q0} + {q1}");
    assert!(q0 > 0 && q1 > 0, "connections did not spread: {q0} + {q1}");
    assert_eq!(st.top("resets_sent"), Some(0), "stats: {}", st.0);
}
