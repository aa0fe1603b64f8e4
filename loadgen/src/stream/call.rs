//! The caller's side of a connection: opening its streams on schedule (and the next when
//! one finishes), small requests at their intended times, cancelling transfers at the end,
//! and what comes back: answers, body data (counted, timed, granted back as credit), ends,
//! credit for uploads, and resets.

use httpws::proto::head::HeadInfo;
use httpws::proto::http1::framing::Framing;
use httpws::proto::stream::{Direction, ResetReason, Verb};

use super::conn::{Call, Conn, Key, Receiving, Sending};
use super::wire::{self, Ask};
use super::worker::Shared;
use crate::args::StreamKind;
use crate::stats::bump;
use crate::wire::{Host, error_token};

/// The `Host` of every request in direct mode (the echo server does not route).
const DIRECT_HOST: &[u8] = b"echo";
/// Nanoseconds in a second.
const NS_PER_S: u128 = 1_000_000_000;

impl Conn {
    /// What the schedule says is due at `now`: events to send, the caller's streams to open,
    /// small requests, and the end of the traffic.
    pub(super) fn tick(&mut self, sh: &Shared, now: u64) {
        self.send_due_events(sh, now);
        if self.caller_rank.is_none() {
            return;
        }
        let p = &sh.phases;
        if !self.opened && now >= sh.open_time() && now < p.end {
            self.opened = true;
            for _ in 0..self.my_streams {
                self.open_stream(sh, now);
            }
        }
        while let Some(intended) = self.next_small_time(sh) {
            if intended > now || intended >= p.end {
                break;
            }
            self.small_k += 1;
            self.call(sh, Ask::Small, intended);
        }
        if !self.stopped && now >= p.end {
            self.stopped = true;
            self.cancel_transfers(sh);
        }
    }

    /// Mixed mode: the intended time of the next small request (the callers' schedules
    /// interleave evenly at `--rate` in total).
    pub(super) fn next_small_time(&self, sh: &Shared) -> Option<u64> {
        let rank = self.caller_rank? as u128;
        if sh.plan.kind != StreamKind::Mixed {
            return None;
        }
        let rate = u128::from(sh.plan.small_rate);
        let callers = sh.callers() as u128;
        // Request j of all callers is meant for t0 + j/rate; this caller sends j = rank + k·callers.
        let j = rank + u128::from(self.small_k) * callers;
        let offset = j * NS_PER_S / rate;
        Some(
            sh.phases
                .t0
                .saturating_add(u64::try_from(offset).unwrap_or(u64::MAX)),
        )
    }

    /// Open one of this caller's streams.
    fn open_stream(&mut self, sh: &Shared, now: u64) {
        let plan = &sh.plan;
        let ask = match plan.kind {
            StreamKind::Events => Ask::Events {
                interval_us: u64::try_from(plan.interval.as_micros()).unwrap_or(u64::MAX),
                bytes: plan.event_bytes,
            },
            StreamKind::Download => Ask::Bytes {
                len: Some(plan.stream_bytes),
                rate: None,
            },
            StreamKind::Upload => Ask::Sink {
                len: plan.stream_bytes,
            },
            StreamKind::Mixed => Ask::Bytes {
                len: None,
                rate: plan.bulk_rate,
            },
        };
        sh.stats.borrow_mut().opened += 1;
        self.call(sh, ask, now);
    }

    /// Send request `ask` (meant for `intended`) to this caller's target.
    fn call(&mut self, sh: &Shared, ask: Ask, intended: u64) {
        let cseq = self.next_cseq;
        self.next_cseq += 1;
        let host = if sh.config.direct {
            Host::Fixed(DIRECT_HOST)
        } else {
            Host::Endpoint {
                prefix: sh.config.name_prefix.as_bytes(),
                index: self.target,
            }
        };
        let body: &[u8] = match ask {
            Ask::Small => &sh.small_body,
            _ => &[],
        };
        let mask = self.mask();
        wire::put_request(
            &mut self.out,
            &mut self.scratch,
            host,
            cseq,
            ask,
            body,
            mask,
        );
        let send = match ask {
            Ask::Sink { len } => Some(Sending {
                left: Some(len),
                credit: httpws::proto::stream::STREAM_WINDOW,
                queued: false,
                pace: None,
            }),
            _ => None,
        };
        let call = Call {
            ask,
            sent_ns: intended,
            // The length is known once the response head comes.
            recv: Receiving::new(None),
            send,
        };
        self.calls.insert(cseq, call);
        sh.call_opened();
        if matches!(ask, Ask::Small) {
            sh.stats.borrow_mut().small_sent += 1;
        }
        self.queue_send(Key::Call(cseq));
    }

    /// The end of the traffic: downloads and uploads in progress are reset (`cancel`);
    /// event streams end from the server, small requests are answered.
    fn cancel_transfers(&mut self, sh: &Shared) {
        let transfers: Vec<u64> = self
            .calls
            .iter()
            .filter(|(_, c)| matches!(c.ask, Ask::Bytes { .. } | Ask::Sink { .. }))
            .map(|(&cseq, _)| cseq)
            .collect();
        for cseq in transfers {
            let mask = self.mask();
            wire::put_reset(
                &mut self.out,
                &mut self.tag,
                Direction::Outgoing,
                cseq,
                ResetReason::Cancel,
                mask,
            );
            self.end_call(sh, cseq);
            sh.stats.borrow_mut().cancelled_at_end += 1;
        }
    }

    /// Forget call `cseq`, which has ended.
    fn end_call(&mut self, sh: &Shared, cseq: u64) -> Option<Call> {
        let call = self.calls.remove(&cseq)?;
        sh.call_closed();
        Some(call)
    }

    /// A response to one of our requests, received at `now`.
    pub(super) fn on_response(&mut self, sh: &Shared, msg: &[u8], info: &HeadInfo, now: u64) {
        let cseq = info.cseq;
        let Some(call) = self.calls.get(&cseq) else {
            // A response that crossed our own reset (the target answered before the proxy
            // had it): dropped. One for a CSeq we never used is a fault.
            if cseq == 0 || cseq >= self.next_cseq {
                sh.stats.borrow_mut().unknown += 1;
            }
            return;
        };
        let ask = call.ask;
        let sent_ns = call.sent_ns;
        if info.status != 200 {
            let token = error_token(msg).unwrap_or_else(|| format!("status-{}", info.status));
            bump(&mut sh.stats.borrow_mut().errors, &token);
            self.end_call(sh, cseq);
            if matches!(ask, Ask::Small) {
                sh.stats.borrow_mut().small_answered += 1;
            }
            return;
        }
        match ask {
            Ask::Small => {
                self.end_call(sh, cseq);
                let mut stats = sh.stats.borrow_mut();
                stats.small_answered += 1;
                if let Some(phase) = sh.small_phase(sent_ns) {
                    stats.small_hist[phase].saturating_record(now.saturating_sub(sent_ns).max(1));
                }
            }
            // The whole answer to an upload: it is complete.
            Ask::Sink { .. } => {
                self.end_call(sh, cseq);
                self.finished(sh, sent_ns, now);
            }
            Ask::Events { .. } | Ask::Bytes { .. } if !info.stream => {
                bump(&mut sh.stats.borrow_mut().errors, "not-a-stream");
                self.end_call(sh, cseq);
            }
            // A stream head: its body follows as data messages.
            Ask::Events { .. } | Ask::Bytes { .. } => {
                if let (Some(call), Framing::Length(n)) = (self.calls.get_mut(&cseq), info.framing)
                {
                    call.recv.len = Some(n);
                }
            }
        }
    }

    /// A transfer sent at `sent_ns` finished at `now`: timed, and followed by the next.
    fn finished(&mut self, sh: &Shared, sent_ns: u64, now: u64) {
        let mut stats = sh.stats.borrow_mut();
        stats.completed += 1;
        if sh.in_window(now) {
            stats
                .stream_hist
                .saturating_record(now.saturating_sub(sent_ns).max(1));
        }
        drop(stats);
        if now < sh.phases.end && !self.stopped {
            self.open_stream(sh, now);
        }
    }

    /// A stream message about one of our requests (`>cseq`, as the proxy relays it).
    pub(super) fn on_call_stream(
        &mut self,
        sh: &Shared,
        cseq: u64,
        verb: Verb,
        payload: &[u8],
        now: u64,
    ) {
        let Some(call) = self.calls.get_mut(&cseq) else {
            // Data in flight behind our own reset, or after an error answer: dropped.
            if cseq >= self.next_cseq {
                sh.stats.borrow_mut().unknown += 1;
            }
            return;
        };
        match verb {
            Verb::Data => {
                let len = payload.len() as u64;
                let mut stats = sh.stats.borrow_mut();
                if !call.recv.consume(len) {
                    stats.credit_violations += 1;
                }
                stats.bytes += len;
                if sh.bytes_window(now) {
                    stats.bytes_in_window += len;
                }
                if matches!(call.ask, Ask::Events { .. }) {
                    stats.events += 1;
                    match wire::event_time(payload) {
                        Some(intended) => {
                            if sh.in_window(now) {
                                stats.events_in_window += 1;
                            }
                            if sh.in_window(intended) {
                                stats
                                    .event_hist
                                    .saturating_record(now.saturating_sub(intended).max(1));
                            }
                        }
                        None => stats.unknown += 1,
                    }
                }
                drop(stats);
                if let Some(grant) = call.recv.grant() {
                    let mask = self.mask();
                    wire::put_stream(
                        &mut self.out,
                        &mut self.tag,
                        Verb::Credit(grant),
                        Direction::Outgoing,
                        cseq,
                        &[],
                        mask,
                    );
                }
            }
            Verb::End => {
                let got = call.recv.got;
                let ask = call.ask;
                let sent_ns = call.sent_ns;
                self.end_call(sh, cseq);
                if let Ask::Bytes {
                    len: Some(want), ..
                } = ask
                {
                    if got != want {
                        sh.stats.borrow_mut().short += 1;
                    }
                }
                if matches!(ask, Ask::Events { .. }) {
                    sh.stats.borrow_mut().completed += 1;
                } else {
                    self.finished(sh, sent_ns, now);
                }
            }
            Verb::Credit(n) => {
                if let Some(send) = call.send.as_mut() {
                    send.credit = send.credit.saturating_add(n);
                    self.queue_send(Key::Call(cseq));
                }
            }
            Verb::Reset(reason) => {
                self.end_call(sh, cseq);
                sh.stats.borrow_mut().reset(reason.token());
            }
        }
    }
}
