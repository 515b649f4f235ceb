//! Per-state tests of the TCP connection state machine with exact segment exchanges
//! (flags, seq, ack) and the states of both ends at each step.
//!
//! The harness is the test kit's `Pair`: A is a client connection driven by hand, B is a
//! server `Stack` with a listener, so every passive open here is the production one
//! (listener, SYN queue or SYN cookies, `Connection::from_handshake`) and B's TIME-WAIT is the
//! stack's table. A test decides which segment is delivered, lost or reordered. ISNs are
//! fixed: A (client) 1000, B (server) 5000 (with cookies, B's is the cookie).

use xtcp::tcp::{Connection, Counters, Event, State, TcpConfig, rst_for_unexpected};
use xtcp::time::{Duration, Instant};
use xtcp::wire::{SeqNumber, TcpControl, TcpRepr};
use xtcp_testkit::pair::{Pair, PairConfig, plain_cfg, tuple_a};
use xtcp_testkit::seg::{Seg, k, keys};

const A_ISS: u32 = 1000;
const B_ISS: u32 = 5000;

fn events(c: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

// ============================================================ opening

#[test]
fn handshake() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    assert_eq!(events(&mut p.a), [Event::Connected]);
    assert_eq!(p.b_events(), [Event::Connected]);
    // Nothing more to send on either side.
    assert!(p.out_a().is_empty());
    assert!(p.out_b().is_empty());
    assert_eq!(p.a.poll_at(), None);
}

/// A pair whose B answers SYNs from its SYN queue, or with cookies.
fn pair(cfg_a: TcpConfig, cfg_b: TcpConfig, cookies: bool) -> Pair {
    Pair::with(PairConfig {
        cookies,
        ..PairConfig::new(cfg_a, cfg_b)
    })
}

/// Completes a handshake whose SYN the test already took from A (and perhaps changed).
fn finish_handshake(p: &mut Pair, syn: &Seg) -> (Seg, Seg) {
    p.deliver_b(syn);
    let synack = p.out_b().remove(0);
    p.deliver_a(&synack);
    let ack = p.out_a().remove(0);
    p.deliver_b(&ack);
    assert_eq!(p.states(), (State::Established, State::Established));
    (synack, ack)
}

fn options_are_negotiated_only_when_both_offer(cookies: bool) {
    // A offers everything with a 1 MiB buffer; B offers everything.
    let cfg_a = TcpConfig {
        recv_buffer: 1 << 20,
        ..TcpConfig::default()
    };
    let cfg_b = TcpConfig {
        mss: 1400,
        ..TcpConfig::default()
    };
    let mut p = pair(cfg_a, cfg_b, cookies);
    let syn = p.out_a().remove(0);
    assert_eq!(syn.mss, Some(1460));
    assert_eq!(syn.wscale, Some(5)); // 1 MiB >> 5 fits 16 bits
    assert!(syn.sack_permitted);
    assert_eq!(syn.ts.map(|t| t.tsecr), Some(0));
    let (synack, _) = finish_handshake(&mut p, &syn);
    assert_eq!(synack.mss, Some(1400));
    assert_eq!(synack.wscale, Some(1)); // 64 KiB needs a shift of 1
    assert!(synack.sack_permitted);
    assert_eq!(synack.ts.map(|t| t.tsecr), syn.ts.map(|t| t.tsval));
    // MSS is clamped to the smaller of the two (our MTU limit and the peer's offer).
    assert_eq!(p.a.mss(), 1400);
    assert_eq!(p.b().mss(), 1400);
    assert_eq!(p.a.window_scales(), (1, 5));
    assert_eq!(p.b().window_scales(), (5, 1));
    assert!(p.a.timestamps_enabled() && p.b().timestamps_enabled());
    assert!(p.a.sack_enabled() && p.b().sack_enabled());
    assert_eq!(p.b_events(), [Event::Connected]);

    // B offers nothing: A must not use any option, and B none either.
    let mut p = pair(TcpConfig::default(), plain_cfg(), cookies);
    let syn = p.out_a().remove(0);
    let (synack, ack) = finish_handshake(&mut p, &syn);
    assert_eq!(synack.wscale, None);
    assert!(!synack.sack_permitted);
    assert_eq!(synack.ts, None);
    assert_eq!(p.a.window_scales(), (0, 0));
    assert!(!p.a.timestamps_enabled());
    assert!(!p.a.sack_enabled());
    assert_eq!(ack.ts, None, "no timestamps unless both offered");
    assert_eq!(p.b().window_scales(), (0, 0));
    assert!(!p.b().timestamps_enabled() && !p.b().sack_enabled());

    // A offers nothing: B must not offer anything back.
    let mut p = pair(plain_cfg(), TcpConfig::default(), cookies);
    let syn = p.out_a().remove(0);
    let (synack, _) = finish_handshake(&mut p, &syn);
    assert_eq!(
        (synack.wscale, synack.sack_permitted, synack.ts),
        (None, false, None)
    );
    assert_eq!(p.b().window_scales(), (0, 0));
    assert!(!p.b().timestamps_enabled() && !p.b().sack_enabled());

    // A SYN without MSS option: RFC 9293 §3.7.1 default 536 (a cookie's table floor too).
    let mut p = pair(plain_cfg(), plain_cfg(), cookies);
    let mut syn = p.out_a().remove(0);
    syn.mss = None;
    finish_handshake(&mut p, &syn);
    assert_eq!(p.b().mss(), 536);
}

#[test]
fn handshake_negotiates_options_only_when_both_offer() {
    options_are_negotiated_only_when_both_offer(false);
}

#[test]
fn handshake_negotiates_options_only_when_both_offer_with_syn_cookies() {
    options_are_negotiated_only_when_both_offer(true);
}

/// Timestamps are negotiated by the SYN and SYN-ACK (RFC 7323 §3.2), so a final ACK that
/// leaves TSopt out does not turn them off: it is dropped, and so is any later segment
/// without TSopt; the handshake completes with the next ACK that carries one. (This was the
/// gap that let a stale TSval through on the production path: the listener took "no TSopt
/// on the final ACK" for "no timestamps".)
fn timestamps_stay_on_when_the_final_ack_omits_them(cookies: bool) {
    let mut p = pair(TcpConfig::default(), TcpConfig::default(), cookies);
    let syn = p.out_a().remove(0);
    p.deliver_b(&syn);
    let synack = p.out_b().remove(0);
    p.deliver_a(&synack);
    let ack = p.out_a().remove(0);
    let mut bare = ack.clone();
    bare.ts = None;
    p.deliver_b(&bare);
    let dropped = p.stack.counters().ts_missing_drops;
    if cookies {
        // The cookie's MAC covers the option bits carried in our TSval, which only an echoed
        // TSecr returns: without TSopt the cookie does not validate, and the ACK is answered
        // like any other stray ACK, with <SEQ=SEG.ACK><CTL=RST>.
        assert_eq!(p.stack.counters().syn_cookies_rejected, 1);
        assert_eq!(p.b_state(), State::Closed);
        assert_eq!(keys(&p.out_b()), [k("R", bare.ack.unwrap(), None, 0)]);
        return;
    }
    assert_eq!(dropped, 1);
    assert_eq!(p.b_state(), State::SynReceived);
    p.deliver_b(&ack);
    assert_eq!(p.b_state(), State::Established);
    assert!(p.b().timestamps_enabled());
    assert_eq!(p.b().ts_recent(), ack.ts.map(|t| t.tsval));
    // Data without TSopt on the established connection: dropped silently too.
    p.a.send(b"data").unwrap();
    let mut data = p.out_a().remove(0);
    data.ts = None;
    p.deliver_b(&data);
    assert!(p.out_b().is_empty());
    assert_eq!(p.b().recv_queue(), 0);
    assert_eq!(p.stack.counters().ts_missing_drops, 2);
}

#[test]
fn timestamps_stay_on_when_the_final_ack_omits_them_syn_queue() {
    timestamps_stay_on_when_the_final_ack_omits_them(false);
}

#[test]
fn timestamps_stay_on_when_the_final_ack_omits_them_syn_cookies() {
    timestamps_stay_on_when_the_final_ack_omits_them(true);
}

/// The handshake itself, through the SYN queue and with cookies: same segments but for
/// B's ISN, and a cookie keeps no SYN-RECEIVED state.
#[test]
fn handshake_with_syn_cookies() {
    let mut p = pair(plain_cfg(), plain_cfg(), true);
    p.handshake();
    assert_ne!(p.b_iss, B_ISS, "the cookie is the ISN");
    assert_eq!(p.stack.counters().syn_cookies_validated, 1);
    assert_eq!(p.stack.syn_recv_count(), 0);
    assert_eq!(p.b_events(), [Event::Connected]);
    assert_eq!(events(&mut p.a), [Event::Connected]);
}

#[test]
fn simultaneous_open() {
    // Both sides actively open to each other (RFC 9293 Figure 8).
    let cfg = plain_cfg();
    let mut a = Connection::connect(&cfg, tuple_a(), SeqNumber(A_ISS), 0, Instant::ZERO);
    let mut b = Connection::connect(
        &cfg,
        tuple_a().reversed(),
        SeqNumber(B_ISS),
        0,
        Instant::ZERO,
    );
    let mut c = Counters::default();
    let now = Instant::ZERO;
    let syn_a = Seg::from_repr(&a.poll_transmit(now, &mut c).unwrap());
    let syn_b = Seg::from_repr(&b.poll_transmit(now, &mut c).unwrap());
    assert_eq!(syn_a.key(), k("S", A_ISS, None, 0));
    assert_eq!(syn_b.key(), k("S", B_ISS, None, 0));
    a.handle_segment(now, &syn_b.repr(), &mut c);
    b.handle_segment(now, &syn_a.repr(), &mut c);
    assert_eq!(
        (a.state(), b.state()),
        (State::SynReceived, State::SynReceived)
    );
    let sa_a = Seg::from_repr(&a.poll_transmit(now, &mut c).unwrap());
    let sa_b = Seg::from_repr(&b.poll_transmit(now, &mut c).unwrap());
    assert_eq!(sa_a.key(), k("S.", A_ISS, Some(B_ISS + 1), 0));
    assert_eq!(sa_b.key(), k("S.", B_ISS, Some(A_ISS + 1), 0));
    a.handle_segment(now, &sa_b.repr(), &mut c);
    b.handle_segment(now, &sa_a.repr(), &mut c);
    assert_eq!(
        (a.state(), b.state()),
        (State::Established, State::Established)
    );
    assert!(a.poll_transmit(now, &mut c).is_none());
    assert!(b.poll_transmit(now, &mut c).is_none());
    assert_eq!(events(&mut a), [Event::Connected]);
    assert_eq!(events(&mut b), [Event::Connected]);
}

// ============================================================ closing

#[test]
fn active_close_from_client() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.a.close(p.now).unwrap();
    assert_eq!(p.states(), (State::FinWait1, State::Established));
    let fin = p.out_a();
    assert_eq!(keys(&fin), [k("F.", A_ISS + 1, Some(B_ISS + 1), 0)]);
    p.deliver_b(&fin[0]);
    assert_eq!(p.states(), (State::FinWait1, State::CloseWait));
    let ack = p.out_b();
    assert_eq!(keys(&ack), [k(".", B_ISS + 1, Some(A_ISS + 2), 0)]);
    p.deliver_a(&ack[0]);
    assert_eq!(p.states(), (State::FinWait2, State::CloseWait));
    assert_eq!(p.b_events(), [Event::Connected, Event::PeerClosed]);
    p.close_b().unwrap();
    assert_eq!(p.states(), (State::FinWait2, State::LastAck));
    let fin = p.out_b();
    assert_eq!(keys(&fin), [k("F.", B_ISS + 1, Some(A_ISS + 2), 0)]);
    p.deliver_a(&fin[0]);
    assert_eq!(p.states(), (State::TimeWait, State::LastAck));
    let ack = p.out_a();
    assert_eq!(keys(&ack), [k(".", A_ISS + 2, Some(B_ISS + 2), 0)]);
    p.deliver_b(&ack[0]);
    assert_eq!(p.states(), (State::TimeWait, State::Closed));
    assert_eq!(
        events(&mut p.a),
        [Event::Connected, Event::PeerClosed, Event::Closed]
    );
    assert_eq!(p.b_events(), [Event::Closed]);
}

#[test]
fn active_close_from_server() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.close_b().unwrap();
    let fin = p.out_b();
    assert_eq!(keys(&fin), [k("F.", B_ISS + 1, Some(A_ISS + 1), 0)]);
    p.deliver_a(&fin[0]);
    assert_eq!(p.states(), (State::CloseWait, State::FinWait1));
    let ack = p.out_a();
    assert_eq!(keys(&ack), [k(".", A_ISS + 1, Some(B_ISS + 2), 0)]);
    p.deliver_b(&ack[0]);
    assert_eq!(p.states(), (State::CloseWait, State::FinWait2));
    p.a.close(p.now).unwrap();
    let fin = p.out_a();
    assert_eq!(keys(&fin), [k("F.", A_ISS + 1, Some(B_ISS + 2), 0)]);
    assert_eq!(p.states(), (State::LastAck, State::FinWait2));
    p.deliver_b(&fin[0]);
    assert_eq!(p.states(), (State::LastAck, State::TimeWait));
    let ack = p.out_b();
    assert_eq!(keys(&ack), [k(".", B_ISS + 2, Some(A_ISS + 2), 0)]);
    p.deliver_a(&ack[0]);
    assert_eq!(p.states(), (State::Closed, State::TimeWait));
}

/// LAST-ACK closes on the ACK of our FIN only (RFC 9293 §3.10.7.4): an ACK of the data
/// before it keeps the state (and the retransmission timer), the ACK of the FIN closes at once
/// and stops every timer.
#[test]
fn last_ack_closes_only_on_the_ack_of_the_fin() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.close_b().unwrap();
    let fin_b = p.out_b();
    p.deliver_a(&fin_b[0]);
    let _ = p.out_a();
    p.a.send(b"tail").unwrap();
    p.a.close(p.now).unwrap();
    let out = p.out_a();
    assert_eq!(p.states().0, State::LastAck);
    let sent: usize = out.iter().map(|s| s.payload.len()).sum();
    assert_eq!(sent, 4);
    assert_eq!(out.last().unwrap().control, TcpControl::Fin);
    // An ACK of the data, not of the FIN.
    let mut partial = Seg {
        control: TcpControl::None,
        seq: B_ISS + 2,
        ack: Some(A_ISS + 1 + 4),
        window: 65535,
        src_port: out[0].dst_port,
        dst_port: out[0].src_port,
        ..Seg::default()
    };
    p.deliver_a(&partial);
    assert_eq!(p.states().0, State::LastAck);
    assert!(p.a.poll_at().is_some(), "the FIN is still timed");
    // The ACK of the FIN.
    partial.ack = Some(A_ISS + 1 + 4 + 1);
    p.deliver_a(&partial);
    assert_eq!(p.states().0, State::Closed);
    assert_eq!(p.a.poll_at(), None);
    assert!(p.out_a().is_empty());
}

#[test]
fn simultaneous_close_via_closing() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.a.close(p.now).unwrap();
    p.close_b().unwrap();
    let fin_a = p.out_a();
    let fin_b = p.out_b();
    assert_eq!(keys(&fin_a), [k("F.", A_ISS + 1, Some(B_ISS + 1), 0)]);
    assert_eq!(keys(&fin_b), [k("F.", B_ISS + 1, Some(A_ISS + 1), 0)]);
    p.deliver_a(&fin_b[0]);
    p.deliver_b(&fin_a[0]);
    assert_eq!(p.states(), (State::Closing, State::Closing));
    let ack_a = p.out_a();
    let ack_b = p.out_b();
    assert_eq!(keys(&ack_a), [k(".", A_ISS + 2, Some(B_ISS + 2), 0)]);
    assert_eq!(keys(&ack_b), [k(".", B_ISS + 2, Some(A_ISS + 2), 0)]);
    p.deliver_a(&ack_b[0]);
    p.deliver_b(&ack_a[0]);
    assert_eq!(p.states(), (State::TimeWait, State::TimeWait));
}

#[test]
fn fin_and_ack_together_in_fin_wait_1_go_straight_to_time_wait() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.a.close(p.now).unwrap();
    let fin = p.out_a();
    p.deliver_b(&fin[0]);
    // B's application closes before B's stack sends the ACK: one FIN+ACK acks A's FIN.
    p.close_b().unwrap();
    let finack = p.out_b();
    assert_eq!(keys(&finack), [k("F.", B_ISS + 1, Some(A_ISS + 2), 0)]);
    assert_eq!(p.states(), (State::FinWait1, State::LastAck));
    p.deliver_a(&finack[0]);
    assert_eq!(p.states(), (State::TimeWait, State::LastAck));
    let ack = p.out_a();
    assert_eq!(keys(&ack), [k(".", A_ISS + 2, Some(B_ISS + 2), 0)]);
    p.deliver_b(&ack[0]);
    assert_eq!(p.states(), (State::TimeWait, State::Closed));
}

#[test]
fn half_close_keeps_data_flowing_the_other_way() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    // A shuts down writing; B keeps sending; A keeps receiving.
    p.a.shutdown(p.now).unwrap();
    assert_eq!(p.a.send(b"x"), Err(xtcp::tcp::TcpError::NotWritable));
    let fin = p.out_a();
    assert_eq!(keys(&fin), [k("F.", A_ISS + 1, Some(B_ISS + 1), 0)]);
    p.deliver_b(&fin[0]);
    let ack = p.out_b();
    p.deliver_a(&ack[0]);
    assert_eq!(p.states(), (State::FinWait2, State::CloseWait));
    assert_eq!(p.b_send(b"hello after your FIN"), 20);
    let data = p.out_b();
    assert_eq!(keys(&data), [k(".", B_ISS + 1, Some(A_ISS + 2), 20)]);
    p.deliver_a(&data[0]);
    let ack = p.out_a();
    assert_eq!(keys(&ack), [k(".", A_ISS + 2, Some(B_ISS + 21), 0)]);
    let mut buf = [0u8; 64];
    let n = p.a.recv(&mut buf);
    assert_eq!(&buf[..n], b"hello after your FIN");
    p.deliver_b(&ack[0]);
    p.close_b().unwrap();
    let fin = p.out_b();
    assert_eq!(keys(&fin), [k("F.", B_ISS + 21, Some(A_ISS + 2), 0)]);
    p.deliver_a(&fin[0]);
    assert_eq!(p.states(), (State::TimeWait, State::LastAck));
}

#[test]
fn time_wait_lasts_exactly_2msl_and_reacks_a_retransmitted_fin() {
    let msl = Duration::from_secs(30);
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.a.close(p.now).unwrap();
    let fin = p.out_a();
    p.deliver_b(&fin[0]);
    p.close_b().unwrap();
    let finack = p.out_b();
    p.deliver_a(&finack[0]);
    assert_eq!(p.a.state(), State::TimeWait);
    let entered = p.now;
    assert_eq!(p.a.poll_at(), Some(entered + 2 * msl));
    let _lost_ack = p.out_a();

    // B retransmits its FIN after 10 s: A re-ACKs it and restarts the 2MSL timer.
    p.advance(Duration::from_secs(10));
    p.deliver_a(&finack[0]);
    let reack = p.out_a();
    assert_eq!(keys(&reack), [k(".", A_ISS + 2, Some(B_ISS + 2), 0)]);
    assert_eq!(p.a.poll_at(), Some(p.now + 2 * msl));
    let restarted = p.now;

    // One microsecond before 2MSL: still TIME-WAIT; at exactly 2MSL: CLOSED.
    p.advance(2 * msl - Duration::from_micros(1));
    assert_eq!(p.a.state(), State::TimeWait);
    p.advance(Duration::from_micros(1));
    assert_eq!(p.now, restarted + 2 * msl);
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(p.a.poll_at(), None);
}

// ============================================================ resets

/// Builds a RST (with the given seq) from B to A, or A to B.
fn rst(src_port: u16, dst_port: u16, seq: u32, ack: Option<u32>) -> Seg {
    Seg {
        control: TcpControl::Rst,
        seq,
        ack,
        window: 0,
        wscale: None,
        mss: None,
        sack_permitted: false,
        sack: vec![],
        ts: None,
        src_port,
        dst_port,
        ..Seg::default()
    }
}

#[test]
fn rst_in_syn_sent_needs_an_acceptable_ack() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    let _syn = p.out_a();
    // A RST without ACK, or with a wrong ACK, is ignored (the latter draws nothing: RST).
    p.deliver_a(&rst(80, 40000, 0, None));
    assert_eq!(p.a.state(), State::SynSent);
    p.deliver_a(&rst(80, 40000, 0, Some(A_ISS + 7)));
    assert_eq!(p.a.state(), State::SynSent);
    assert!(p.out_a().is_empty());
    // Connection refused: RST,ACK acking our SYN.
    p.deliver_a(&rst(80, 40000, 0, Some(A_ISS + 1)));
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(events(&mut p.a), [Event::Reset, Event::Closed]);
}

#[test]
fn bad_ack_in_syn_sent_draws_a_reset() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    let _syn = p.out_a();
    let mut bogus = rst(80, 40000, 777, Some(A_ISS + 50));
    bogus.control = TcpControl::Syn;
    p.deliver_a(&bogus);
    assert_eq!(p.a.state(), State::SynSent);
    // RFC 9293 §3.10.7.3: <SEQ=SEG.ACK><CTL=RST>
    assert_eq!(keys(&p.out_a()), [k("R", A_ISS + 50, None, 0)]);
}

#[test]
fn rst_in_syn_received_returns_to_listen_silently() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    let syn = p.out_a();
    p.deliver_b(&syn[0]);
    let _synack = p.out_b();
    p.deliver_b(&rst(40000, 80, A_ISS + 1, None));
    assert_eq!(p.b_state(), State::Closed);
    assert_eq!(
        p.b_events(),
        [],
        "a never-accepted connection reports nothing"
    );
}

/// Drives the pair into `target` on side A, returning the pair.
fn pair_in(target: State) -> Pair {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    match target {
        State::Established => {}
        State::FinWait1 => {
            p.a.close(p.now).unwrap();
            let _ = p.out_a();
        }
        State::FinWait2 => {
            p.a.close(p.now).unwrap();
            let fin = p.out_a();
            p.deliver_b(&fin[0]);
            let ack = p.out_b();
            p.deliver_a(&ack[0]);
        }
        State::CloseWait => {
            p.close_b().unwrap();
            let fin = p.out_b();
            p.deliver_a(&fin[0]);
            let _ = p.out_a();
        }
        State::Closing => {
            p.a.close(p.now).unwrap();
            p.close_b().unwrap();
            let _ = p.out_a();
            let fin = p.out_b();
            p.deliver_a(&fin[0]);
            let _ = p.out_a();
        }
        State::LastAck => {
            p.close_b().unwrap();
            let fin = p.out_b();
            p.deliver_a(&fin[0]);
            let _ = p.out_a();
            p.a.close(p.now).unwrap();
            let _ = p.out_a();
        }
        State::TimeWait => {
            p.a.close(p.now).unwrap();
            let fin = p.out_a();
            p.deliver_b(&fin[0]);
            p.close_b().unwrap();
            let finack = p.out_b();
            p.deliver_a(&finack[0]);
            let _ = p.out_a();
        }
        s => panic!("no recipe for {s}"),
    }
    assert_eq!(p.a.state(), target);
    let _ = events(&mut p.a);
    p
}

#[test]
fn exact_rst_closes_in_every_synchronized_state() {
    for st in [
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ] {
        let mut p = pair_in(st);
        let rcv_nxt = p.a.rcv_nxt().0;
        p.deliver_a(&rst(80, 40000, rcv_nxt, None));
        assert_eq!(p.a.state(), State::Closed, "RST at RCV.NXT in {st}");
        let ev = events(&mut p.a);
        match st {
            // RFC 9293 §3.10.7.4: in CLOSING, LAST-ACK, TIME-WAIT just close.
            State::Closing | State::LastAck => assert_eq!(ev, [Event::Closed], "{st}"),
            State::TimeWait => assert_eq!(ev, [], "{st}"),
            _ => assert_eq!(ev, [Event::Reset, Event::Closed], "{st}"),
        }
        assert!(p.out_a().is_empty(), "no reply to a RST in {st}");
    }
}

#[test]
fn in_window_rst_draws_a_challenge_ack_and_the_connection_survives() {
    for st in [State::Established, State::FinWait2, State::CloseWait] {
        let mut p = pair_in(st);
        let rcv_nxt = p.a.rcv_nxt().0;
        let snd_nxt = p.a.snd_nxt().0;
        p.deliver_a(&rst(80, 40000, rcv_nxt + 100, None));
        assert_eq!(p.a.state(), st);
        // RFC 5961 §3.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>
        assert_eq!(keys(&p.out_a()), [k(".", snd_nxt, Some(rcv_nxt), 0)]);
        // Out of window: silently dropped.
        p.deliver_a(&rst(80, 40000, rcv_nxt.wrapping_sub(1_000_000), None));
        assert_eq!(p.a.state(), st);
        assert!(p.out_a().is_empty());
    }
}

#[test]
fn challenge_acks_are_rate_limited() {
    let mut p = pair_in(State::Established);
    let rcv_nxt = p.a.rcv_nxt().0;
    let mut acks = 0;
    for i in 0..100 {
        p.deliver_a(&rst(80, 40000, rcv_nxt + 1 + i, None));
        acks += p.out_a().len();
    }
    assert_eq!(acks, TcpConfig::default().challenge_ack_limit as usize);
    // A second later the budget is back.
    p.advance(Duration::from_secs(1));
    p.deliver_a(&rst(80, 40000, rcv_nxt + 1, None));
    assert_eq!(p.out_a().len(), 1);
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn syn_in_established_draws_a_challenge_ack() {
    let mut p = pair_in(State::Established);
    let mut syn = rst(80, 40000, 123_456, None);
    syn.control = TcpControl::Syn;
    p.deliver_a(&syn);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(keys(&p.out_a()), [k(".", A_ISS + 1, Some(B_ISS + 1), 0)]);
    // Even a SYN exactly at RCV.NXT never aborts (RFC 5961 §4.2).
    let mut syn = rst(80, 40000, B_ISS + 1, None);
    syn.control = TcpControl::Syn;
    p.deliver_a(&syn);
    assert_eq!(p.a.state(), State::Established);
    assert_eq!(keys(&p.out_a()), [k(".", A_ISS + 1, Some(B_ISS + 1), 0)]);
    assert_eq!(events(&mut p.a), []);
}

#[test]
fn segment_to_a_closed_port_gets_the_rfc_reset() {
    // A SYN (no ACK): <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 81,
        control: TcpControl::Syn,
        seq_number: SeqNumber(1000),
        window_len: 100,
        ..TcpRepr::default()
    };
    let r = rst_for_unexpected(&syn).unwrap();
    assert_eq!(
        (r.control, r.seq_number, r.ack_number),
        (TcpControl::Rst, SeqNumber(0), Some(SeqNumber(1001)))
    );
    assert_eq!((r.src_port, r.dst_port), (81, 40000));
    // Data with ACK: <SEQ=SEG.ACK><CTL=RST>
    let data = TcpRepr {
        src_port: 40000,
        dst_port: 81,
        seq_number: SeqNumber(1000),
        ack_number: Some(SeqNumber(77)),
        payload: b"abc",
        ..TcpRepr::default()
    };
    let r = rst_for_unexpected(&data).unwrap();
    assert_eq!(
        (r.control, r.seq_number, r.ack_number),
        (TcpControl::Rst, SeqNumber(77), None)
    );
    // FIN without ACK counts the FIN: ACK = SEQ + LEN + 1.
    let fin = TcpRepr {
        control: TcpControl::Fin,
        seq_number: SeqNumber(u32::MAX),
        payload: b"ab",
        ..TcpRepr::default()
    };
    assert_eq!(
        rst_for_unexpected(&fin).unwrap().ack_number,
        Some(SeqNumber(2))
    );
    // A RST is never answered.
    let r = TcpRepr {
        control: TcpControl::Rst,
        ..TcpRepr::default()
    };
    assert!(rst_for_unexpected(&r).is_none());
}

// ============================================================ data and loss

/// Moves everything each side has to send to the other until both are quiet.
fn pump(p: &mut Pair) -> usize {
    let mut moved = 0;
    loop {
        let from_a = p.out_a();
        let from_b = p.out_b();
        if from_a.is_empty() && from_b.is_empty() {
            return moved;
        }
        moved += from_a.len() + from_b.len();
        for s in &from_a {
            p.deliver_b(s);
        }
        for s in &from_b {
            p.deliver_a(s);
        }
    }
}

#[test]
fn transfer_across_the_2_32_sequence_wrap() {
    // A's ISS sits just below 2^32: its data crosses the wrap.
    let mut p = Pair::with(PairConfig {
        a_iss: u32::MAX - 3000,
        ..PairConfig::new(plain_cfg(), plain_cfg())
    });
    let syn = p.out_a();
    p.deliver_b(&syn[0]);
    let synack = p.out_b();
    p.deliver_a(&synack[0]);
    let ack = p.out_a();
    p.deliver_b(&ack[0]);
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 65536];
    while got.len() < data.len() {
        if sent < data.len() {
            sent += p.a.send(&data[sent..]).unwrap();
        }
        pump(&mut p);
        loop {
            let n = p.b_recv(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(got, data);
    let end = p.a.snd_nxt().0;
    assert!(end < 1_000_000, "sequence space wrapped (SND.NXT = {end})");
    assert_eq!(p.a.snd_una(), p.a.snd_nxt());
}

#[test]
fn lost_syn_is_retransmitted_with_backoff() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    let _lost = p.out_a();
    assert_eq!(p.a.poll_at(), Some(Instant::from_secs(1)));
    p.advance(Duration::from_secs(1));
    let again = p.out_a();
    assert_eq!(keys(&again), [k("S", A_ISS, None, 0)]);
    // Exponential backoff: the next retransmission is 2 s later.
    assert_eq!(p.a.poll_at(), Some(Instant::from_secs(3)));
    p.deliver_b(&again[0]);
    let synack = p.out_b();
    p.deliver_a(&synack[0]);
    assert_eq!(p.a.state(), State::Established);
}

#[test]
fn syn_retry_limit_ends_in_timed_out() {
    let cfg = TcpConfig {
        syn_retries: 2,
        ..plain_cfg()
    };
    let mut p = Pair::new(cfg, plain_cfg());
    let mut sent = p.out_a().len();
    for _ in 0..10 {
        let Some(at) = p.a.poll_at() else { break };
        p.advance(at - p.now);
        sent += p.out_a().len();
    }
    assert_eq!(sent, 3, "one SYN and two retransmissions");
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(events(&mut p.a), [Event::TimedOut, Event::Closed]);
}

#[test]
fn lost_syn_ack_is_retransmitted() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    let syn = p.out_a();
    p.deliver_b(&syn[0]);
    let _lost = p.out_b();
    // B's timer fires first (both 1 s; B started at the same instant).
    p.advance(Duration::from_secs(1));
    let synack = p.out_b();
    assert_eq!(keys(&synack), [k("S.", B_ISS, Some(A_ISS + 1), 0)]);
    // A's SYN retransmission also arrives at B: B answers with the SYN-ACK again.
    let syn2 = p.out_a();
    assert_eq!(keys(&syn2), [k("S", A_ISS, None, 0)]);
    p.deliver_b(&syn2[0]);
    assert_eq!(keys(&p.out_b()), [k("S.", B_ISS, Some(A_ISS + 1), 0)]);
    p.deliver_a(&synack[0]);
    let ack = p.out_a();
    p.deliver_b(&ack[0]);
    assert_eq!(p.states(), (State::Established, State::Established));
}

#[test]
fn lost_fin_is_retransmitted() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.a.close(p.now).unwrap();
    let _lost = p.out_a();
    // The handshake measured a 0 µs RTT, so the RTO is the 200 ms floor (RFC 6298 §2.4).
    assert_eq!(p.a.poll_at(), Some(p.now + Duration::from_millis(200)));
    p.advance(Duration::from_millis(199));
    assert!(p.out_a().is_empty());
    p.advance(Duration::from_millis(1));
    let fin = p.out_a();
    assert_eq!(keys(&fin), [k("F.", A_ISS + 1, Some(B_ISS + 1), 0)]);
    p.deliver_b(&fin[0]);
    let ack = p.out_b();
    p.deliver_a(&ack[0]);
    assert_eq!(p.states(), (State::FinWait2, State::CloseWait));
}

#[test]
fn lost_data_is_retransmitted_and_rto_resets_after_new_ack() {
    let mut p = Pair::new(plain_cfg(), plain_cfg());
    p.handshake();
    p.a.send(b"hello").unwrap();
    let _lost = p.out_a();
    let rto1 = p.a.poll_at().unwrap() - p.now;
    p.advance(rto1);
    let again = p.out_a();
    assert_eq!(keys(&again), [k(".", A_ISS + 1, Some(B_ISS + 1), 5)]);
    let rto2 = p.a.poll_at().unwrap() - p.now;
    assert_eq!(rto2, rto1 * 2, "RTO doubles after a timeout");
    p.deliver_b(&again[0]);
    let ack = p.out_b();
    p.deliver_a(&ack[0]);
    assert_eq!(
        p.a.poll_at(),
        None,
        "timer stops when all data is acknowledged"
    );
    p.a.send(b"more").unwrap();
    let _ = p.out_a();
    let rto3 = p.a.poll_at().unwrap() - p.now;
    assert!(
        rto3 < rto2,
        "backoff ends after a new ACK ({rto3:?} vs {rto2:?})"
    );
}

#[test]
fn close_with_unread_data_aborts_with_rst() {
    let mut p = pair_in(State::Established);
    p.b_send(b"unread");
    let d = p.out_b();
    p.deliver_a(&d[0]);
    let _ack = p.out_a();
    p.a.close(p.now).unwrap();
    assert_eq!(p.a.state(), State::Closed);
    assert_eq!(keys(&p.out_a()), [k("R", A_ISS + 1, None, 0)]);
}

#[test]
fn state_names_print_as_in_the_rfc() {
    let names: Vec<String> = [
        State::Closed,
        State::Listen,
        State::SynSent,
        State::SynReceived,
        State::Established,
        State::FinWait1,
        State::FinWait2,
        State::CloseWait,
        State::Closing,
        State::LastAck,
        State::TimeWait,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(
        names,
        [
            "CLOSED",
            "LISTEN",
            "SYN-SENT",
            "SYN-RECEIVED",
            "ESTABLISHED",
            "FIN-WAIT-1",
            "FIN-WAIT-2",
            "CLOSE-WAIT",
            "CLOSING",
            "LAST-ACK",
            "TIME-WAIT"
        ]
    );
}
