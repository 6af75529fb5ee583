//! The executor: tasks, their wakers, the run queue and [`JoinHandle`].
//!
//! A task is a spawned future, boxed and pinned (`Pin<Box<dyn Future>>`),
//! living in a slab slot. Its key is inside its [`Waker`]: waking a task
//! means "push my key onto the run queue", and the reactor polls queued
//! tasks at the top of each loop turn.
//!
//! Wakers must be `Send + Sync` (the `std::task` contract): a future may
//! hand its waker to another thread. So the run queue sits behind a
//! `Mutex` in an `Arc` ([`Shared`]), and a wake from another thread while
//! the reactor sleeps in the poller also writes the reactor's eventfd
//! ([`crate::poller::Waker`]) to end that wait. A wake from the reactor's
//! own thread (the common case: an I/O event or a timer) finds the
//! reactor awake and skips the eventfd.
//!
//! A task that panics does not take the reactor with it: its poll runs
//! inside `catch_unwind` (in `spawn_task`), the panic
//! becomes the task's outcome, and the loop goes on with the other tasks.
//! Where the panic goes next is [`JoinHandle`]'s rule.
//!
//! Alternative not taken: a thread-local, lock-free queue for local wakes
//! plus a locked one for remote wakes (what tokio's current-thread runtime
//! does). Faster by one uncontended lock per wake; two queues to explain.

use std::cell::RefCell;
use std::future::{poll_fn, Future};
use std::panic::{self, AssertUnwindSafe};
use std::pin::{pin, Pin};
use std::rc::{Rc, Weak};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};

use super::Reactor;
use crate::poller;

/// Which task a wake is for. The generation tells a reused slab slot's new
/// task apart from a finished one whose waker someone still holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TaskId {
    pub(crate) index: usize,
    pub(crate) generation: u64,
}

/// The future passed to `block_on` is not in the slab; it has this id.
pub(crate) const MAIN_TASK: TaskId = TaskId {
    index: usize::MAX,
    generation: 0,
};

/// What wakers on any thread share with the reactor.
pub(crate) struct Shared {
    queue: Mutex<Vec<TaskId>>,
    /// Set by the reactor just before it blocks in the poller, cleared when
    /// it returns. A wake that finds it set must also write the eventfd.
    sleeping: AtomicBool,
    pub(crate) eventfd: poller::Waker,
}

impl Shared {
    pub(crate) fn new() -> std::io::Result<Shared> {
        Ok(Shared {
            queue: Mutex::new(Vec::new()),
            sleeping: AtomicBool::new(false),
            eventfd: poller::Waker::new()?,
        })
    }

    fn queue(&self) -> std::sync::MutexGuard<'_, Vec<TaskId>> {
        // A panic while holding this lock can only happen in Vec::push
        // (allocation failure); the queue is still a valid Vec, so go on.
        self.queue.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn schedule(&self, id: TaskId) {
        self.queue().push(id);
        // SeqCst pairs with `prepare_to_sleep`: either the reactor sees our
        // push when it re-checks the queue, or we see `sleeping` and wake it.
        if self.sleeping.swap(false, Ordering::SeqCst) {
            // If the eventfd write fails (it cannot, short of EBADF), the
            // reactor still finds the task at its next wake-up.
            let _ = self.eventfd.wake();
        }
    }

    /// Move every queued id into `batch` (which the caller reuses).
    pub(crate) fn take_queue(&self, batch: &mut Vec<TaskId>) {
        std::mem::swap(&mut *self.queue(), batch);
    }

    pub(crate) fn has_queued(&self) -> bool {
        !self.queue().is_empty()
    }

    /// Announce that the reactor is about to block. Returns false (do not
    /// block) if a task was queued in the meantime.
    pub(crate) fn prepare_to_sleep(&self) -> bool {
        self.sleeping.store(true, Ordering::SeqCst);
        if self.has_queued() {
            self.sleeping.store(false, Ordering::SeqCst);
            return false;
        }
        true
    }

    pub(crate) fn woke_up(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
    }
}

/// The state behind one task's [`Waker`].
pub(crate) struct TaskWaker {
    id: TaskId,
    shared: Arc<Shared>,
    /// True while the task sits in the run queue, so a burst of wakes
    /// (readable, then a timer, then writable) queues it once.
    scheduled: AtomicBool,
}

impl TaskWaker {
    pub(crate) fn new(id: TaskId, shared: Arc<Shared>) -> Arc<TaskWaker> {
        Arc::new(TaskWaker {
            id,
            shared,
            scheduled: AtomicBool::new(false),
        })
    }

    /// Called just before the task is polled: wakes from now on queue it again.
    pub(crate) fn unschedule(&self) {
        self.scheduled.store(false, Ordering::Release);
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if !self.scheduled.swap(true, Ordering::AcqRel) {
            self.shared.schedule(self.id);
        }
    }
}

/// One spawned task in the slab.
pub(crate) struct Task {
    generation: u64,
    /// `None` while the task is being polled (it is taken out so the slab
    /// is not borrowed during the poll, when the task may spawn others).
    future: Option<Pin<Box<dyn Future<Output = ()>>>>,
    waker: Waker,
    state: Arc<TaskWaker>,
    /// Set by [`JoinHandle::abort`] on a task that is running right now.
    aborted: bool,
}

impl Reactor {
    /// Put a future in the slab and queue it for its first poll.
    pub(crate) fn spawn_task<F>(self: &Rc<Self>, future: F) -> JoinHandle<F::Output>
    where
        F: Future + 'static,
        F::Output: 'static,
    {
        let join = Rc::new(RefCell::new(JoinState {
            output: None,
            waiter: None,
        }));
        let done = join.clone();
        // Boxed on its own, so the wrapper below holds a pointer to it:
        // an async block that moves a captured future into a local (the
        // `pin!` below) keeps it twice, the capture and the local, which
        // would double every task's size. One more allocation per spawn,
        // none per poll.
        let future = Box::pin(future);
        let reactor = Rc::downgrade(self);
        let wrapped = async move {
            // ANCHOR: catch_task_panic
            // Each poll of the task's own future runs under catch_unwind, so
            // a panic ends this task only: it is stored as the outcome, the
            // future is dropped, and the reactor's loop never unwinds.
            // AssertUnwindSafe: after a panic the future is never polled
            // again, so no half-updated state of it is observed.
            let mut future = pin!(future);
            let output = poll_fn(
                |cx| match panic::catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(cx))) {
                    Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
                    Ok(Poll::Pending) => Poll::Pending,
                    Err(payload) => {
                        if let Some(reactor) = reactor.upgrade() {
                            reactor.bump(|s| s.tasks_panicked += 1);
                        }
                        Poll::Ready(Err(payload))
                    }
                },
            )
            .await;
            // ANCHOR_END: catch_task_panic
            let mut state = done.borrow_mut();
            state.output = Some(output);
            if let Some(waiter) = state.waiter.take() {
                waiter.wake();
            }
        };
        let generation = self.next_generation();
        let shared = self.shared.clone();
        let mut first_waker = None;
        let index = self.tasks.borrow_mut().insert_with(|index| {
            let state = TaskWaker::new(TaskId { index, generation }, shared);
            let waker = Waker::from(state.clone());
            first_waker = Some(waker.clone());
            Task {
                generation,
                future: Some(Box::pin(wrapped)),
                waker,
                state,
                aborted: false,
            }
        });
        self.bump(|s| s.tasks_spawned += 1);
        if let Some(waker) = first_waker {
            waker.wake();
        }
        JoinHandle {
            join,
            id: TaskId { index, generation },
            reactor: Rc::downgrade(self),
        }
    }

    /// Poll one queued task, if it still exists.
    pub(crate) fn poll_task(&self, id: TaskId) {
        let taken = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(id.index) {
                Some(task) if task.generation == id.generation => {
                    task.future.take().map(|f| (f, task.waker.clone(), task.state.clone()))
                }
                _ => None,
            }
        };
        let Some((mut future, waker, state)) = taken else {
            return;
        };
        state.unschedule();
        self.refill_budget();
        self.bump(|s| s.tasks_polled += 1);
        let finished = future.as_mut().poll(&mut Context::from_waker(&waker)).is_ready();
        let mut tasks = self.tasks.borrow_mut();
        let aborted = tasks.get(id.index).is_some_and(|t| t.aborted);
        if finished || aborted {
            let slot = tasks.remove(id.index);
            drop(tasks);
            // Dropped outside the borrow: a future's destructor may touch
            // the reactor (deregister a socket, cancel a timer).
            drop(future);
            drop(slot);
        } else if let Some(task) = tasks.get_mut(id.index) {
            task.future = Some(future);
        }
    }

    /// Drop a task now (or, if it is the one running, when its poll returns).
    fn abort_task(&self, id: TaskId) {
        let future = {
            let mut tasks = self.tasks.borrow_mut();
            match tasks.get_mut(id.index) {
                Some(task) if task.generation == id.generation => match task.future.take() {
                    Some(future) => {
                        let slot = tasks.remove(id.index);
                        Some((future, slot))
                    }
                    None => {
                        task.aborted = true;
                        None
                    }
                },
                _ => None,
            }
        };
        drop(future);
    }

    /// Drop every task (when `block_on` returns). Taken out first, dropped
    /// after, for the same reason as in `poll_task`.
    pub(crate) fn drop_all_tasks(&self) {
        let tasks = self.tasks.borrow_mut().drain();
        drop(tasks);
    }
}

struct JoinState<T> {
    /// The task's outcome: its value, or the payload of its panic.
    output: Option<std::thread::Result<T>>,
    waiter: Option<Waker>,
}

/// A spawned task's result, as a future. Awaiting it yields the task's
/// output; dropping it detaches the task, which keeps running.
///
/// # Panics in a task
///
/// A panic inside a spawned task ends that task only. The reactor catches
/// it at the task's poll (the panic message is still printed by the panic
/// hook, as for any panic), and every other task, socket and timer goes on.
/// Then:
///
/// - **awaiting the handle resumes the panic** in the awaiting task, with
///   the original payload, as `std::thread::JoinHandle::join().unwrap()`
///   would. A panic is a bug, not an error value, so it keeps travelling
///   towards whoever is waiting for the result instead of turning into a
///   value nobody checks; if that is the `block_on` future, it unwinds out
///   of [`block_on`](super::block_on);
/// - [`JoinHandle::catch_panic`] hands it over as a value instead, for a
///   supervisor that wants to log it and carry on;
/// - a detached task's panic (handle dropped) stops there.
///
/// Alternative not taken: tokio's `JoinHandle<T>` yields
/// `Result<T, JoinError>` on every await, which makes each caller unwrap a
/// result that is an error only when there is a bug. smol (`async-task`)
/// also resumes the panic in the awaiter; connlab follows it.
pub struct JoinHandle<T> {
    join: Rc<RefCell<JoinState<T>>>,
    id: TaskId,
    reactor: Weak<Reactor>,
}

impl<T> JoinHandle<T> {
    /// Has the task produced its output?
    pub fn is_finished(&self) -> bool {
        self.join.borrow().output.is_some()
    }

    /// The task's outcome as a value: `Ok(output)`, or `Err(payload)` if it
    /// panicked (the payload `std::panic::catch_unwind` would give, usually
    /// a `&str` or a `String`). For a supervisor that must outlive its
    /// children's bugs; plain `.await` resumes the panic instead.
    pub async fn catch_panic(self) -> std::thread::Result<T> {
        poll_fn(|cx| self.poll_outcome(cx)).await
    }

    fn poll_outcome(&self, cx: &mut Context<'_>) -> Poll<std::thread::Result<T>> {
        let mut state = self.join.borrow_mut();
        match state.output.take() {
            Some(outcome) => Poll::Ready(outcome),
            None => {
                state.waiter = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    /// Stop the task: its future is dropped (closing its sockets,
    /// cancelling its timers) without being polled again.
    pub fn abort(self) {
        if let Some(reactor) = self.reactor.upgrade() {
            reactor.abort_task(self.id);
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = T;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match self.poll_outcome(cx) {
            Poll::Ready(Ok(output)) => Poll::Ready(output),
            Poll::Ready(Err(payload)) => panic::resume_unwind(payload),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T> std::fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JoinHandle")
            .field("task", &self.id.index)
            .field("finished", &self.is_finished())
            .finish()
    }
}
