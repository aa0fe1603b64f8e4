//! The server's side of a connection: the requests addressed to it (an event stream, a
//! download, an upload to take in, a small request to echo), events sent at their intended
//! times within the credit, and the stream messages its callers send (credit, upload data
//! granted back as consumed, the upload's end, resets).

use std::cmp::Reverse;

use httpws::proto::head::HeadInfo;
use httpws::proto::http1::framing::Framing;
use httpws::proto::stream::{Direction, STREAM_WINDOW, Verb};

use super::conn::{Conn, Key, Pace, Receiving, Sending, Served, Serving};
use super::wire;
use super::worker::Shared;
use crate::clock::now_ns;

/// Nanoseconds in a microsecond.
const NS_PER_US: u64 = 1_000;

impl Conn {
    /// A request addressed to this endpoint, received at `now`.
    pub(super) fn serve(&mut self, sh: &Shared, msg: &[u8], info: &HeadInfo, now: u64) {
        sh.stats.borrow_mut().served += 1;
        let cseq = info.cseq;
        let target = wire::request_target(msg);
        let path = wire::target_path(target);
        let mask = self.mask();
        if path == wire::PATH_EVENTS {
            let interval_ns = wire::query_u64(target, b"interval_us")
                .unwrap_or(1_000_000)
                .max(1)
                .saturating_mul(NS_PER_US);
            let bytes = wire::query_u64(target, b"bytes")
                .and_then(|b| usize::try_from(b).ok())
                .unwrap_or(sh.plan.event_bytes)
                .clamp(
                    crate::args::MIN_EVENT_BYTES,
                    sh.body.len().max(crate::args::MIN_EVENT_BYTES),
                );
            wire::put_stream_response(
                &mut self.out,
                &mut self.scratch,
                cseq,
                b"text/event-stream",
                None,
                mask,
            );
            // Streams start at random points of the interval, so their events interleave
            // evenly instead of coming all at once.
            let first = now + self.random_below(interval_ns);
            self.served.insert(
                cseq,
                Served {
                    serving: Serving::Events {
                        interval_ns,
                        bytes,
                        seq: 0,
                        pending: None,
                    },
                    send: Some(Sending {
                        left: None,
                        credit: STREAM_WINDOW,
                        queued: false,
                        pace: None,
                    }),
                    recv: Receiving::default(),
                },
            );
            self.events.push(Reverse((first.min(sh.phases.end), cseq)));
        } else if path == wire::PATH_BYTES {
            let len = wire::query_u64(target, b"n");
            let pace = wire::query_u64(target, b"rate")
                .filter(|&r| r > 0)
                .map(|rate| Pace {
                    rate,
                    start_ns: now,
                    sent: 0,
                    waiting: false,
                });
            wire::put_stream_response(
                &mut self.out,
                &mut self.scratch,
                cseq,
                b"application/octet-stream",
                len,
                mask,
            );
            self.served.insert(
                cseq,
                Served {
                    serving: Serving::Bytes,
                    send: Some(Sending {
                        left: len,
                        credit: STREAM_WINDOW,
                        queued: false,
                        pace,
                    }),
                    recv: Receiving::default(),
                },
            );
            if len == Some(0) {
                self.end_served(cseq);
            } else {
                self.queue_send(Key::Served(cseq));
            }
        } else if path == wire::PATH_SINK && info.stream {
            self.served.insert(
                cseq,
                Served {
                    serving: Serving::Sink,
                    send: None,
                    recv: Receiving::new(match info.framing {
                        Framing::Length(n) => Some(n),
                        _ => None,
                    }),
                },
            );
        } else if path == wire::PATH_SMALL || path == wire::PATH_SINK {
            let body = &msg[info.head_len..];
            wire::put_whole_response(
                &mut self.out,
                &mut self.scratch,
                cseq,
                b"200 OK",
                body,
                mask,
            );
        } else {
            wire::put_whole_response(
                &mut self.out,
                &mut self.scratch,
                cseq,
                b"404 Not Found",
                b"loadgen serves /events, /bytes, /sink and /small\n",
                mask,
            );
        }
    }

    /// Send `~end` for served stream `cseq` and forget it.
    fn end_served(&mut self, cseq: u64) {
        self.served.remove(&cseq);
        let mask = self.mask();
        wire::put_stream(
            &mut self.out,
            &mut self.tag,
            Verb::End,
            Direction::Incoming,
            cseq,
            &[],
            mask,
        );
    }

    /// Send every event due by `now` (an event without the credit for it waits for credit,
    /// and keeps its intended time); an event stream ends at the end of the traffic.
    pub(super) fn send_due_events(&mut self, sh: &Shared, now: u64) {
        while let Some(&Reverse((due, cseq))) = self.events.peek() {
            if due > now {
                return;
            }
            self.events.pop();
            if due >= sh.phases.end {
                if self.served.contains_key(&cseq) {
                    self.end_served(cseq);
                }
                continue;
            }
            self.send_event(sh, cseq, due);
        }
    }

    /// Send the event of stream `cseq` meant for `due`, or hold it until credit comes.
    fn send_event(&mut self, sh: &Shared, cseq: u64, due: u64) {
        let mask = self.mask();
        // Reset since it was scheduled: nothing to send.
        let Some(served) = self.served.get_mut(&cseq) else {
            return;
        };
        let (
            Serving::Events {
                interval_ns,
                bytes,
                seq,
                pending,
            },
            Some(send),
        ) = (&mut served.serving, served.send.as_mut())
        else {
            return;
        };
        if send.credit < *bytes as u64 {
            *pending = Some(due);
            return;
        }
        send.credit -= *bytes as u64;
        *pending = None;
        wire::event_payload(&mut self.scratch, due, *seq, *bytes);
        *seq += 1;
        let next = due.saturating_add(*interval_ns).min(sh.phases.end);
        wire::put_stream(
            &mut self.out,
            &mut self.tag,
            Verb::Data,
            Direction::Incoming,
            cseq,
            &self.scratch,
            mask,
        );
        self.events.push(Reverse((next, cseq)));
    }

    /// A stream message about a request we serve (`<cseq`, as the proxy relays it).
    pub(super) fn on_served_stream(&mut self, sh: &Shared, cseq: u64, verb: Verb, payload: &[u8]) {
        // Ended here already (credit or a reset crossing our `~end`): dropped.
        let Some(served) = self.served.get_mut(&cseq) else {
            return;
        };
        match verb {
            Verb::Credit(n) => {
                let mut held = None;
                if let Some(send) = served.send.as_mut() {
                    send.credit = send.credit.saturating_add(n);
                }
                if let Serving::Events { pending, .. } = &mut served.serving {
                    held = pending.take();
                }
                match held {
                    Some(due) => self.send_event(sh, cseq, due),
                    None => self.queue_send(Key::Served(cseq)),
                }
            }
            Verb::Data => {
                let len = payload.len() as u64;
                let mut stats = sh.stats.borrow_mut();
                if !served.recv.consume(len) {
                    stats.credit_violations += 1;
                }
                stats.bytes += len;
                if sh.bytes_window(now_ns()) {
                    stats.bytes_in_window += len;
                }
                drop(stats);
                if let Some(grant) = served.recv.grant() {
                    let mask = self.mask();
                    wire::put_stream(
                        &mut self.out,
                        &mut self.tag,
                        Verb::Credit(grant),
                        Direction::Incoming,
                        cseq,
                        &[],
                        mask,
                    );
                }
            }
            // The upload is complete: the whole answer says how much came.
            Verb::End => {
                let got = served.recv.got;
                self.served.remove(&cseq);
                let mut body = Vec::new();
                crate::wire::put_decimal(&mut body, got);
                body.push(b'\n');
                let mask = self.mask();
                wire::put_whole_response(
                    &mut self.out,
                    &mut self.scratch,
                    cseq,
                    b"200 OK",
                    &body,
                    mask,
                );
            }
            Verb::Reset(reason) => {
                self.served.remove(&cseq);
                if reason != httpws::proto::stream::ResetReason::Cancel {
                    sh.stats.borrow_mut().reset(reason.token());
                }
            }
        }
    }
}
