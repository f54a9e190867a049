//! Files and directories, with tokio's names: each operation runs on the blocking pool (file
//! I/O has no readiness to wait for), and [`File`] batches reads and writes in a buffer so that
//! small reads and writes do not cost a pool job each.
//!
//! ```
//! facade::block_on(async {
//!     let dir = std::env::temp_dir().join(format!("facade-fs-doc-{}", std::process::id()));
//!     facade::fs::create_dir_all(&dir).await?;
//!     let path = dir.join("hello.txt");
//!     facade::fs::write(&path, "hello").await?;
//!     assert_eq!(facade::fs::read_to_string(&path).await?, "hello");
//!     facade::fs::remove_dir_all(&dir).await
//! })?;
//! # Ok::<(), std::io::Error>(())
//! ```

use std::collections::VecDeque;
use std::fs::File as StdFile;
use std::future::Future;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use futures_lite::Stream;
use futures_lite::io::{AsyncRead, AsyncSeek, AsyncWrite};
use runtime_core::JoinHandle;

pub use std::fs::{DirEntry, FileType, Metadata, Permissions};

/// Runs `f` on the blocking pool; a panic in it becomes an error.
async fn asyncify<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    crate::spawn_blocking(f).await?
}

macro_rules! path_fn {
    ($(#[$doc:meta])* $name:ident($($arg:ident),*) -> $ret:ty = $std:path) => {
        $(#[$doc])*
        pub async fn $name($($arg: impl AsRef<Path>),*) -> io::Result<$ret> {
            $(let $arg = $arg.as_ref().to_owned();)*
            asyncify(move || $std($($arg),*)).await
        }
    };
}

path_fn!(
    /// The whole contents of a file.
    read(path) -> Vec<u8> = std::fs::read
);
path_fn!(
    /// The whole contents of a file, which must be UTF-8.
    read_to_string(path) -> String = std::fs::read_to_string
);
path_fn!(
    /// Copies a file's contents and permissions; the bytes copied.
    copy(from, to) -> u64 = std::fs::copy
);
path_fn!(
    /// Renames a file or directory, replacing `to` if it is a file.
    rename(from, to) -> () = std::fs::rename
);
path_fn!(
    /// Removes a file.
    remove_file(path) -> () = std::fs::remove_file
);
path_fn!(
    /// Removes an empty directory.
    remove_dir(path) -> () = std::fs::remove_dir
);
path_fn!(
    /// Removes a directory and everything in it.
    remove_dir_all(path) -> () = std::fs::remove_dir_all
);
path_fn!(
    /// Creates a directory.
    create_dir(path) -> () = std::fs::create_dir
);
path_fn!(
    /// Creates a directory and any missing parents.
    create_dir_all(path) -> () = std::fs::create_dir_all
);
path_fn!(
    /// A path's metadata, following symbolic links.
    metadata(path) -> Metadata = std::fs::metadata
);
path_fn!(
    /// A path's metadata, not following symbolic links.
    symlink_metadata(path) -> Metadata = std::fs::symlink_metadata
);
path_fn!(
    /// The canonical, absolute form of a path.
    canonicalize(path) -> PathBuf = std::fs::canonicalize
);

/// Whether a path exists (an error if that cannot be told).
pub async fn try_exists(path: impl AsRef<Path>) -> io::Result<bool> {
    let path = path.as_ref().to_owned();
    asyncify(move || path.try_exists()).await
}

/// Writes `contents` to a file, creating it or replacing what it held.
pub async fn write(path: impl AsRef<Path>, contents: impl AsRef<[u8]>) -> io::Result<()> {
    let path = path.as_ref().to_owned();
    let contents = contents.as_ref().to_owned();
    asyncify(move || std::fs::write(path, contents)).await
}

/// Entries read from the blocking pool per job.
const DIR_BATCH: usize = 64;

/// The entries of a directory, a stream of `io::Result<DirEntry>` (also
/// [`next_entry`](ReadDir::next_entry), as tokio's). Entries are read in batches.
///
/// ```
/// use facade::prelude::*;
///
/// facade::block_on(async {
///     let mut entries = facade::fs::read_dir(".").await?;
///     let mut n = 0;
///     while let Some(entry) = entries.next().await {
///         entry?;
///         n += 1;
///     }
///     assert!(n > 0);
///     std::io::Result::Ok(())
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub async fn read_dir(path: impl AsRef<Path>) -> io::Result<ReadDir> {
    let path = path.as_ref().to_owned();
    let dir = asyncify(move || std::fs::read_dir(path)).await?;
    Ok(ReadDir {
        state: DirState::Idle(Some((dir, VecDeque::new(), false))),
    })
}

/// See [`read_dir`].
#[derive(Debug)]
pub struct ReadDir {
    state: DirState,
}

type DirBatch = (std::fs::ReadDir, VecDeque<io::Result<DirEntry>>, bool);

#[derive(Debug)]
enum DirState {
    /// The iterator, the entries read ahead, whether the iterator is done.
    Idle(Option<DirBatch>),
    Busy(JoinHandle<DirBatch>),
}

impl ReadDir {
    /// The next entry, or `None` at the end.
    pub async fn next_entry(&mut self) -> io::Result<Option<DirEntry>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx))
            .await
            .transpose()
    }
}

impl Stream for ReadDir {
    type Item = io::Result<DirEntry>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            match &mut self.state {
                DirState::Idle(batch) => {
                    let (mut dir, mut ahead, done) = batch.take().expect("present when idle");
                    if let Some(e) = ahead.pop_front() {
                        self.state = DirState::Idle(Some((dir, ahead, done)));
                        return Poll::Ready(Some(e));
                    }
                    if done {
                        self.state = DirState::Idle(Some((dir, ahead, done)));
                        return Poll::Ready(None);
                    }
                    self.state = DirState::Busy(crate::spawn_blocking(move || {
                        let mut done = false;
                        for _ in 0..DIR_BATCH {
                            match dir.next() {
                                Some(e) => ahead.push_back(e),
                                None => {
                                    done = true;
                                    break;
                                }
                            }
                        }
                        (dir, ahead, done)
                    }));
                }
                DirState::Busy(h) => {
                    let batch = match ready!(Pin::new(h).poll(cx)) {
                        Ok(b) => b,
                        Err(e) => return Poll::Ready(Some(Err(e.into()))),
                    };
                    self.state = DirState::Idle(Some(batch));
                }
            }
        }
    }
}

/// Options for opening a file (tokio's `OpenOptions`, over std's).
#[derive(Debug, Clone)]
pub struct OpenOptions(std::fs::OpenOptions);

impl Default for OpenOptions {
    fn default() -> Self {
        OpenOptions::new()
    }
}

impl OpenOptions {
    /// Nothing set: say at least `read` or `write`.
    pub fn new() -> OpenOptions {
        OpenOptions(std::fs::OpenOptions::new())
    }

    /// Open for reading.
    pub fn read(&mut self, read: bool) -> &mut OpenOptions {
        self.0.read(read);
        self
    }

    /// Open for writing.
    pub fn write(&mut self, write: bool) -> &mut OpenOptions {
        self.0.write(write);
        self
    }

    /// Writes go to the end.
    pub fn append(&mut self, append: bool) -> &mut OpenOptions {
        self.0.append(append);
        self
    }

    /// Empty the file when opening it.
    pub fn truncate(&mut self, truncate: bool) -> &mut OpenOptions {
        self.0.truncate(truncate);
        self
    }

    /// Create the file if it is missing.
    pub fn create(&mut self, create: bool) -> &mut OpenOptions {
        self.0.create(create);
        self
    }

    /// Create the file, failing if it exists.
    pub fn create_new(&mut self, create_new: bool) -> &mut OpenOptions {
        self.0.create_new(create_new);
        self
    }

    /// Opens `path` with these options.
    pub async fn open(&self, path: impl AsRef<Path>) -> io::Result<File> {
        let options = self.0.clone();
        let path = path.as_ref().to_owned();
        let std = asyncify(move || options.open(path)).await?;
        Ok(File::from_std(std))
    }
}

/// Bytes a read job asks for at least, and a write buffer holds before it is written.
const CHUNK: usize = 64 * 1024;
/// The most one job reads or writes.
const MAX_BUF: usize = 2 * 1024 * 1024;

/// An open file: `AsyncRead`, `AsyncWrite` and `AsyncSeek` (tokio's `fs::File`).
///
/// Reads fill a buffer of at least 64 KiB on the blocking pool and are served from it; writes
/// collect in a buffer that is written when it reaches 64 KiB, on `flush`, or before the next
/// read or seek. Call `flush` (or `sync_all`) to know that the data reached the file and to see
/// a write error; a `File` dropped with buffered data still writes it, on the blocking pool.
///
/// ```
/// use facade::prelude::*;
///
/// facade::block_on(async {
///     let path = std::env::temp_dir().join(format!("facade-file-doc-{}", std::process::id()));
///     let mut f = facade::fs::File::create(&path).await?;
///     for i in 0..1000u32 {
///         f.write_all(&i.to_le_bytes()).await?; // batched: not a pool job each
///     }
///     f.flush().await?;
///     let mut f = facade::fs::File::open(&path).await?;
///     f.seek(std::io::SeekFrom::Start(4)).await?;
///     let mut word = [0; 4];
///     f.read_exact(&mut word).await?;
///     assert_eq!(u32::from_le_bytes(word), 1);
///     facade::fs::remove_file(&path).await
/// })?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug)]
pub struct File {
    std: Arc<StdFile>,
    state: State,
    /// A seek is in flight (`poll_seek` returned `Pending` after starting it).
    seeking: bool,
}

#[derive(Debug)]
enum State {
    Idle(Option<Buf>),
    Busy(JoinHandle<(Op, Buf)>),
}

#[derive(Debug, Default)]
struct Buf {
    data: Vec<u8>,
    /// Read mode: how much of `data` was handed out.
    pos: usize,
    mode: Mode,
}

#[derive(Debug, Default, Clone, Copy, PartialEq)]
enum Mode {
    #[default]
    Empty,
    /// `data[pos..]` was read ahead of the file's position.
    Read,
    /// `data` waits to be written.
    Write,
}

#[derive(Debug)]
enum Op {
    Read(io::Result<()>),
    Write(io::Result<()>),
    Seek(io::Result<u64>),
}

impl Op {
    /// The job's failure, if it failed.
    fn into_result(self) -> io::Result<()> {
        match self {
            Op::Write(r) | Op::Read(r) => r,
            Op::Seek(r) => r.map(|_| ()),
        }
    }
}

impl File {
    /// Opens a file for reading.
    pub async fn open(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new().read(true).open(path).await
    }

    /// Opens a file for writing, creating it or emptying it.
    pub async fn create(path: impl AsRef<Path>) -> io::Result<File> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .await
    }

    /// Options for opening a file.
    pub fn options() -> OpenOptions {
        OpenOptions::new()
    }

    /// Wraps a file opened by std.
    pub fn from_std(std: StdFile) -> File {
        File {
            std: Arc::new(std),
            state: State::Idle(Some(Buf::default())),
            seeking: false,
        }
    }

    /// Writes what is buffered, then flushes the file's data and metadata to the device.
    pub async fn sync_all(&mut self) -> io::Result<()> {
        self.settle().await?;
        let std = self.std.clone();
        asyncify(move || std.sync_all()).await
    }

    /// Writes what is buffered, then flushes the file's data to the device.
    pub async fn sync_data(&mut self) -> io::Result<()> {
        self.settle().await?;
        let std = self.std.clone();
        asyncify(move || std.sync_data()).await
    }

    /// Truncates or extends the file to `size` bytes.
    pub async fn set_len(&mut self, size: u64) -> io::Result<()> {
        self.settle().await?;
        let std = self.std.clone();
        asyncify(move || std.set_len(size)).await
    }

    /// The file's metadata.
    pub async fn metadata(&self) -> io::Result<Metadata> {
        let std = self.std.clone();
        asyncify(move || std.metadata()).await
    }

    /// Changes the file's permissions.
    pub async fn set_permissions(&self, perm: Permissions) -> io::Result<()> {
        let std = self.std.clone();
        asyncify(move || std.set_permissions(perm)).await
    }

    /// The std file, once buffered writes are done and read-ahead given back.
    pub async fn into_std(mut self) -> StdFile {
        let _ = self.settle().await;
        // Settled: no job holds the file any more, and nothing is left to write on drop.
        self.state = State::Idle(None);
        let std = self.std.clone();
        drop(self);
        Arc::try_unwrap(std).unwrap_or_else(|shared| {
            shared
                .try_clone()
                .expect("File::into_std: the file is shared and cannot be duplicated")
        })
    }

    /// Writes the buffer and gives back what was read ahead, so that the file's position is
    /// the logical one.
    async fn settle(&mut self) -> io::Result<()> {
        std::future::poll_fn(|cx| self.poll_settle(cx)).await
    }

    fn poll_settle(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            match &mut self.state {
                State::Idle(buf) => {
                    let b = buf.as_mut().expect("present when idle");
                    match b.mode {
                        Mode::Empty => return Poll::Ready(Ok(())),
                        Mode::Write => self.start_write(),
                        Mode::Read => {
                            let back = (b.data.len() - b.pos) as i64;
                            b.data.clear();
                            b.pos = 0;
                            b.mode = Mode::Empty;
                            if back > 0 {
                                self.start_seek(SeekFrom::Current(-back));
                            }
                        }
                    }
                }
                State::Busy(_) => ready!(self.poll_job(cx))?,
            }
        }
    }

    /// Waits for the job in flight; the state is idle again afterwards.
    fn poll_busy(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<Op>> {
        let State::Busy(h) = &mut self.state else {
            unreachable!("poll_busy while idle");
        };
        let (op, buf) = match ready!(Pin::new(h).poll(cx)) {
            Ok(done) => done,
            Err(e) => {
                self.state = State::Idle(Some(Buf::default()));
                return Poll::Ready(Err(e.into()));
            }
        };
        self.state = State::Idle(Some(buf));
        Poll::Ready(Ok(op))
    }

    /// Waits for the job in flight, with its failure as the error.
    fn poll_job(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(ready!(self.poll_busy(cx))?.into_result())
    }

    fn take_buf(&mut self) -> Buf {
        match &mut self.state {
            State::Idle(b) => b.take().expect("present when idle"),
            State::Busy(_) => unreachable!("a job is already in flight"),
        }
    }

    fn start_write(&mut self) {
        let mut buf = self.take_buf();
        let std = self.std.clone();
        self.state = State::Busy(crate::spawn_blocking(move || {
            let r = (&*std).write_all(&buf.data);
            buf.data.clear();
            buf.mode = Mode::Empty;
            (Op::Write(r), buf)
        }));
    }

    fn start_read(&mut self, want: usize) {
        let mut buf = self.take_buf();
        let std = self.std.clone();
        self.state = State::Busy(crate::spawn_blocking(move || {
            buf.data.resize(want, 0);
            let r = (&*std).read(&mut buf.data);
            let n = *r.as_ref().unwrap_or(&0);
            buf.data.truncate(n);
            buf.pos = 0;
            buf.mode = if n > 0 { Mode::Read } else { Mode::Empty };
            (Op::Read(r.map(|_| ())), buf)
        }));
    }

    fn start_seek(&mut self, to: SeekFrom) {
        let buf = self.take_buf();
        let std = self.std.clone();
        self.state = State::Busy(crate::spawn_blocking(move || {
            (Op::Seek((&*std).seek(to)), buf)
        }));
    }
}

impl AsyncRead for File {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        out: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Idle(buf) => {
                    let b = buf.as_mut().expect("present when idle");
                    match b.mode {
                        Mode::Read => {
                            let n = out.len().min(b.data.len() - b.pos);
                            out[..n].copy_from_slice(&b.data[b.pos..b.pos + n]);
                            b.pos += n;
                            if b.pos == b.data.len() {
                                b.data.clear();
                                b.pos = 0;
                                b.mode = Mode::Empty;
                            }
                            return Poll::Ready(Ok(n));
                        }
                        Mode::Write => this.start_write(),
                        Mode::Empty => {
                            if out.is_empty() {
                                return Poll::Ready(Ok(0));
                            }
                            this.start_read(out.len().clamp(CHUNK, MAX_BUF));
                        }
                    }
                }
                State::Busy(_) => {
                    let op = ready!(this.poll_busy(cx))?;
                    let eof = matches!(op, Op::Read(Ok(())))
                        && matches!(&this.state, State::Idle(Some(b)) if b.mode == Mode::Empty);
                    op.into_result()?;
                    if eof {
                        return Poll::Ready(Ok(0));
                    }
                }
            }
        }
    }
}

impl AsyncWrite for File {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Idle(buf) => {
                    let b = buf.as_mut().expect("present when idle");
                    if b.mode == Mode::Read {
                        // Give back the read-ahead first, so the write lands where expected.
                        ready!(this.poll_settle(cx))?;
                        continue;
                    }
                    let room = MAX_BUF - b.data.len();
                    if room == 0 {
                        this.start_write();
                        continue;
                    }
                    let n = room.min(data.len());
                    b.data.extend_from_slice(&data[..n]);
                    b.mode = if b.data.is_empty() {
                        Mode::Empty
                    } else {
                        Mode::Write
                    };
                    if b.data.len() >= CHUNK {
                        this.start_write();
                    }
                    return Poll::Ready(Ok(n));
                }
                State::Busy(_) => ready!(this.poll_job(cx))?,
            }
        }
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            match &mut this.state {
                State::Idle(buf) => {
                    if buf.as_ref().expect("present when idle").mode != Mode::Write {
                        return Poll::Ready(Ok(()));
                    }
                    this.start_write();
                }
                State::Busy(_) => ready!(this.poll_job(cx))?,
            }
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

impl AsyncSeek for File {
    fn poll_seek(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        pos: SeekFrom,
    ) -> Poll<io::Result<u64>> {
        let this = &mut *self;
        if !this.seeking {
            ready!(this.poll_settle(cx))?;
            this.start_seek(pos);
            this.seeking = true;
        }
        let op = ready!(this.poll_busy(cx));
        this.seeking = false;
        match op? {
            Op::Seek(r) => Poll::Ready(r),
            other => {
                other.into_result()?;
                unreachable!("the job in flight during a seek is the seek")
            }
        }
    }
}

impl Drop for File {
    fn drop(&mut self) {
        if let State::Idle(Some(b)) = &self.state {
            if b.mode == Mode::Write && runtime_core::Handle::try_current().is_ok() {
                // Written on the pool, detached: see the type's docs.
                self.start_write();
            }
        }
    }
}
