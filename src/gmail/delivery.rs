//! The delivery queue between a run's loop and its [`Sink`].
//!
//! The loop hands each answer to the queue and goes on reading answers,
//! firing retries and launching chunks; [`Queue::deliver`], joined with
//! the loop in the same task (a sink may hold Lua, which is not `Send`),
//! calls the sink in arrival order. A sink that waits (a script's
//! on_message calling the API, a commit) no longer holds up the loop.
//! The queue is bounded: while it holds `cap` answers the loop launches
//! no new chunk, so a slow sink keeps at most about two chunks' worth of
//! answers waiting, plus the parts of the chunks already in flight.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::Notify;

use super::runner::{Answer, Sink, Stop};

/// A sink that never waits gives the loop a turn this often.
const YIELD_EVERY: Duration = Duration::from_millis(2);

enum Delivery {
    Answer {
        key: String,
        answer: Answer,
    },
    /// For [`Sink::waiting`], in order with the answers.
    Waiting(Option<SystemTime>),
}

pub(super) struct Queue {
    items: RefCell<VecDeque<Delivery>>,
    /// Answers in `items` (the waiting notes are not counted).
    answers: Cell<usize>,
    cap: usize,
    /// The loop is over: deliver what is queued, then end.
    closed: Cell<bool>,
    /// Wakes the delivering side: something queued, or the close.
    to_sink: Notify,
    /// Wakes the loop: room again, or the sink failed.
    to_loop: Notify,
    ok: Cell<u64>,
    not_done: Cell<u64>,
    /// The sink refused an answer: every later one is not done.
    failed: Cell<bool>,
    /// Why, until the loop takes it to stop the run.
    stop: RefCell<Option<Stop>>,
}

impl Queue {
    pub(super) fn new(cap: usize) -> Queue {
        Queue {
            items: RefCell::new(VecDeque::new()),
            answers: Cell::new(0),
            cap: cap.max(1),
            closed: Cell::new(false),
            to_sink: Notify::new(),
            to_loop: Notify::new(),
            ok: Cell::new(0),
            not_done: Cell::new(0),
            failed: Cell::new(false),
            stop: RefCell::new(None),
        }
    }

    /// Queue an answer for the sink. Never refused: parts of chunks in
    /// flight are taken even when the queue is full (see [`Queue::full`]).
    pub(super) fn push(&self, key: String, answer: Answer) {
        self.answers.set(self.answers.get() + 1);
        self.items
            .borrow_mut()
            .push_back(Delivery::Answer { key, answer });
        self.to_sink.notify_one();
    }

    /// Tell the sink the run waits for the server (`None`: no longer),
    /// after the answers already queued.
    pub(super) fn waiting(&self, until: Option<SystemTime>) {
        self.items.borrow_mut().push_back(Delivery::Waiting(until));
        self.to_sink.notify_one();
    }

    /// No new chunk until the sink has caught up.
    pub(super) fn full(&self) -> bool {
        self.answers.get() >= self.cap
    }

    /// The sink's error, once: the loop stops the run on it.
    pub(super) fn take_stop(&self) -> Option<Stop> {
        self.stop.borrow_mut().take()
    }

    /// Resolves when the queue has room again or the sink failed (or
    /// spuriously, once: the loop then just looks again).
    pub(super) async fn changed(&self) {
        self.to_loop.notified().await
    }

    /// The loop is over; [`Queue::deliver`] ends once the queue is empty.
    pub(super) fn close(&self) {
        self.closed.set(true);
        self.to_sink.notify_one();
    }

    /// Answers the sink took, and answers it did not (after its error).
    pub(super) fn counts(&self) -> (u64, u64) {
        (self.ok.get(), self.not_done.get())
    }

    /// Hand every queued answer to `sink`, in order, until closed and empty.
    pub(super) async fn deliver(&self, sink: &mut dyn Sink) {
        let mut turn = Instant::now();
        loop {
            let next = self.items.borrow_mut().pop_front();
            match next {
                Some(Delivery::Waiting(until)) => sink.waiting(until),
                Some(Delivery::Answer { key, answer }) => {
                    let was_full = self.full();
                    self.answers.set(self.answers.get() - 1);
                    if was_full && !self.full() {
                        self.to_loop.notify_one();
                    }
                    self.deliver_one(sink, key, answer).await;
                }
                None if self.closed.get() => return,
                None => {
                    self.to_sink.notified().await;
                    turn = Instant::now();
                    continue;
                }
            }
            // A sink that never waits would otherwise run the whole queue
            // before the loop reads another answer.
            if turn.elapsed() >= YIELD_EVERY {
                tokio::task::yield_now().await;
                turn = Instant::now();
            }
        }
    }

    async fn deliver_one(&self, sink: &mut dyn Sink, key: String, answer: Answer) {
        if self.failed.get() {
            // Not stored: a resumed run fetches it again.
            self.not_done.set(self.not_done.get() + 1);
            return;
        }
        match sink.deliver(&key, answer).await {
            Ok(()) => self.ok.set(self.ok.get() + 1),
            Err(message) => {
                self.not_done.set(self.not_done.get() + 1);
                self.failed.set(true);
                *self.stop.borrow_mut() = Some(Stop::Sink { key, message });
                self.to_loop.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use futures_util::future::{join, LocalBoxFuture};

    /// Takes answers slowly, refusing the `fail_at`-th.
    struct Slow {
        got: Vec<String>,
        notes: Vec<Option<SystemTime>>,
        fail_at: usize,
    }

    impl Sink for Slow {
        fn deliver<'a>(
            &'a mut self,
            key: &'a str,
            _: Answer,
        ) -> LocalBoxFuture<'a, Result<(), String>> {
            Box::pin(async move {
                tokio::task::yield_now().await;
                self.got.push(key.to_string());
                if self.got.len() == self.fail_at {
                    return Err("disk full".into());
                }
                Ok(())
            })
        }
        fn waiting(&mut self, until: Option<SystemTime>) {
            self.notes.push(until);
        }
    }

    fn answer() -> Answer {
        Answer::Body(Bytes::from_static(b"{}"))
    }

    #[tokio::test]
    async fn delivers_in_order_and_counts_each_answer_once() {
        let q = Queue::new(3);
        let mut sink = Slow {
            got: Vec::new(),
            notes: Vec::new(),
            fail_at: 0,
        };
        let feed = async {
            for i in 0..10 {
                q.push(format!("m{i}"), answer());
                if i == 4 {
                    q.waiting(None);
                }
                if q.full() {
                    q.changed().await;
                    assert!(!q.full(), "woken when there is room");
                }
            }
            q.close();
        };
        join(feed, q.deliver(&mut sink)).await;
        let want: Vec<String> = (0..10).map(|i| format!("m{i}")).collect();
        assert_eq!(sink.got, want);
        assert_eq!(sink.notes, vec![None]);
        assert_eq!(q.counts(), (10, 0));
        assert!(q.take_stop().is_none());
    }

    #[tokio::test]
    async fn after_a_refusal_the_rest_is_not_done() {
        let q = Queue::new(100);
        let mut sink = Slow {
            got: Vec::new(),
            notes: Vec::new(),
            fail_at: 3,
        };
        for i in 0..8 {
            q.push(format!("m{i}"), answer());
        }
        q.close();
        q.deliver(&mut sink).await;
        assert_eq!(
            sink.got,
            ["m0", "m1", "m2"],
            "nothing offered after the error"
        );
        assert_eq!(q.counts(), (2, 6));
        match q.take_stop() {
            Some(Stop::Sink { key, message }) => {
                assert_eq!((key.as_str(), message.as_str()), ("m2", "disk full"))
            }
            other => panic!("{other:?}"),
        }
        assert!(q.take_stop().is_none(), "taken once");
    }
}
