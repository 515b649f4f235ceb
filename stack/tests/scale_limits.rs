//! Issue 4 at stack level, with crafted client segments: compact entry sizes, RFC 6191
//! TIME-WAIT reuse, the full-connection (accept queue) flood under both overflow policies,
//! orphan limits, the FIN-WAIT-2 timeout and ephemeral port exhaustion.

use std::net::SocketAddrV4;

use xtcp::stack::{AcceptOverflow, ListenerId, SlotMeta, StackError, SynCookieMode, SynRecvEntry};
use xtcp::tcp::time_wait::TimeWaitEntry;
use xtcp::tcp::{Connection, Event, State};
use xtcp::time::Duration;
use xtcp::wire::{Ipv4Addr, TcpControl};
use xtcp_testkit::rig::{Client, Rig, SERVER_IP, server_config, to};
use xtcp_testkit::seg::Seg;

const PORT: u16 = 80;

fn client_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(0x0b00_0000 | i)
}

#[test]
fn compact_entry_sizes() {
    let tw = size_of::<TimeWaitEntry>();
    let sr = size_of::<SynRecvEntry>();
    let meta = size_of::<SlotMeta>();
    let conn = size_of::<Connection>();
    let cb = conn.div_ceil(64) * 64;
    println!("TIME-WAIT entry:        {tw:4} bytes");
    println!("SYN-RECEIVED entry:     {sr:4} bytes");
    println!("slot metadata (hot):    {meta:4} bytes");
    println!(
        "control block:          {conn:4} bytes ({cb} in the slab, {} cache lines)",
        cb / 64
    );
    assert!(tw <= 32, "TIME-WAIT entry is {tw} bytes");
    assert!(sr <= 64, "SYN-RECEIVED entry is {sr} bytes");
    assert!(meta <= 32, "slot metadata is {meta} bytes");
}

/// Opens a connection from `c` (crafted handshake) and returns the server's handle.
fn establish(rig: &mut Rig, l: ListenerId, c: &mut Client) -> xtcp::stack::ConnHandle {
    rig.inject(c.ip, &c.syn());
    let out = rig.poll();
    let synack = to(c, &out);
    assert_eq!(synack.len(), 1, "one SYN-ACK: {out:?}");
    assert_eq!(synack[0].control, TcpControl::Syn);
    c.take(&synack[0]);
    rig.inject(c.ip, &c.ack());
    assert!(rig.poll().is_empty());
    rig.stack.accept(l).expect("accepted")
}

/// The server closes first; the client ACKs the FIN and sends its own; the server's last ACK
/// leaves the tuple in the server's TIME-WAIT table. Returns that last ACK.
fn server_active_close(rig: &mut Rig, l: ListenerId, c: &mut Client) -> Seg {
    let h = establish(rig, l, c);
    rig.stack.close(h).unwrap();
    let out = rig.poll();
    let fin = to(c, &out);
    assert_eq!(fin.len(), 1);
    assert_eq!(fin[0].control, TcpControl::Fin);
    c.take(&fin[0]);
    rig.inject(c.ip, &c.ack());
    let fin = c.fin();
    rig.inject(c.ip, &fin);
    let out = rig.poll();
    let last = to(c, &out);
    assert_eq!(last.len(), 1, "{out:?}");
    assert!(rig.stack.in_time_wait(&c.tuple()), "server holds TIME-WAIT");
    last[0].clone()
}

// ------------------------------------------------------------------ RFC 6191

fn rfc6191_rig() -> (Rig, ListenerId) {
    let mut rig = Rig::new(server_config());
    let l = rig
        .stack
        .listen(SocketAddrV4::new(SERVER_IP, PORT))
        .unwrap();
    (rig, l)
}

#[test]
fn rfc6191_syn_with_higher_isn_reopens_a_time_wait_tuple() {
    let (mut rig, l) = rfc6191_rig();
    let mut old = Client::new(client_ip(1), 40000, PORT, 1_000_000);
    server_active_close(&mut rig, l, &mut old);
    // The new incarnation's ISN is above the old RCV.NXT (1_000_002): accepted.
    rig.now += Duration::from_secs(2);
    let mut new = Client::new(old.ip, old.port, PORT, old.snd_nxt.wrapping_add(100_000));
    rig.inject(new.ip, &new.syn());
    let out = to(&new, &rig.poll());
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].control,
        TcpControl::Syn,
        "SYN-ACK for the new incarnation"
    );
    assert_eq!(out[0].ack, Some(new.isn + 1));
    assert!(!rig.stack.in_time_wait(&new.tuple()));
    new.take(&out[0]);
    rig.inject(new.ip, &new.ack());
    assert!(rig.poll().is_empty());
    let h = rig.stack.accept(l).expect("new connection");
    assert_eq!(rig.stack.state(h), Some(State::Established));
    let c = rig.stack.counters();
    assert_eq!(c.time_wait_reuses, 1);
    assert_eq!(c.time_wait, 0);
    assert_eq!(c.passive_opens, 2);
}

#[test]
fn rfc6191_syn_with_lower_isn_and_no_timestamps_gets_the_time_wait_ack() {
    let (mut rig, l) = rfc6191_rig();
    let mut old = Client::new(client_ip(2), 40001, PORT, 2_000_000);
    let last = server_active_close(&mut rig, l, &mut old);
    rig.now += Duration::from_secs(2);
    let new = Client::new(old.ip, old.port, PORT, 1_000);
    rig.inject(new.ip, &new.syn());
    let out = to(&new, &rig.poll());
    assert_eq!(out.len(), 1, "{out:?}");
    // The TIME-WAIT ACK: exactly the last ACK of the old incarnation.
    assert_eq!(out[0].control, TcpControl::None);
    assert_eq!((out[0].seq, out[0].ack), (last.seq, last.ack));
    assert_eq!(out[0].ack, Some(old.snd_nxt));
    assert!(rig.stack.in_time_wait(&old.tuple()), "TIME-WAIT stays");
    let c = rig.stack.counters();
    assert_eq!(
        (c.time_wait_reuses, c.syns_received, c.time_wait),
        (0, 1, 1)
    );
}

#[test]
fn rfc6191_timestamps_decide_when_the_old_incarnation_used_them() {
    let (mut rig, l) = rfc6191_rig();
    let mut old = Client::new(client_ip(3), 40002, PORT, 3_000_000);
    old.timestamps = true;
    old.tsval = 5_000;
    let last = server_active_close(&mut rig, l, &mut old);
    assert!(last.ts.is_some(), "timestamps negotiated");
    rig.now += Duration::from_secs(2);

    // Lower ISN, older TSval: refused, answered with the TIME-WAIT ACK.
    let mut stale = Client::new(old.ip, old.port, PORT, 10);
    stale.timestamps = true;
    stale.tsval = 4_000;
    rig.inject(stale.ip, &stale.syn());
    let out = to(&stale, &rig.poll());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].control, TcpControl::None);
    assert_eq!(out[0].ack, Some(old.snd_nxt));
    assert_eq!(out[0].ts.map(|t| t.tsecr), Some(5_000), "echoes TS.Recent");
    assert!(rig.stack.in_time_wait(&old.tuple()));

    // Higher ISN but older TSval: still refused (the timestamp decides).
    let mut stale2 = stale;
    stale2.isn = old.snd_nxt.wrapping_add(1_000_000);
    rig.inject(stale2.ip, &stale2.syn());
    let out = to(&stale2, &rig.poll());
    assert_eq!(out[0].control, TcpControl::None);
    assert!(rig.stack.in_time_wait(&old.tuple()));

    // Lower ISN, newer TSval: accepted (RFC 6191 §2), a new connection.
    let mut fresh = Client::new(old.ip, old.port, PORT, 10);
    fresh.timestamps = true;
    fresh.tsval = 6_000;
    rig.inject(fresh.ip, &fresh.syn());
    let out = to(&fresh, &rig.poll());
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].control, TcpControl::Syn);
    assert_eq!(out[0].ack, Some(11));
    fresh.take(&out[0]);
    rig.inject(fresh.ip, &fresh.ack());
    rig.poll();
    assert!(rig.stack.accept(l).is_some());
    let c = rig.stack.counters();
    assert_eq!(
        (c.time_wait_reuses, c.time_wait, c.passive_opens),
        (1, 0, 2)
    );
}

#[test]
fn time_wait_reacks_a_retransmitted_fin_and_restarts_2msl() {
    let (mut rig, l) = rfc6191_rig();
    let mut c = Client::new(client_ip(4), 40003, PORT, 4_000_000);
    let last = server_active_close(&mut rig, l, &mut c);
    let closed_at = rig.now;
    rig.now += Duration::from_secs(30);
    // The client did not get our last ACK: it retransmits its FIN.
    c.snd_nxt -= 1;
    let fin = c.fin();
    rig.inject(c.ip, &fin);
    let out = to(&c, &rig.poll());
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].control, out[0].seq, out[0].ack),
        (TcpControl::None, last.seq, last.ack)
    );
    assert_eq!(rig.stack.counters().time_wait_fin_acks, 1);
    // 2MSL (60 s) now counts from the retransmission, not from the close.
    rig.run_until(closed_at + Duration::from_secs(61));
    assert!(rig.stack.in_time_wait(&c.tuple()));
    rig.run_until(closed_at + Duration::from_secs(91));
    assert!(!rig.stack.in_time_wait(&c.tuple()));
    assert_eq!(rig.stack.counters().time_wait_expiries, 1);
}

// ------------------------------------------------------------------ full-connection flood

/// `n` clients connect to a listener whose accept queue (backlog 8) is never drained.
type Flood = (Rig, ListenerId, Vec<Client>, Vec<Vec<Seg>>);

fn accept_flood(policy: AcceptOverflow, cookies: SynCookieMode, n: u32) -> Flood {
    let mut rig = Rig::new(xtcp::stack::StackConfig {
        accept_overflow: policy,
        syn_cookies: cookies,
        ..server_config()
    });
    let l = rig
        .stack
        .listen_with_backlog(SocketAddrV4::new(SERVER_IP, PORT), 32, 8)
        .unwrap();
    let mut replies = Vec::new();
    let mut clients = Vec::new();
    for i in 0..n {
        let mut c = Client::new(client_ip(100 + i), 50000, PORT, 77 * i);
        c.timestamps = true;
        rig.inject(c.ip, &c.syn());
        let out = to(&c, &rig.poll());
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].control, TcpControl::Syn);
        c.take(&out[0]);
        rig.inject(c.ip, &c.ack());
        replies.push(to(&c, &rig.poll()));
        clients.push(c);
        assert!(rig.stack.accept_queue_len(l) <= 8);
    }
    (rig, l, clients, replies)
}

#[test]
fn full_accept_queue_with_drop_policy_drops_the_final_ack_and_retries() {
    let (mut rig, l, clients, replies) =
        accept_flood(AcceptOverflow::Drop, SynCookieMode::WhenFull, 100);
    assert_eq!(rig.stack.accept_queue_len(l), 8, "stays at its backlog");
    assert_eq!(rig.stack.connection_count(), 8);
    assert!(replies.iter().all(|r| r.is_empty()), "dropped silently");
    let c = rig.stack.counters();
    assert_eq!(c.accept_queue_overflows, 92);
    assert_eq!(c.passive_opens, 8);
    assert_eq!(c.resets_sent, 0);
    // The SYN queue (backlog 32) kept the first 32 dropped handshakes; the rest were cookies.
    assert_eq!(rig.stack.syn_queue_len(l), 32);
    assert_eq!(c.syn_cookies_sent, 100 - 8 - 32);
    assert_eq!(
        c.syn_cookies_validated, 0,
        "a cookie ACK that finds no room is not counted"
    );
    // The kept entries retry their SYN-ACK (the client would answer with its ACK again).
    let out = rig.advance(Duration::from_millis(1001));
    let synacks = out.iter().filter(|s| s.control == TcpControl::Syn).count();
    assert_eq!(synacks, 32);
    assert_eq!(rig.stack.counters().retransmits, 32);
    // Room frees up: the application accepts one, and a retried ACK now gets in.
    assert!(rig.stack.accept(l).is_some());
    assert_eq!(rig.stack.accept_queue_len(l), 7);
    let c = clients[8];
    rig.inject(c.ip, &c.ack());
    assert!(rig.poll().is_empty());
    assert_eq!(rig.stack.accept_queue_len(l), 8);
    assert_eq!(rig.stack.syn_queue_len(l), 31);
    assert_eq!(rig.stack.counters().passive_opens, 9);
}

#[test]
fn full_accept_queue_with_reset_policy_resets() {
    let (rig, l, _, replies) = accept_flood(AcceptOverflow::Reset, SynCookieMode::WhenFull, 100);
    assert_eq!(rig.stack.accept_queue_len(l), 8);
    assert_eq!(rig.stack.connection_count(), 8);
    for r in &replies[..8] {
        assert!(r.is_empty());
    }
    for r in &replies[8..] {
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].control, TcpControl::Rst);
    }
    let c = rig.stack.counters();
    assert_eq!(c.accept_queue_overflows, 92);
    assert_eq!(c.resets_sent, 92);
    assert_eq!(rig.stack.syn_queue_len(l), 0, "reset entries are gone");
}

#[test]
fn full_accept_queue_with_cookies_always_follows_the_policy_too() {
    for policy in [AcceptOverflow::Drop, AcceptOverflow::Reset] {
        let (rig, l, _, replies) = accept_flood(policy, SynCookieMode::Always, 20);
        assert_eq!(rig.stack.accept_queue_len(l), 8);
        let c = rig.stack.counters();
        assert_eq!((c.syn_cookies_sent, c.syn_cookies_validated), (20, 8));
        assert_eq!(c.accept_queue_overflows, 12);
        let rsts = replies
            .iter()
            .flatten()
            .filter(|s| s.control == TcpControl::Rst)
            .count();
        assert_eq!(
            rsts,
            if policy == AcceptOverflow::Reset {
                12
            } else {
                0
            }
        );
    }
}

// ------------------------------------------------------------------ orphans

#[test]
fn orphans_beyond_the_limit_reset_the_oldest() {
    let mut rig = Rig::new(xtcp::stack::StackConfig {
        max_orphans: 3,
        ..server_config()
    });
    let l = rig
        .stack
        .listen(SocketAddrV4::new(SERVER_IP, PORT))
        .unwrap();
    let mut clients: Vec<Client> = (0..5)
        .map(|i| Client::new(client_ip(200 + i), 41000, PORT, 1000 * i))
        .collect();
    let handles: Vec<_> = clients
        .iter_mut()
        .map(|c| establish(&mut rig, l, c))
        .collect();
    while rig.stack.poll_event().is_some() {}
    // The application closes all five; no client ever ACKs the FINs: FIN-WAIT-1 orphans.
    let mut out = Vec::new();
    for &h in &handles {
        rig.stack.close(h).unwrap();
        out.extend(rig.poll());
    }
    let c = rig.stack.counters();
    assert_eq!(c.orphans, 3);
    assert_eq!(c.orphan_overflows, 2);
    for (i, cl) in clients.iter().enumerate() {
        let segs = to(cl, &out);
        let reset = segs.iter().any(|s| s.control == TcpControl::Rst);
        // The two oldest (first closed) were reset, the rest still wait in FIN-WAIT-1.
        assert_eq!(reset, i < 2, "client {i}: {segs:?}");
        let state = rig.stack.state(handles[i]);
        assert_eq!(state, (i >= 2).then_some(State::FinWait1), "client {i}");
    }
    assert_eq!(rig.stack.connection_count(), 3);
    assert!(c.resets_sent >= 2);
}

#[test]
fn orphan_in_fin_wait_2_times_out_after_60_s() {
    let mut rig = Rig::new(server_config());
    assert_eq!(
        rig.stack.config().tcp.fin_wait2_timeout,
        Duration::from_secs(60),
        "default"
    );
    let l = rig
        .stack
        .listen(SocketAddrV4::new(SERVER_IP, PORT))
        .unwrap();
    let mut c = Client::new(client_ip(300), 42000, PORT, 5);
    let h = establish(&mut rig, l, &mut c);
    rig.stack.close(h).unwrap();
    let out = to(&c, &rig.poll());
    assert_eq!(out[0].control, TcpControl::Fin);
    c.take(&out[0]);
    // The peer ACKs our FIN but never sends its own.
    rig.inject(c.ip, &c.ack());
    rig.poll();
    assert_eq!(rig.stack.state(h), Some(State::FinWait2));
    assert_eq!(rig.stack.counters().orphans, 1);
    let closed_at = rig.now;
    rig.run_until(closed_at + Duration::from_millis(59_900));
    assert_eq!(rig.stack.state(h), Some(State::FinWait2));
    rig.run_until(closed_at + Duration::from_millis(60_100));
    assert_eq!(rig.stack.state(h), None, "timed out and freed");
    let cnt = rig.stack.counters();
    assert_eq!(cnt.fin_wait2_timeouts, 1);
    assert_eq!(cnt.orphans, 0);
    assert_eq!(rig.stack.connection_count(), 0);
    assert!(!rig.stack.in_time_wait(&c.tuple()));
    let events: Vec<Event> = std::iter::from_fn(|| rig.stack.poll_event())
        .map(|(_, e)| e)
        .collect();
    assert!(!events.contains(&Event::Reset), "{events:?}");
}

// ------------------------------------------------------------------ ephemeral ports

#[test]
fn ephemeral_port_exhaustion_is_a_clear_error() {
    let mut rig = Rig::new(xtcp::stack::StackConfig {
        ephemeral_ports: 40000..=40003,
        ..server_config()
    });
    let dst = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 443);
    rig.stack
        .add_neighbor(*dst.ip(), xtcp_testkit::rig::CLIENT_MAC);
    let now = rig.now;
    let mut ports = Vec::new();
    for _ in 0..4 {
        let h = rig.stack.connect(now, None, dst).expect("port available");
        ports.push(rig.stack.connection(h).unwrap().tuple().local_port);
    }
    ports.sort_unstable();
    assert_eq!(ports, [40000, 40001, 40002, 40003]);
    let err = rig.stack.connect(now, None, dst).unwrap_err();
    assert!(matches!(err, StackError::PortsExhausted(_)));
    assert_eq!(
        err.to_string(),
        "no ephemeral port available in 40000..=40003 from 10.0.0.1 to 10.0.0.9:443: all 4 \
         ports to that destination are in use or in TIME-WAIT"
    );
    // Another destination still has the whole range.
    let other = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 9), 8443);
    assert!(rig.stack.connect(now, None, other).is_ok());
}
