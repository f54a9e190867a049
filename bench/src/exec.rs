//! The runtimes under test, behind one small trait so each workload is written once.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

/// Spawns tasks on one runtime; cloneable into tasks and other threads.
pub(crate) trait Spawner: Clone + Send + Sync + 'static {
    /// Awaits a spawned task's output.
    type Join<T: Send + 'static>: Future<Output = T> + Send + 'static;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Spawns a latency-critical task: at the top priority where the runtime has priorities.
    fn spawn_urgent<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn(future)
    }

    /// Runs a blocking function on the runtime's blocking pool.
    fn spawn_blocking<F, T>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // smol's pool: `unblock` (both smol runtimes use it).
        smol_blocking::unblock(f)
    }

    /// Runs `f` on rayon's global pool and awaits its result. By default the idiom a smol user
    /// writes: `rayon::spawn` and a one-slot channel.
    fn spawn_rayon<F, T>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = async_channel::bounded(1);
        rayon::spawn(move || {
            let _ = tx.send_blocking(f());
        });
        async move { rx.recv().await.expect("rayon job finished") }
    }

    /// Lets a task run on without its handle (smol cancels a task whose handle is dropped).
    fn detach<T: Send + 'static>(join: Self::Join<T>) {
        drop(join);
    }
}

/// One runtime under test.
pub(crate) trait Exec {
    type S: Spawner;
    /// Runs `future` to completion, with the runtime's tasks running meanwhile.
    fn block_on<F: Future>(&self, future: F) -> F::Output;
    /// Spawns from inside the runtime (a task or `block_on`).
    fn spawner(&self) -> Self::S;
    /// Whether tasks can be spawned from a thread outside the runtime.
    fn remote_spawn(&self) -> bool {
        true
    }
    /// Whether it has more than one worker thread.
    fn multi_thread(&self) -> bool {
        true
    }
    /// Whether it runs only the scheduling workloads (the floor executors: no I/O, no timers).
    fn scheduling_only(&self) -> bool {
        false
    }
    /// Spawns `n` tasks into the runtime's own `JoinSet` from a task, each yielding once and
    /// returning its index, and joins them in completion order: the sum of the outputs. `None`
    /// when the runtime has no `JoinSet` (smol, the floors).
    fn join_set_sum(&self, n: usize) -> Option<u64> {
        let _ = n;
        None
    }
    /// Yields once, the runtime's own way.
    fn yield_now() -> impl Future<Output = ()> + Send;
    /// Sleeps, with the runtime's own timer.
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send;
    /// A TCP stream of the runtime's own kind.
    type Stream: Send + 'static;
    /// A TCP listener of the runtime's own kind.
    type Listener: Send + Sync + 'static;
    /// Binds a listener on loopback (inside the runtime).
    fn bind() -> impl Future<Output = (Self::Listener, SocketAddr)> + Send;
    fn accept(l: &Self::Listener) -> impl Future<Output = Self::Stream> + Send;
    fn connect(addr: SocketAddr) -> impl Future<Output = Self::Stream> + Send;
    fn read_exact<'a>(
        s: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = bool> + Send + 'a;
    fn write_all<'a>(
        s: &'a mut Self::Stream,
        buf: &'a [u8],
    ) -> impl Future<Output = ()> + Send + 'a;
}

/// futures-io streams (ours and smol's): read until full, `false` on EOF.
pub(crate) async fn fio_read_exact<S: futures_io::AsyncRead + Unpin>(
    s: &mut S,
    buf: &mut [u8],
) -> bool {
    futures_lite::AsyncReadExt::read_exact(s, buf).await.is_ok()
}

pub(crate) async fn fio_write_all<S: futures_io::AsyncWrite + Unpin>(s: &mut S, buf: &[u8]) {
    futures_lite::AsyncWriteExt::write_all(s, buf)
        .await
        .expect("write");
}

/// Turns a `Result`-returning join handle into one that gives the value.
pub(crate) struct Unwrap<J>(J);

impl<J, T, E> Future for Unwrap<J>
where
    J: Future<Output = Result<T, E>> + Unpin,
    E: std::fmt::Debug,
{
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.expect("task failed"))
    }
}

/// `Exec::join_set_sum` for a runtime with tokio's `JoinSet` API (`self.0` is the runtime, with
/// `block_on` and `spawn`): the same workload, written once.
macro_rules! join_set_sum {
    ($set:ty, $yield_now:path) => {
        fn join_set_sum(&self, n: usize) -> Option<u64> {
            let sum = self.0.block_on(self.0.spawn(async move {
                let mut set = <$set>::new();
                for i in 0..n as u64 {
                    set.spawn(async move {
                        $yield_now().await;
                        i
                    });
                }
                let mut sum = 0;
                while let Some(r) = set.join_next().await {
                    sum += r.expect("task failed");
                }
                sum
            }));
            Some(sum.expect("task failed"))
        }
    };
}

// ---- ours ----

pub(crate) struct Ours(pub facade::Runtime);

#[derive(Clone)]
pub(crate) struct OursSpawner(facade::Handle);

impl Spawner for OursSpawner {
    type Join<T: Send + 'static> = Unwrap<facade::JoinHandle<T>>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrap(self.0.spawn(future))
    }
    fn spawn_blocking<F, T>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Unwrap(self.0.spawn_blocking(f))
    }
    fn spawn_rayon<F, T>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Unwrap(facade::spawn_rayon(f))
    }
    fn spawn_urgent<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrap(
            facade::task::Builder::new()
                .name("urgent")
                .priority(facade::Priority::CRITICAL)
                .spawn_on(future, &self.0),
        )
    }
}

impl Exec for Ours {
    type S = OursSpawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    fn spawner(&self) -> OursSpawner {
        OursSpawner(self.0.handle().clone())
    }
    join_set_sum!(facade::task::JoinSet<u64>, facade::yield_now);
    fn multi_thread(&self) -> bool {
        !self.0.handle().as_core().is_current_thread()
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        facade::yield_now()
    }
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        facade::time::sleep(d)
    }
    type Stream = facade::net::TcpStream;
    type Listener = facade::net::TcpListener;
    async fn bind() -> (Self::Listener, SocketAddr) {
        let l = facade::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let a = l.local_addr().expect("addr");
        (l, a)
    }
    async fn accept(l: &Self::Listener) -> Self::Stream {
        l.accept().await.expect("accept").0
    }
    async fn connect(addr: SocketAddr) -> Self::Stream {
        facade::net::TcpStream::connect(addr)
            .await
            .expect("connect")
    }
    fn read_exact<'a>(
        s: &'a mut Self::Stream,
        buf: &'a mut [u8],
    ) -> impl Future<Output = bool> + Send + 'a {
        fio_read_exact(s, buf)
    }
    fn write_all<'a>(
        s: &'a mut Self::Stream,
        buf: &'a [u8],
    ) -> impl Future<Output = ()> + Send + 'a {
        fio_write_all(s, buf)
    }
}

// ---- tokio ----

pub(crate) struct Tokio(pub tokio::runtime::Runtime, pub bool);

#[derive(Clone)]
pub(crate) struct TokioSpawner(tokio::runtime::Handle);

impl Spawner for TokioSpawner {
    type Join<T: Send + 'static> = Unwrap<tokio::task::JoinHandle<T>>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrap(self.0.spawn(future))
    }
    fn spawn_blocking<F, T>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        Unwrap(self.0.spawn_blocking(f))
    }
    /// The idiom of tokio's documentation: `rayon::spawn` and a oneshot channel.
    fn spawn_rayon<F, T>(&self, f: F) -> impl Future<Output = T> + Send + 'static
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel();
        rayon::spawn(move || {
            let _ = tx.send(f());
        });
        async move { rx.await.expect("rayon job finished") }
    }
}

impl Exec for Tokio {
    type S = TokioSpawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.0.block_on(future)
    }
    fn spawner(&self) -> TokioSpawner {
        TokioSpawner(self.0.handle().clone())
    }
    join_set_sum!(tokio::task::JoinSet<u64>, tokio::task::yield_now);
    fn multi_thread(&self) -> bool {
        self.1
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
    fn sleep(d: Duration) -> impl Future<Output = ()> + Send {
        tokio::time::sleep(d)
    }
    type Stream = tokio::net::TcpStream;
    type Listener = tokio::net::TcpListener;
    async fn bind() -> (Self::Listener, SocketAddr) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let a = l.local_addr().expect("addr");
        (l, a)
    }
    async fn accept(l: &Self::Listener) -> Self::Stream {
        l.accept().await.expect("accept").0
    }
    async fn connect(addr: SocketAddr) -> Self::Stream {
        tokio::net::TcpStream::connect(addr).await.expect("connect")
    }
    async fn read_exact(s: &mut Self::Stream, buf: &mut [u8]) -> bool {
        tokio::io::AsyncReadExt::read_exact(s, buf).await.is_ok()
    }
    async fn write_all(s: &mut Self::Stream, buf: &[u8]) {
        tokio::io::AsyncWriteExt::write_all(s, buf)
            .await
            .expect("write")
    }
}

/// The parts of `Exec` that both smol runtimes share: async-io's timers and sockets.
macro_rules! smol_io {
    () => {
        fn yield_now() -> impl std::future::Future<Output = ()> + Send {
            futures_lite::future::yield_now()
        }
        async fn sleep(d: std::time::Duration) {
            async_io::Timer::after(d).await;
        }
        type Stream = async_io::Async<std::net::TcpStream>;
        type Listener = async_io::Async<std::net::TcpListener>;
        async fn bind() -> (Self::Listener, std::net::SocketAddr) {
            let l =
                async_io::Async::<std::net::TcpListener>::bind(([127, 0, 0, 1], 0)).expect("bind");
            let a = l.get_ref().local_addr().expect("addr");
            (l, a)
        }
        async fn accept(l: &Self::Listener) -> Self::Stream {
            l.accept().await.expect("accept").0
        }
        async fn connect(addr: std::net::SocketAddr) -> Self::Stream {
            async_io::Async::<std::net::TcpStream>::connect(addr)
                .await
                .expect("connect")
        }
        fn read_exact<'a>(
            s: &'a mut Self::Stream,
            buf: &'a mut [u8],
        ) -> impl std::future::Future<Output = bool> + Send + 'a {
            $crate::exec::fio_read_exact(s, buf)
        }
        fn write_all<'a>(
            s: &'a mut Self::Stream,
            buf: &'a [u8],
        ) -> impl std::future::Future<Output = ()> + Send + 'a {
            $crate::exec::fio_write_all(s, buf)
        }
    };
}

pub(crate) use smol_io;

// ---- smol: an async-executor run by worker threads, with async-io's block_on ----

pub(crate) struct Smol {
    ex: Arc<async_executor::Executor<'static>>,
    stop: Arc<Stop>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// Tells the smol worker threads to leave `Executor::run`.
#[derive(Default)]
struct Stop {
    set: std::sync::atomic::AtomicBool,
    wakers: std::sync::Mutex<Vec<std::task::Waker>>,
}

impl Stop {
    fn fire(&self) {
        self.set.store(true, std::sync::atomic::Ordering::SeqCst);
        for w in self.wakers.lock().unwrap().drain(..) {
            w.wake();
        }
    }

    async fn wait(&self) {
        futures_lite::future::poll_fn(|cx| {
            if self.set.load(std::sync::atomic::Ordering::SeqCst) {
                return Poll::Ready(());
            }
            self.wakers.lock().unwrap().push(cx.waker().clone());
            if self.set.load(std::sync::atomic::Ordering::SeqCst) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Smol {
    pub(crate) fn new(threads: usize) -> Smol {
        let ex = Arc::new(async_executor::Executor::new());
        let stop = Arc::new(Stop::default());
        let threads = (0..threads)
            .map(|i| {
                let (ex, stop) = (ex.clone(), stop.clone());
                std::thread::Builder::new()
                    .name(format!("smol-{i}"))
                    .spawn(move || async_io::block_on(ex.run(stop.wait())))
                    .expect("start a smol thread")
            })
            .collect();
        Smol { ex, stop, threads }
    }
}

impl Drop for Smol {
    fn drop(&mut self) {
        self.stop.fire();
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

#[derive(Clone)]
pub(crate) struct SmolSpawner(Arc<async_executor::Executor<'static>>);

impl Spawner for SmolSpawner {
    type Join<T: Send + 'static> = async_executor::Task<T>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(future)
    }
    fn detach<T: Send + 'static>(join: Self::Join<T>) {
        join.detach();
    }
}

impl Exec for Smol {
    type S = SmolSpawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        async_io::block_on(future)
    }
    fn spawner(&self) -> SmolSpawner {
        SmolSpawner(self.ex.clone())
    }
    smol_io!();
}

// ---- smol-ct: a LocalExecutor on the calling thread ----

thread_local! {
    static LOCAL: async_executor::LocalExecutor<'static> = const { async_executor::LocalExecutor::new() };
}

pub(crate) struct SmolCt;

/// Spawns on the current thread's `LocalExecutor`; only usable on that thread.
#[derive(Clone)]
pub(crate) struct SmolCtSpawner;

impl Spawner for SmolCtSpawner {
    type Join<T: Send + 'static> = async_executor::Task<T>;
    fn spawn<F>(&self, future: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        LOCAL.with(|ex| ex.spawn(future))
    }
    fn detach<T: Send + 'static>(join: Self::Join<T>) {
        join.detach();
    }
}

impl Exec for SmolCt {
    type S = SmolCtSpawner;
    fn block_on<F: Future>(&self, future: F) -> F::Output {
        LOCAL.with(|ex| async_io::block_on(ex.run(future)))
    }
    fn spawner(&self) -> SmolCtSpawner {
        SmolCtSpawner
    }
    fn remote_spawn(&self) -> bool {
        false
    }
    fn multi_thread(&self) -> bool {
        false
    }
    smol_io!();
}
