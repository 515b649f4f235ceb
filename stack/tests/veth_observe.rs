//! The echo example observed from outside (root only; reported skipped otherwise):
//! - its own capture (`--pcap FILE`) read back by `tshark`: 10 kernel connections give 10
//!   SYNs, 10 SYN-ACKs and 10 FINs each way, every IPv4 and TCP checksum verified by tshark;
//!   with two queues, one file per queue, each connection whole in its queue's file;
//! - `RUST_LOG=xtcp=debug` prints one state-transition line per connection event.
#![cfg(feature = "afxdp")]

use xtcp_testkit::require_privileges;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use xtcp_testkit::veth::{Server, Veth, in_netns, serial};

const PORT: u16 = 7;

/// One tshark row: (source port, destination port, TCP flags, IP checksum status, TCP
/// checksum status). Status 1 is "good" in tshark's field encoding, 0 "bad".
type Row = (u16, u16, u16, String, String);

/// Reads `pcap` with tshark, verifying checksums.
pub fn tshark_rows(pcap: &Path) -> Vec<Row> {
    let out = Command::new("tshark")
        .args([
            "-n",
            "-o",
            "tcp.check_checksum:TRUE",
            "-o",
            "ip.check_checksum:TRUE",
            "-Y",
            "tcp",
            "-T",
            "fields",
            "-e",
            "tcp.srcport",
            "-e",
            "tcp.dstport",
            "-e",
            "tcp.flags",
            "-e",
            "ip.checksum.status",
            "-e",
            "tcp.checksum.status",
            "-r",
        ])
        .arg(pcap)
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark -r {} failed: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 5, "unexpected tshark line {l:?}");
            let flags = u16::from_str_radix(f[2].trim_start_matches("0x"), 16).unwrap();
            (
                f[0].parse().unwrap(),
                f[1].parse().unwrap(),
                flags,
                f[3].to_string(),
                f[4].to_string(),
            )
        })
        .collect()
}

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const ACK: u16 = 0x10;

/// Distinct connections (by client port) with a SYN, a SYN-ACK, a FIN from the client and a
/// FIN from the server in `rows`; panics on any checksum tshark does not call good.
pub fn handshakes_and_fins(rows: &[Row], server_port: u16) -> [usize; 4] {
    let mut sets: [BTreeSet<u16>; 4] = Default::default();
    for (sp, dp, flags, ip_ck, tcp_ck) in rows {
        assert_eq!(
            ip_ck, "1",
            "IP checksum not good: {sp} > {dp} flags {flags:#x}"
        );
        assert_eq!(
            tcp_ck, "1",
            "TCP checksum not good: {sp} > {dp} flags {flags:#x}"
        );
        let from_client = *dp == server_port;
        let client = if from_client { *sp } else { *dp };
        if flags & (SYN | ACK) == SYN && from_client {
            sets[0].insert(client);
        }
        if flags & (SYN | ACK) == SYN | ACK && !from_client {
            sets[1].insert(client);
        }
        if flags & FIN != 0 {
            sets[if from_client { 2 } else { 3 }].insert(client);
        }
    }
    let n = sets.map(|s| s.len());
    eprintln!(
        "{} frames, checksums good; connections with SYN {}, SYN-ACK {}, client FIN {}, server FIN {}",
        rows.len(),
        n[0],
        n[1],
        n[2],
        n[3]
    );
    n
}

#[test]
fn echo_pcap_shows_every_handshake_and_teardown() {
    require_privileges!("tshark");
    let _serial = serial();
    let veth = Veth::up("pc", 1);
    let pcap = std::env::temp_dir().join(format!("xtcp-{}-echo.pcap", veth.name));
    let _ = std::fs::remove_file(&pcap);
    let pcap_arg = pcap.to_str().unwrap().to_string();
    let mut server = Server::start("echo", &veth, PORT, &["--pcap", &pcap_arg]);
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();
    in_netns(&veth.ns_b, || {
        for i in 0..10u8 {
            let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(3)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(&[b'a' + i; 100]).unwrap();
            let mut back = [0u8; 100];
            s.read_exact(&mut back).unwrap();
            assert_eq!(back, [b'a' + i; 100]);
            s.shutdown(std::net::Shutdown::Write).unwrap();
            // EOF: the server's FIN has arrived.
            assert_eq!(s.read(&mut back).unwrap(), 0);
        }
    });
    // A clean exit writes out the last batch.
    assert!(server.stop(), "echo did not exit cleanly");
    let rows = tshark_rows(&pcap);
    let _ = std::fs::remove_file(&pcap);
    assert_eq!(handshakes_and_fins(&rows, PORT), [10; 4]);
}

#[test]
fn echo_with_rust_log_debug_prints_state_transitions() {
    require_privileges!();
    let _serial = serial();
    let veth = Veth::up("tr", 1);
    let bin = xtcp_testkit::veth::example_bin("echo");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &veth.ns_a, "env", "RUST_LOG=xtcp=debug"])
        .arg(&bin)
        .args(["--iface", &veth.if_a, "--ip", &veth.ip_a, "--port", "7"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn echo");
    // The ready line on stdout says it listens.
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut ready = String::new();
    std::io::BufRead::read_line(&mut out, &mut ready).unwrap();
    assert!(ready.contains("listening on"), "{ready}");
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();
    in_netns(&veth.ns_b, || {
        for _ in 0..3 {
            let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(3)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"x").unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(300));
    // Safety: kill(2) on the PID of a child we spawned and have not reaped (`ip netns exec`
    // and `env` exec in place, so it is the server's).
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    let transitions: Vec<&str> = err.lines().filter(|l| l.contains(" state ")).collect();
    for l in &transitions {
        eprintln!("{l}");
    }
    // Per connection: CLOSED -> ESTABLISHED (made from the final ACK), then, when the client
    // closes (the kernel closes on drop), on to LAST-ACK (echo closes as soon as it reads the
    // FIN: CLOSE-WAIT lasts within one poll) and CLOSED.
    for to in [
        "from=CLOSED to=ESTABLISHED",
        "to=LAST-ACK",
        "from=LAST-ACK to=CLOSED",
    ] {
        let n = transitions.iter().filter(|l| l.contains(to)).count();
        assert_eq!(n, 3, "{to}: {n} lines of 3 connections:\n{err}");
    }
}

#[test]
fn two_queues_write_one_capture_file_each() {
    require_privileges!("tshark");
    let _serial = serial();
    let veth = Veth::up("pq", 2);
    let pcap = std::env::temp_dir().join(format!("xtcp-{}-mq.pcap", veth.name));
    let files = [0, 1].map(|q| std::path::PathBuf::from(format!("{}.{q}", pcap.display())));
    for f in &files {
        let _ = std::fs::remove_file(f);
    }
    let pcap_arg = pcap.to_str().unwrap().to_string();
    let mut server = Server::start(
        "echo",
        &veth,
        PORT,
        &[
            "--queues",
            "2",
            "--xdp-mode",
            "native",
            "--cores",
            "0,1",
            "--pcap",
            &pcap_arg,
        ],
    );
    // Keep every kernel flow on the queue it starts on (see veth_echo's two-queue test).
    let rehash = veth.exec(&veth.ns_b, "sysctl", &["-qw", "net.core.txrehash=0"]);
    assert!(rehash.status.success());
    let a: SocketAddr = format!("{}:{PORT}", veth.ip_a).parse().unwrap();
    const N: usize = 40;
    in_netns(&veth.ns_b, || {
        for i in 0..N {
            let mut s = TcpStream::connect_timeout(&a, Duration::from_secs(3)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(&[i as u8; 10]).unwrap();
            let mut back = [0u8; 10];
            s.read_exact(&mut back).unwrap();
            s.shutdown(std::net::Shutdown::Write).unwrap();
            assert_eq!(s.read(&mut back).unwrap(), 0);
        }
    });
    assert!(server.stop(), "echo did not exit cleanly");
    assert!(
        !pcap.exists(),
        "with two queues there is no unsuffixed file"
    );
    let per_queue: Vec<[usize; 4]> = files
        .iter()
        .map(|f| {
            let rows = tshark_rows(f);
            let _ = std::fs::remove_file(f);
            handshakes_and_fins(&rows, PORT)
        })
        .collect();
    eprintln!("per queue [SYN, SYN-ACK, client FIN, server FIN]: {per_queue:?}");
    // Every connection is captured whole on the queue that served it.
    for q in &per_queue {
        assert!(q.iter().all(|&n| n == q[0]), "{per_queue:?}");
    }
    assert_eq!(per_queue[0][0] + per_queue[1][0], N, "{per_queue:?}");
    assert!(
        per_queue[0][0] > 0 && per_queue[1][0] > 0,
        "flows did not spread"
    );
}
