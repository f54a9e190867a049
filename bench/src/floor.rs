//! The floor: minimal executors with no features, to show how far each runtime is from what
//! scheduling alone costs. `floor-ct` is async-task and a `VecDeque` run loop on the calling
//! thread; `floor-mt` is async-task on two threads with crossbeam-deque queues (a local deque
//! per worker, an injector, stealing) and a mutex-and-condvar parker. No budget, no timers, no
//! I/O, no counters, no shutdown beyond stopping the threads: they run only the scheduling
//! workloads. Not idle_memory: async-task frees a pending task that nothing can wake, and the
//! floor keeps no registry of its tasks, so it would measure nothing.

use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::thread::{self, Thread};
use std::time::Duration;

use async_task::Runnable;
use crossbeam_deque::{Injector, Steal, Stealer, Worker};

use crate::exec::{Exec, Spawner};

/// Wakes the thread in `block_on`.
struct ThreadWaker {
    woken: AtomicBool,
    thread: Thread,
}

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        if !self.woken.swap(true, Ordering::AcqRel) {
            self.thread.unpark();
        }
    }
}

fn main_waker() -> (Arc<ThreadWaker>, Waker) {
    let w = Arc::new(ThreadWaker {
        woken: AtomicBool::new(true),
        thread: thread::current(),
    });
    (w.clone(), Waker::from(w))
}

/// Creates a task and schedules it once: all either floor does to spawn.
fn start<F>(
    future: F,
    schedule: impl Fn(Runnable) + Send + Sync + 'static,
) -> async_task::Task<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let (r, t) = async_task::spawn(future, schedule);
    r.schedule();
    t
}

// ---- floor-ct ----

thread_local! {
    static CT_QUEUE: RefCell<VecDeque<Runnable>> = const { RefCell::new(VecDeque::new()) };
}

fn ct_schedule(r: Runnable) {
    CT_QUEUE.with(|q| q.borrow_mut().push_back(r));
}

pub(crate) struct FloorCt;

#[derive(Clone)]
pub(crate) struct FloorCtSpawner;

impl Spawner for FloorCtSpawner {
    type Join<T: Send + 'static> = async_task::Task<T>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        start(future, ct_schedule)
    }
    fn detach<T: Send + 'static>(join: Self::Join<T>) {
        join.detach();
    }
}

impl Exec for FloorCt {
    type S = FloorCtSpawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let (state, waker) = main_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if state.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            }
            let mut ran = false;
            while let Some(r) = CT_QUEUE.with(|q| q.borrow_mut().pop_front()) {
                r.run();
                ran = true;
                if state.woken.load(Ordering::Relaxed) {
                    break;
                }
            }
            if !ran && !state.woken.load(Ordering::Acquire) {
                thread::park();
            }
        }
    }
    fn spawner(&self) -> FloorCtSpawner {
        FloorCtSpawner
    }
    fn remote_spawn(&self) -> bool {
        false
    }
    fn multi_thread(&self) -> bool {
        false
    }
    fn scheduling_only(&self) -> bool {
        true
    }
    crate::exec::smol_io!();
}

// ---- floor-mt ----

struct Shared {
    injector: Injector<Runnable>,
    stealers: Vec<Stealer<Runnable>>,
    sleepers: AtomicUsize,
    lock: Mutex<()>,
    cvar: Condvar,
    stop: AtomicBool,
}

thread_local! {
    /// The local deque of the floor-mt worker on this thread.
    static LOCAL: RefCell<Option<Worker<Runnable>>> = const { RefCell::new(None) };
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

impl Shared {
    fn schedule(&self, r: Runnable) {
        let r = if IS_WORKER.with(Cell::get) {
            LOCAL.with(|l| match &*l.borrow() {
                Some(w) => {
                    w.push(r);
                    None
                }
                None => Some(r),
            })
        } else {
            Some(r)
        };
        if let Some(r) = r {
            self.injector.push(r);
        }
        if self.sleepers.load(Ordering::SeqCst) > 0 {
            let _g = self.lock.lock().unwrap();
            self.cvar.notify_one();
        }
    }

    fn find(&self, local: &Worker<Runnable>, me: usize) -> Option<Runnable> {
        local.pop().or_else(|| {
            loop {
                match self.injector.steal_batch_and_pop(local) {
                    Steal::Success(r) => return Some(r),
                    Steal::Retry => continue,
                    Steal::Empty => {}
                }
                let mut retry = false;
                for (i, s) in self.stealers.iter().enumerate() {
                    if i == me {
                        continue;
                    }
                    match s.steal_batch_and_pop(local) {
                        Steal::Success(r) => return Some(r),
                        Steal::Retry => retry = true,
                        Steal::Empty => {}
                    }
                }
                if !retry {
                    return None;
                }
            }
        })
    }

    fn has_work(&self) -> bool {
        !self.injector.is_empty() || self.stealers.iter().any(|s| !s.is_empty())
    }
}

pub(crate) struct FloorMt {
    shared: Arc<Shared>,
    threads: Vec<thread::JoinHandle<()>>,
}

impl FloorMt {
    pub(crate) fn new(threads: usize) -> FloorMt {
        let workers: Vec<Worker<Runnable>> = (0..threads).map(|_| Worker::new_fifo()).collect();
        let shared = Arc::new(Shared {
            injector: Injector::new(),
            stealers: workers.iter().map(Worker::stealer).collect(),
            sleepers: AtomicUsize::new(0),
            lock: Mutex::new(()),
            cvar: Condvar::new(),
            stop: AtomicBool::new(false),
        });
        let threads = workers
            .into_iter()
            .enumerate()
            .map(|(me, w)| {
                let shared = shared.clone();
                thread::Builder::new()
                    .name(format!("floor-{me}"))
                    .spawn(move || run_worker(&shared, me, w))
                    .expect("start a floor thread")
            })
            .collect();
        FloorMt { shared, threads }
    }
}

fn run_worker(shared: &Shared, me: usize, w: Worker<Runnable>) {
    IS_WORKER.with(|c| c.set(true));
    LOCAL.with(|l| *l.borrow_mut() = Some(w));
    loop {
        let next = LOCAL.with(|l| shared.find(l.borrow().as_ref().expect("set above"), me));
        if let Some(r) = next {
            r.run();
            continue;
        }
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        let g = shared.lock.lock().unwrap();
        shared.sleepers.fetch_add(1, Ordering::SeqCst);
        if !shared.has_work() && !shared.stop.load(Ordering::SeqCst) {
            // Bounded, as a safety net against a lost notification in this minimal parker.
            let _ = shared.cvar.wait_timeout(g, Duration::from_millis(10));
        }
        shared.sleepers.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drop for FloorMt {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let _g = self.shared.lock.lock().unwrap();
            self.shared.cvar.notify_all();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub(crate) struct FloorMtSpawner(Arc<Shared>);

impl Spawner for FloorMtSpawner {
    type Join<T: Send + 'static> = async_task::Task<T>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let shared = self.0.clone();
        start(future, move |r| shared.schedule(r))
    }
    fn detach<T: Send + 'static>(join: Self::Join<T>) {
        join.detach();
    }
}

impl Exec for FloorMt {
    type S = FloorMtSpawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        let mut future = pin!(future);
        let (state, waker) = main_waker();
        let mut cx = Context::from_waker(&waker);
        loop {
            if state.woken.swap(false, Ordering::AcqRel) {
                if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
                    return out;
                }
            } else {
                thread::park();
            }
        }
    }
    fn spawner(&self) -> FloorMtSpawner {
        FloorMtSpawner(self.shared.clone())
    }
    fn scheduling_only(&self) -> bool {
        true
    }
    crate::exec::smol_io!();
}
