//! The per-core executor: a slab of `!Send` tasks and a ready list, both owned by the core's
//! thread.
//!
//! # Waking without atomics or locks
//! `std::task::Waker` must be `Send + Sync`, so a waker may not hold an `Rc` to the task.
//! Ours holds no pointer at all: its data word is an integer, `executor id << 32 | slot`,
//! and the vtable's clone and drop do nothing (no reference count). `wake` looks up the
//! calling thread's ready list (a `thread_local!`) and, if it belongs to the same executor,
//! pushes the slot there: a thread-local `RefCell` borrow and a `Vec` push, no atomics.
//! Sending such a waker to another thread is memory-safe because it is only an integer;
//! a wake from a thread that is not the task's core goes to a global mutex-protected inbox
//! and sets one flag, which the core checks once per engine loop iteration — off the
//! per-packet path, and used only by foreign wakers (none of xtcp's own).
//!
//! A woken slot may since hold another task (its task finished and the slot was reused):
//! that task is then polled once spuriously, which the `Future` contract allows.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::task::{Context, RawWaker, RawWakerVTable, Waker};

type Task = Pin<Box<dyn Future<Output = ()>>>;

/// The calling thread's ready list and spawn queue.
struct Local {
    /// The executor this thread runs (0: none).
    exec: u32,
    ready: Vec<u32>,
    /// `queued[slot]`: the slot is in `ready` (no duplicates).
    queued: Vec<bool>,
    /// Tasks from `spawn_local`, adopted by the executor after the current poll.
    spawned: Vec<Task>,
}

thread_local! {
    static LOCAL: RefCell<Local> = const {
        RefCell::new(Local { exec: 0, ready: Vec::new(), queued: Vec::new(), spawned: Vec::new() })
    };
}

/// Wakes from threads other than the task's core: (executor id, slot).
static REMOTE: Mutex<Vec<(u32, u32)>> = Mutex::new(Vec::new());
static REMOTE_PENDING: AtomicBool = AtomicBool::new(false);
static NEXT_ID: AtomicU32 = AtomicU32::new(1);

fn schedule(data: usize) {
    let exec = (data >> 32) as u32;
    let slot = data as u32;
    let here = LOCAL.with(|l| match l.try_borrow_mut() {
        Ok(mut l) if l.exec == exec => {
            l.push(slot);
            true
        }
        _ => false,
    });
    if !here {
        REMOTE
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((exec, slot));
        REMOTE_PENDING.store(true, Ordering::Release);
    }
}

impl Local {
    fn push(&mut self, slot: u32) {
        let i = slot as usize;
        if self.queued.len() <= i {
            self.queued.resize(i + 1, false);
        }
        if !self.queued[i] {
            self.queued[i] = true;
            self.ready.push(slot);
        }
    }
}

const VTABLE: RawWakerVTable = RawWakerVTable::new(
    |data| RawWaker::new(data, &VTABLE),
    |data| schedule(data as usize),
    |data| schedule(data as usize),
    |_| {},
);

fn waker(exec: u32, slot: u32) -> Waker {
    let data = ((exec as usize) << 32 | slot as usize) as *const ();
    // Safety: the vtable functions treat `data` as an integer only (never dereferenced), so
    // every RawWaker contract (clone/wake/drop from any thread, any number of times) holds.
    unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
}

/// Queues `fut` on the calling thread's executor; it is first polled in the same round.
///
/// # Panics
/// If the calling thread runs no executor (call it from a task, or from inside the engine
/// core's application).
pub fn spawn_local(fut: impl Future<Output = ()> + 'static) {
    LOCAL.with_borrow_mut(|l| {
        assert!(
            l.exec != 0,
            "xtcp::rt::spawn_local outside an xtcp::rt core"
        );
        l.spawned.push(Box::pin(fut));
    });
}

/// One core's executor. Lives on the core's thread (it is `!Send`).
pub(crate) struct Executor {
    id: u32,
    tasks: Vec<Option<Task>>,
    free: Vec<u32>,
    live: usize,
    /// Swapped with the ready list each round, so no borrow is held while polling.
    round: Vec<u32>,
}

impl Executor {
    /// Binds a new executor to the calling thread.
    ///
    /// # Panics
    /// If the thread already runs one.
    pub(crate) fn new() -> Executor {
        assert!(
            std::mem::size_of::<usize>() == 8,
            "wakers pack (executor, slot) into 64 bits"
        );
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        LOCAL.with_borrow_mut(|l| {
            assert_eq!(l.exec, 0, "one xtcp::rt executor per thread");
            l.exec = id;
            l.ready.clear();
            l.queued.clear();
        });
        Executor {
            id,
            tasks: Vec::new(),
            free: Vec::new(),
            live: 0,
            round: Vec::new(),
        }
    }

    /// Tasks not yet finished.
    pub(crate) fn live(&self) -> usize {
        self.live
    }

    fn adopt(&mut self, task: Task) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.tasks[s as usize] = Some(task);
                s
            }
            None => {
                self.tasks.push(Some(task));
                (self.tasks.len() - 1) as u32
            }
        };
        self.live += 1;
        LOCAL.with_borrow_mut(|l| l.push(slot));
    }

    fn adopt_spawned(&mut self) {
        loop {
            let Some(t) = LOCAL.with_borrow_mut(|l| l.spawned.pop()) else {
                return;
            };
            self.adopt(t);
        }
    }

    /// Polls every ready task (and those they wake or spawn) until none is ready, or
    /// `max_rounds` rounds have run. Returns the number of polls.
    pub(crate) fn run_ready(&mut self, max_rounds: usize) -> usize {
        if REMOTE_PENDING.load(Ordering::Relaxed) {
            self.take_remote();
        }
        self.adopt_spawned();
        let mut polls = 0;
        for _ in 0..max_rounds {
            LOCAL.with_borrow_mut(|l| {
                std::mem::swap(&mut l.ready, &mut self.round);
                for &s in &self.round {
                    l.queued[s as usize] = false;
                }
            });
            if self.round.is_empty() {
                break;
            }
            let mut round = std::mem::take(&mut self.round);
            for &slot in &round {
                let Some(task) = self.tasks.get_mut(slot as usize).and_then(Option::as_mut) else {
                    continue;
                };
                let w = waker(self.id, slot);
                let mut cx = Context::from_waker(&w);
                polls += 1;
                if task.as_mut().poll(&mut cx).is_ready() {
                    self.tasks[slot as usize] = None;
                    self.free.push(slot);
                    self.live -= 1;
                }
                self.adopt_spawned();
            }
            round.clear();
            self.round = round;
        }
        polls
    }

    fn take_remote(&mut self) {
        let mut inbox = REMOTE.lock().unwrap_or_else(|e| e.into_inner());
        let id = self.id;
        LOCAL.with_borrow_mut(|l| {
            inbox.retain(|&(exec, slot)| {
                if exec == id {
                    l.push(slot);
                    false
                } else {
                    true
                }
            })
        });
        if inbox.is_empty() {
            REMOTE_PENDING.store(false, Ordering::Relaxed);
        }
    }

    /// Queues a task (from the core's application, outside any task).
    pub(crate) fn spawn(&mut self, fut: impl Future<Output = ()> + 'static) {
        self.adopt(Box::pin(fut));
    }
}

impl Executor {
    /// Drops every task (and the streams they own).
    pub(crate) fn clear(&mut self) {
        self.tasks.clear();
        self.free.clear();
        self.live = 0;
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        // Drop the tasks (and the streams they own) before unbinding the thread.
        self.clear();
        LOCAL.with_borrow_mut(|l| {
            l.exec = 0;
            l.ready.clear();
            l.queued.clear();
            l.spawned.clear();
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;
    use std::rc::Rc;
    use std::task::Poll;

    /// Pending until `flag` is set, then remembers the waker for the test to call.
    struct Gate {
        open: Rc<Cell<bool>>,
        waker: Rc<RefCell<Option<Waker>>>,
    }

    impl Future for Gate {
        type Output = ();
        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
            if self.open.get() {
                Poll::Ready(())
            } else {
                *self.waker.borrow_mut() = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    #[test]
    fn a_task_runs_when_woken_and_not_before() {
        let mut ex = Executor::new();
        let open = Rc::new(Cell::new(false));
        let waker = Rc::new(RefCell::new(None));
        let done = Rc::new(Cell::new(false));
        let (o, w, d) = (open.clone(), waker.clone(), done.clone());
        ex.spawn(async move {
            Gate { open: o, waker: w }.await;
            d.set(true);
        });
        assert_eq!(ex.run_ready(8), 1);
        assert_eq!(ex.run_ready(8), 0, "not woken: not polled");
        open.set(true);
        let w = waker.borrow_mut().take().unwrap();
        w.wake_by_ref();
        w.wake(); // a second wake before the poll does not queue it twice
        assert_eq!(ex.run_ready(8), 1);
        assert!(done.get());
        assert_eq!(ex.live(), 0);
    }

    #[test]
    fn spawn_local_from_a_task_runs_in_the_same_call() {
        let mut ex = Executor::new();
        let hits = Rc::new(Cell::new(0));
        let h = hits.clone();
        ex.spawn(async move {
            for _ in 0..3 {
                let h = h.clone();
                spawn_local(async move { h.set(h.get() + 1) });
            }
        });
        ex.run_ready(8);
        assert_eq!(hits.get(), 3);
        assert_eq!(ex.live(), 0);
    }

    #[test]
    fn a_wake_from_another_thread_reaches_the_core() {
        let mut ex = Executor::new();
        let open = Rc::new(Cell::new(false));
        let waker = Rc::new(RefCell::new(None));
        let (o, w) = (open.clone(), waker.clone());
        ex.spawn(Gate { open: o, waker: w });
        ex.run_ready(8);
        let w = waker.borrow_mut().take().unwrap();
        open.set(true);
        std::thread::spawn(move || w.wake()).join().unwrap();
        assert_eq!(ex.run_ready(8), 1);
        assert_eq!(ex.live(), 0);
    }

    #[test]
    fn waker_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<Waker>();
        let _ = Executor::new();
        // The thread is free for another executor once the first is dropped.
        let _ = Executor::new();
    }
}
