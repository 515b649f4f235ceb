//! Timers: retransmission (RFC 6298), persist (zero-window probes), keepalive, delayed ACK
//! and TIME-WAIT, all driven by `handle_timeout`.

use super::*;

impl<A: Address> Connection<A> {
    /// Runs the timers due at `now`.
    pub fn handle_timeout(&mut self, now: Instant, counters: &mut Counters) {
        if let Some(t) = self.time_wait_until
            && now >= t
        {
            // 2MSL elapsed (RFC 9293 §3.10.8): delete the TCB.
            self.time_wait_until = None;
            self.state = State::Closed;
            return;
        }
        if let Some(t) = self.fin_wait2_until
            && now >= t
            && self.state == State::FinWait2
        {
            counters.fin_wait2_timeouts += 1;
            self.enter_closed(now, None);
            return;
        }
        if let Some(t) = self.ack_at
            && now >= t
        {
            self.ack_at = None;
            if !self.ack_pending {
                self.ack_pending = true;
                self.stats_mut().delayed_acks += 1;
            }
        }
        if let Some(t) = self.keepalive_at
            && now >= t
        {
            self.on_keepalive_timer(now, counters);
            if self.state == State::Closed {
                return;
            }
        }
        if let Some(t) = self.persist.at
            && now >= t
        {
            self.on_persist_timer(now, counters);
            if self.state == State::Closed {
                return;
            }
        }
        if let Some(t) = self.rtx_at
            && now >= t
        {
            self.on_retransmit_timer(now, counters);
        }
    }

    /// RFC 1122 §4.2.3.6: probe an idle connection; end it after `probes` unanswered probes.
    pub(super) fn on_keepalive_timer(&mut self, now: Instant, counters: &mut Counters) {
        let Some(ka) = self.cfg.keepalive else {
            self.keepalive_at = None;
            return;
        };
        if self.snd_una != self.snd_max || self.has_sendable() {
            // Data in flight or waiting: the retransmission or persist timer watches the
            // peer.
            self.keepalive_at = Some(now + ka.idle);
            self.keepalive_sent = 0;
            return;
        }
        if self.keepalive_sent >= ka.probes {
            counters.timeouts += 1;
            self.rst_pending = Some(PendingRst {
                seq: self.snd_max,
                ack: None,
            });
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        self.keepalive_sent += 1;
        self.keepalive_probe = true;
        self.keepalive_at = Some(now + ka.interval);
    }

    pub(super) fn on_persist_timer(&mut self, now: Instant, counters: &mut Counters) {
        self.persist.at = None;
        self.update_persist(now);
        if self.persist.at.is_none() {
            return;
        }
        // RFC 9293 §3.8.6.1: keep probing while the peer answers; give up after as many
        // unanswered probes as data retransmissions (Linux does the same).
        self.persist.unanswered = self.persist.unanswered.saturating_add(1);
        if self.persist.unanswered > self.cfg.data_retries {
            counters.timeouts += 1;
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        self.force_probe = true;
        self.persist.backoff = self.persist.backoff.saturating_add(1);
        self.persist.at = Some(now + self.persist_interval());
    }

    pub(super) fn on_retransmit_timer(&mut self, now: Instant, counters: &mut Counters) {
        self.rtx_count += 1;
        self.stats_mut().rto_expirations += 1;
        let limit = match self.state {
            State::SynSent => self.cfg.syn_retries,
            State::SynReceived => self.cfg.synack_retries,
            _ => self.cfg.data_retries,
        };
        if self.rtx_count > limit {
            counters.timeouts += 1;
            self.tx.clear();
            self.enter_closed(now, Some(Event::TimedOut));
            return;
        }
        counters.retransmit_timeouts += 1;
        crate::trace::debug!(conn = %self.tuple, state = %self.state, backoff = self.rtx_count, "retransmission timeout");
        if self.state.is_synchronized() {
            let mss = self.eff_mss();
            // RFC 5681 §3.1: ssthresh only on the first timeout of a segment; RFC 6582 §4 /
            // RFC 6675 §5.1: recovery ends, `recover` becomes the highest sequence sent.
            if self.rtx_count == 1 {
                let flight = self.flight_size();
                self.cc_mut().on_retransmit_timeout(now, flight, mss);
            } else {
                // RFC 2018 §8: two timeouts in a row may mean the receiver reneged on what it
                // SACKed: forget it.
                self.scoreboard.clear();
                self.cc_mut().on_retransmit_timeout(now, 0, mss);
            }
            self.recovery = Recovery::None;
            self.recover = self.snd_max;
            self.high_rxt = self.snd_una;
            self.dupacks = 0;
            self.rtx_next = None;
        } else {
            self.syn_retransmitted = true;
        }
        // RFC 6298 §5.4-5.6: retransmit the earliest unacknowledged segment, back off.
        self.rtt.back_off();
        self.rtt_probe = None;
        self.snd_nxt = self.snd_una;
        self.rtx_at = Some(self.rtt.deadline(now));
    }
}
