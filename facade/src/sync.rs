//! Synchronization for tasks, with tokio's names and signatures: channels ([`mpsc`],
//! [`oneshot`], [`broadcast`], [`watch`]), [`Mutex`], [`RwLock`], [`Semaphore`], [`Notify`],
//! [`Barrier`].
//!
//! These are tokio's `sync` types (tokio built with its `sync` feature only: no tokio runtime
//! is involved): they are runtime-agnostic, well tested, and have exactly the signatures a tokio
//! user types. The receivers of [`mpsc`] and [`broadcast`] are wrapped so that receiving spends
//! this runtime's cooperative budget: a task that receives in a loop from a channel that is
//! always ready still yields to the others.
//!
//! ```
//! facade::block_on(async {
//!     let (tx, mut rx) = facade::sync::mpsc::channel(16);
//!     for i in 0..3 {
//!         let tx = tx.clone();
//!         facade::spawn(async move { tx.send(i).await.unwrap() });
//!     }
//!     drop(tx);
//!     let mut sum = 0;
//!     while let Some(i) = rx.recv().await {
//!         sum += i;
//!     }
//!     assert_eq!(sum, 3);
//! });
//! ```

use std::future::poll_fn;
use std::task::{Context, Poll, ready};

pub use tokio::sync::{
    AcquireError, Barrier, BarrierWaitResult, MappedMutexGuard, Mutex, MutexGuard, Notify,
    OnceCell, OwnedMutexGuard, OwnedRwLockReadGuard, OwnedRwLockWriteGuard, OwnedSemaphorePermit,
    RwLock, RwLockReadGuard, RwLockWriteGuard, Semaphore, SemaphorePermit, TryAcquireError,
    TryLockError, oneshot, watch,
};

/// Multi-producer, single-consumer channels, bounded ([`channel`](mpsc::channel)) and unbounded
/// ([`unbounded_channel`](mpsc::unbounded_channel)).
pub mod mpsc {
    use super::*;

    pub use tokio::sync::mpsc::{
        OwnedPermit, Permit, Sender, UnboundedSender, WeakSender, WeakUnboundedSender, error,
    };

    /// A bounded channel with room for `buffer` messages (`buffer > 0`).
    ///
    /// # Panics
    ///
    /// If `buffer` is 0 (tokio's rule: a rendezvous channel is not provided).
    pub fn channel<T>(buffer: usize) -> (Sender<T>, Receiver<T>) {
        let (tx, rx) = tokio::sync::mpsc::channel(buffer);
        (tx, Receiver(rx))
    }

    /// An unbounded channel.
    pub fn unbounded_channel<T>() -> (UnboundedSender<T>, UnboundedReceiver<T>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        (tx, UnboundedReceiver(rx))
    }

    macro_rules! receiver {
        ($(#[$doc:meta])* $name:ident) => {
            $(#[$doc])*
            #[derive(Debug)]
            pub struct $name<T>(tokio::sync::mpsc::$name<T>);

            impl<T> $name<T> {
                /// The next message, or `None` once every sender is gone and the buffer is
                /// empty. Cancel-safe.
                pub async fn recv(&mut self) -> Option<T> {
                    poll_fn(|cx| self.poll_recv(cx)).await
                }

                /// Up to `limit` messages appended to `buffer`; how many (0 once closed and
                /// empty).
                pub async fn recv_many(&mut self, buffer: &mut Vec<T>, limit: usize) -> usize {
                    poll_fn(|cx| self.poll_recv_many(cx, buffer, limit)).await
                }

                /// A message if one is there now.
                pub fn try_recv(&mut self) -> Result<T, error::TryRecvError> {
                    self.0.try_recv()
                }

                /// Blocks the thread for the next message (not in a task).
                pub fn blocking_recv(&mut self) -> Option<T> {
                    self.0.blocking_recv()
                }

                /// Closes the receiving half: senders fail from now on; buffered messages can
                /// still be received.
                pub fn close(&mut self) {
                    self.0.close()
                }

                /// Whether the channel is closed.
                pub fn is_closed(&self) -> bool {
                    self.0.is_closed()
                }

                /// Whether no message is buffered.
                pub fn is_empty(&self) -> bool {
                    self.0.is_empty()
                }

                /// Messages buffered.
                pub fn len(&self) -> usize {
                    self.0.len()
                }

                /// Polls for the next message, spending one unit of the cooperative budget.
                pub fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Option<T>> {
                    ready!(runtime_core::coop::poll_proceed(cx));
                    self.0.poll_recv(cx)
                }

                /// Polls for up to `limit` messages, spending one unit of the budget.
                pub fn poll_recv_many(
                    &mut self,
                    cx: &mut Context<'_>,
                    buffer: &mut Vec<T>,
                    limit: usize,
                ) -> Poll<usize> {
                    ready!(runtime_core::coop::poll_proceed(cx));
                    self.0.poll_recv_many(cx, buffer, limit)
                }

                /// tokio's receiver inside (for APIs that take it).
                pub fn into_inner(self) -> tokio::sync::mpsc::$name<T> {
                    self.0
                }
            }
        };
    }

    receiver!(
        /// The receiving half of [`channel`].
        Receiver
    );
    receiver!(
        /// The receiving half of [`unbounded_channel`].
        UnboundedReceiver
    );

    impl<T> Receiver<T> {
        /// The channel's free slots now.
        pub fn capacity(&self) -> usize {
            self.0.capacity()
        }

        /// The channel's size (`buffer`).
        pub fn max_capacity(&self) -> usize {
            self.0.max_capacity()
        }
    }
}

/// A multi-producer, multi-consumer channel where every receiver sees every message.
pub mod broadcast {
    use super::*;

    pub use tokio::sync::broadcast::error;

    /// A channel keeping the last `capacity` messages (`capacity > 0`).
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 (tokio's rule).
    pub fn channel<T: Clone>(capacity: usize) -> (Sender<T>, Receiver<T>) {
        let (tx, rx) = tokio::sync::broadcast::channel(capacity);
        (Sender(tx), Receiver(rx))
    }

    /// The sending half; clone it for more senders.
    #[derive(Debug)]
    pub struct Sender<T>(tokio::sync::broadcast::Sender<T>);

    impl<T> Clone for Sender<T> {
        fn clone(&self) -> Self {
            Sender(self.0.clone())
        }
    }

    impl<T> Sender<T> {
        /// Sends to every receiver; how many there are, or the message back if there are none.
        pub fn send(&self, value: T) -> Result<usize, error::SendError<T>> {
            self.0.send(value)
        }

        /// A new receiver, which sees the messages sent from now on.
        pub fn subscribe(&self) -> Receiver<T> {
            Receiver(self.0.subscribe())
        }

        /// Receivers now.
        pub fn receiver_count(&self) -> usize {
            self.0.receiver_count()
        }

        /// Messages retained now.
        pub fn len(&self) -> usize {
            self.0.len()
        }

        /// Whether no message is retained.
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }

    /// A receiving half.
    #[derive(Debug)]
    pub struct Receiver<T>(tokio::sync::broadcast::Receiver<T>);

    impl<T: Clone> Receiver<T> {
        /// The next message, `Err(Lagged(n))` if `n` were missed, `Err(Closed)` once every
        /// sender is gone. Spends one unit of the cooperative budget.
        pub async fn recv(&mut self) -> Result<T, error::RecvError> {
            poll_fn(runtime_core::coop::poll_proceed).await;
            self.0.recv().await
        }

        /// A message if one is there now.
        pub fn try_recv(&mut self) -> Result<T, error::TryRecvError> {
            self.0.try_recv()
        }

        /// Blocks the thread for the next message (not in a task).
        pub fn blocking_recv(&mut self) -> Result<T, error::RecvError> {
            self.0.blocking_recv()
        }
    }

    impl<T> Receiver<T> {
        /// A new receiver that sees the messages sent from now on (tokio's `resubscribe`).
        pub fn resubscribe(&self) -> Receiver<T>
        where
            T: Clone,
        {
            Receiver(self.0.resubscribe())
        }

        /// Messages this receiver has yet to see.
        pub fn len(&self) -> usize {
            self.0.len()
        }

        /// Whether this receiver has seen every message.
        pub fn is_empty(&self) -> bool {
            self.0.is_empty()
        }
    }
}
