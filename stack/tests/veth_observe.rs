//! The echo example observed from outside (root only; reported skipped otherwise):
//! - its own capture (`--pcap FILE`) read back by `tshark`: 10 kernel connections give 10
//!   SYNs, 10 SYN-ACKs and 10 FINs each way, the IPv4 and TCP checksums of every frame xtcp
//!   sent verified by tshark (a received frame with a bad one must be what the stack counted
//!   as malformed); with two queues, one file per queue, each connection whole in its
//!   queue's file;
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

/// One tshark row. Checksum statuses are tshark's field encoding: 1 good, 0 bad.
#[derive(Debug)]
struct Row {
    frame: u64,
    src_port: u16,
    dst_port: u16,
    flags: u16,
    ip_ck: String,
    tcp_ck: String,
}

impl Row {
    fn good(&self) -> bool {
        self.ip_ck == "1" && self.tcp_ck == "1"
    }
}

/// Reads `pcap` with tshark, verifying checksums.
fn tshark_rows(pcap: &Path) -> Vec<Row> {
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
            "frame.number",
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
            assert_eq!(f.len(), 6, "unexpected tshark line {l:?}");
            Row {
                frame: f[0].parse().unwrap(),
                src_port: f[1].parse().unwrap(),
                dst_port: f[2].parse().unwrap(),
                flags: u16::from_str_radix(f[3].trim_start_matches("0x"), 16).unwrap(),
                ip_ck: f[4].to_string(),
                tcp_ck: f[5].to_string(),
            }
        })
        .collect()
}

/// tshark's hex dump of frame `n` of `pcap`, for a failure message.
fn hex_dump(pcap: &Path, n: u64) -> String {
    let out = Command::new("tshark")
        .args(["-n", "-x", "-Y", &format!("frame.number == {n}"), "-r"])
        .arg(pcap)
        .output()
        .expect("run tshark");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

const FIN: u16 = 0x01;
const SYN: u16 = 0x02;
const ACK: u16 = 0x10;

/// What a capture of the server's traffic shows.
#[derive(Debug)]
struct Seen {
    /// Distinct connections (by client port) with a SYN, a SYN-ACK, a FIN from the client
    /// and a FIN from the server, counted over frames whose checksums verify.
    counts: [usize; 4],
    /// Received frames whose IPv4 or TCP checksum tshark calls bad: what the kernel peer
    /// put on the wire, which the stack must have counted and dropped as malformed.
    bad_received: usize,
}

/// Reads `pcap` of a server on `server_port`. Every frame the server sent must carry good
/// checksums (xtcp computes them); a received frame with a bad one is reported with its hex
/// dump and counted in [`Seen::bad_received`].
fn handshakes_and_fins(pcap: &Path, server_port: u16) -> Seen {
    let rows = tshark_rows(pcap);
    let mut sets: [BTreeSet<u16>; 4] = Default::default();
    let mut bad_received = 0;
    for r in &rows {
        let from_client = r.dst_port == server_port;
        if !r.good() {
            let dump = hex_dump(pcap, r.frame);
            assert!(
                from_client,
                "xtcp sent a frame with a bad checksum: {r:?}\n{dump}"
            );
            eprintln!("received with a bad checksum: {r:?}\n{dump}");
            bad_received += 1;
            continue;
        }
        let client = if from_client { r.src_port } else { r.dst_port };
        if r.flags & (SYN | ACK) == SYN && from_client {
            sets[0].insert(client);
        }
        if r.flags & (SYN | ACK) == SYN | ACK && !from_client {
            sets[1].insert(client);
        }
        if r.flags & FIN != 0 {
            sets[if from_client { 2 } else { 3 }].insert(client);
        }
    }
    let counts = sets.map(|s| s.len());
    eprintln!(
        "{} frames ({bad_received} received with a bad checksum); connections with SYN {}, \
         SYN-ACK {}, client FIN {}, server FIN {}",
        rows.len(),
        counts[0],
        counts[1],
        counts[2],
        counts[3]
    );
    Seen {
        counts,
        bad_received,
    }
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
    let seen = handshakes_and_fins(&pcap, PORT);
    let _ = std::fs::remove_file(&pcap);
    assert_eq!(seen.counts, [10; 4]);
    // What arrived damaged is what the stack dropped as malformed (none, normally).
    let st = server.stats();
    assert_eq!(
        st.core(0, "rx_dropped_malformed"),
        Some(seen.bad_received as u64),
        "stats: {}",
        st.0
    );
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
    let st = server.stats();
    let per_queue: Vec<[usize; 4]> = files
        .iter()
        .enumerate()
        .map(|(q, f)| {
            let seen = handshakes_and_fins(f, PORT);
            let _ = std::fs::remove_file(f);
            // What arrived damaged is what this queue's stack dropped as malformed.
            assert_eq!(
                st.core(q, "rx_dropped_malformed"),
                Some(seen.bad_received as u64),
                "queue {q}; stats: {}",
                st.0
            );
            seen.counts
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
