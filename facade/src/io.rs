//! Asynchronous I/O helpers with tokio's names: [`copy`], [`copy_bidirectional`], [`split`],
//! [`BufReader`], [`BufWriter`], [`duplex`] (an in-memory pipe), over the `futures-io` traits
//! that this runtime's sockets and files implement. The extension traits (`read_exact`,
//! `write_all`, `lines`...) are in [`prelude`](crate::prelude).

use std::collections::VecDeque;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

pub use futures_lite::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite,
    AsyncWriteExt, BufReader, BufWriter, Cursor, Empty, ReadHalf, Repeat, Sink, WriteHalf, copy,
    empty, repeat, sink, split,
};
pub use std::io::{Error, ErrorKind, Result, SeekFrom};

use runtime_core::lock_unpoisoned as lock;

/// Copies `a` to `b` and `b` to `a` at once, until both reach end of stream (each writer is
/// closed when its reader ends); returns the bytes copied each way, `(a to b, b to a)`.
///
/// ```
/// use facade::prelude::*;
///
/// facade::block_on(async {
///     let (mut client, mut proxy_end) = facade::io::duplex(64);
///     let (mut server_end, mut server) = facade::io::duplex(64);
///     let proxy = facade::spawn(async move {
///         facade::io::copy_bidirectional(&mut proxy_end, &mut server_end).await
///     });
///     client.write_all(b"ping").await.unwrap();
///     let mut buf = [0; 4];
///     server.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"ping");
///     drop((client, server)); // both ends close: the proxy finishes
///     assert_eq!(proxy.await.unwrap().unwrap(), (4, 0));
/// });
/// ```
pub async fn copy_bidirectional<A, B>(a: &mut A, b: &mut B) -> io::Result<(u64, u64)>
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let (ra, mut wa) = split(a);
    let (rb, mut wb) = split(b);
    let a_to_b = async {
        let n = copy(ra, &mut wb).await?;
        wb.close().await?;
        io::Result::Ok(n)
    };
    let b_to_a = async {
        let n = copy(rb, &mut wa).await?;
        wa.close().await?;
        io::Result::Ok(n)
    };
    futures_lite::future::try_zip(a_to_b, b_to_a).await
}

/// An in-memory, bidirectional pipe: what one end writes the other reads, with at most
/// `max_buf_size` bytes buffered each way (tokio's `duplex`). Dropping or closing an end ends
/// the other's reads (after the buffered bytes) and fails its writes. Handy in tests.
///
/// ```
/// use facade::prelude::*;
///
/// facade::block_on(async {
///     let (mut a, mut b) = facade::io::duplex(16);
///     a.write_all(b"hello").await.unwrap();
///     let mut buf = [0; 5];
///     b.read_exact(&mut buf).await.unwrap();
///     assert_eq!(&buf, b"hello");
/// });
/// ```
pub fn duplex(max_buf_size: usize) -> (DuplexStream, DuplexStream) {
    let max = max_buf_size.max(1);
    let one = Arc::new(Mutex::new(Pipe::new(max)));
    let two = Arc::new(Mutex::new(Pipe::new(max)));
    (
        DuplexStream {
            read: one.clone(),
            write: two.clone(),
        },
        DuplexStream {
            read: two,
            write: one,
        },
    )
}

/// One end of a [`duplex`] pipe.
#[derive(Debug)]
pub struct DuplexStream {
    read: Arc<Mutex<Pipe>>,
    write: Arc<Mutex<Pipe>>,
}

#[derive(Debug)]
struct Pipe {
    buf: VecDeque<u8>,
    max: usize,
    /// The writing end closed: reads end after the buffer.
    closed: bool,
    /// The reading end is gone: writes fail.
    reader_gone: bool,
    read_waker: Option<Waker>,
    write_waker: Option<Waker>,
}

impl Pipe {
    fn new(max: usize) -> Pipe {
        Pipe {
            buf: VecDeque::new(),
            max,
            closed: false,
            reader_gone: false,
            read_waker: None,
            write_waker: None,
        }
    }
}

fn wake(w: &mut Option<Waker>) {
    if let Some(w) = w.take() {
        w.wake();
    }
}

impl AsyncRead for DuplexStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(runtime_core::coop::poll_proceed(cx));
        let mut p = lock(&self.read);
        if p.buf.is_empty() {
            if p.closed || out.is_empty() {
                return Poll::Ready(Ok(0));
            }
            p.read_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = out.len().min(p.buf.len());
        for (o, b) in out.iter_mut().zip(p.buf.drain(..n)) {
            *o = b;
        }
        wake(&mut p.write_waker);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for DuplexStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        std::task::ready!(runtime_core::coop::poll_proceed(cx));
        let mut p = lock(&self.write);
        if p.reader_gone || p.closed {
            return Poll::Ready(Err(io::ErrorKind::BrokenPipe.into()));
        }
        let room = p.max - p.buf.len();
        if room == 0 {
            p.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let n = room.min(data.len());
        p.buf.extend(&data[..n]);
        wake(&mut p.read_waker);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut p = lock(&self.write);
        p.closed = true;
        wake(&mut p.read_waker);
        Poll::Ready(Ok(()))
    }
}

impl Drop for DuplexStream {
    fn drop(&mut self) {
        let mut w = lock(&self.write);
        w.closed = true;
        wake(&mut w.read_waker);
        drop(w);
        let mut r = lock(&self.read);
        r.reader_gone = true;
        wake(&mut r.write_waker);
    }
}
