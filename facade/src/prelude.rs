//! The traits most programs need, in one import: `use facade::prelude::*;`.
//!
//! The I/O traits and their extensions (`read_exact`, `write_all`, `read_line`, `seek`...),
//! streams ([`Stream`], [`StreamExt`]: `next`, `map`...) and [`FutureExt`] (`or`, `race`,
//! `catch_unwind`), from `futures-lite`.

pub use futures_lite::future::FutureExt;
pub use futures_lite::io::{
    AsyncBufRead, AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncSeek, AsyncSeekExt, AsyncWrite,
    AsyncWriteExt,
};
pub use futures_lite::stream::{Stream, StreamExt};
