//! Helpers shared by the suite: drop counting, a one-shot channel, a guard against hangs.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

/// Counts how many futures it wrapped were dropped (and how many polls they got).
#[derive(Debug, Clone, Default)]
pub struct DropCounter {
    drops: Arc<AtomicUsize>,
}

impl DropCounter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps `fut` so that dropping it (completed or not) counts once.
    pub fn wrap<F: Future>(&self, fut: F) -> Counted<F> {
        Counted {
            fut: Box::pin(fut),
            drops: self.drops.clone(),
        }
    }

    pub fn drops(&self) -> usize {
        self.drops.load(Ordering::SeqCst)
    }
}

/// A future that counts its own drop.
pub struct Counted<F> {
    fut: Pin<Box<F>>,
    drops: Arc<AtomicUsize>,
}

impl<F: Future> Future for Counted<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.fut.as_mut().poll(cx)
    }
}

impl<F> Drop for Counted<F> {
    fn drop(&mut self) {
        self.drops.fetch_add(1, Ordering::SeqCst);
    }
}

struct Slot<T> {
    value: Option<T>,
    waker: Option<Waker>,
    closed: bool,
}

/// Sends one value to a [`Receiver`], waking it from any thread.
pub struct Sender<T>(Arc<Mutex<Slot<T>>>);
/// Awaits the value of a [`Sender`]; `None` if the sender was dropped.
pub struct Receiver<T>(Arc<Mutex<Slot<T>>>);

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sender")
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Receiver")
    }
}

impl<F> std::fmt::Debug for Counted<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Counted")
    }
}

pub fn oneshot<T>() -> (Sender<T>, Receiver<T>) {
    let slot = Arc::new(Mutex::new(Slot {
        value: None,
        waker: None,
        closed: false,
    }));
    (Sender(slot.clone()), Receiver(slot))
}

impl<T> Sender<T> {
    pub fn send(self, value: T) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.value = Some(value);
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut s = self.0.lock().unwrap();
            s.closed = true;
            s.waker.take()
        };
        if let Some(w) = waker {
            w.wake();
        }
    }
}

impl<T> Future for Receiver<T> {
    type Output = Option<T>;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<T>> {
        let mut s = self.0.lock().unwrap();
        if let Some(v) = s.value.take() {
            return Poll::Ready(Some(v));
        }
        if s.closed {
            return Poll::Ready(None);
        }
        s.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}

/// Runs `f` on its own thread and fails (instead of hanging the suite) if it takes longer than
/// `limit`: a lost wake-up shows up as a failure with this message.
pub fn within<R: Send + 'static>(limit: Duration, f: impl FnOnce() -> R + Send + 'static) -> R {
    let (tx, rx) = std::sync::mpsc::channel();
    let t = std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(limit) {
        Ok(r) => {
            t.join().unwrap();
            r
        }
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => match t.join() {
            Err(p) => std::panic::resume_unwind(p),
            Ok(()) => unreachable!(),
        },
        Err(_) => panic!("test did not finish within {limit:?}: a lost wake-up or a hang"),
    }
}

/// The message of a panic payload.
pub fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    runtime_core::fault::panic_text(p).unwrap_or_default()
}

/// Generous limit for one test body; a hang fails after it.
pub const LIMIT: Duration = Duration::from_secs(60);

/// Captures what `tracing` prints, as text lines in `tracing-subscriber`'s format (no time,
/// no colours, no target): install it with [`Captured::install`] on the thread that builds a
/// runtime (the runtime's watchdog reports land here) or that polls the tasks (current-thread
/// mode). The one capture helper of the workspace's tests.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Captures warnings and errors on this thread until the guard is dropped.
    pub fn install() -> (Captured, tracing::subscriber::DefaultGuard) {
        Captured::install_at(tracing::Level::WARN)
    }

    /// Captures everything up to `level` on this thread, spans' creation included (as a line
    /// `name{fields}: new`), until the guard is dropped.
    pub fn install_at(level: tracing::Level) -> (Captured, tracing::subscriber::DefaultGuard) {
        // tracing-core caches whether a call site is enabled when it is first hit. With a
        // single live dispatcher it asks only the hitting thread's default, which for a thread
        // of another test's runtime is "none": the call site would then be disabled for every
        // capture until the next dispatcher registers. A second dispatcher that lives for the
        // whole process makes it ask all of them.
        static KEEP: std::sync::OnceLock<tracing::Dispatch> = std::sync::OnceLock::new();
        KEEP.get_or_init(|| {
            tracing::Dispatch::new(Captured::default().subscriber(tracing::Level::WARN))
        });
        let captured = Captured::default();
        let guard = tracing::subscriber::set_default(captured.subscriber(level));
        (captured, guard)
    }

    fn subscriber(&self, level: tracing::Level) -> impl tracing::Subscriber + Send + Sync {
        tracing_subscriber::fmt()
            .with_writer(self.clone())
            .with_max_level(level)
            .with_ansi(false)
            .without_time()
            .with_target(false)
            .with_span_events(tracing_subscriber::fmt::format::FmtSpan::NEW)
            .finish()
    }

    /// Every line so far, trimmed: the level, the span context, the message, then
    /// `field=value` pairs.
    pub fn lines(&self) -> Vec<String> {
        let bytes = self.0.lock().unwrap();
        String::from_utf8_lossy(&bytes)
            .lines()
            .map(|l| l.trim().to_owned())
            .collect()
    }
}

/// Appends to the capture; `tracing-subscriber` writes each line in one call.
#[derive(Debug)]
pub struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CaptureWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = CaptureWriter;
    fn make_writer(&'a self) -> CaptureWriter {
        CaptureWriter(self.0.clone())
    }
}
