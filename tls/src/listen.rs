//! What keeps a listener alive under idle or hostile clients: the open-files limit raised at
//! start, connection caps sized from it, accept errors backed off without a log flood, and
//! connections that end by a deadline.
//!
//! Without these, a thousand idle connections used up the process's file descriptors: git
//! sync failed with "Too many open files", agents could not register and `/healthz` timed out.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

/// Raises the soft open-files limit to the hard one (as dockerd and the kubelet do) and
/// returns the limit in force. The default soft limit of 1024 caps a server at a few hundred
/// connections.
pub fn raise_open_files_limit() -> u64 {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(e) => {
                tracing::warn!(soft, hard, error = %e, "cannot raise the open files limit");
                soft
            }
        },
        Ok((soft, _)) => soft,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the open files limit");
            1024
        }
    }
}

/// The open-files limit in force (the soft one).
pub fn open_files_limit() -> u64 {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft)
}

/// The connections one listener may hold: a quarter of the open-files limit (the rest is
/// for the store, git, other listeners and files), at least 64.
pub fn connection_cap(open_files: u64) -> usize {
    usize::try_from(open_files / 4)
        .unwrap_or(usize::MAX)
        .clamp(64, 1 << 20)
}

/// Accepts connections, backing off when accepting fails (out of file descriptors, most
/// often): 10 ms doubling to 1 s, logged once when the trouble starts and once a minute
/// while it lasts, with a count, instead of once per attempt.
pub struct Acceptor {
    listener: TcpListener,
    what: &'static str,
    failing: Option<Failing>,
}

struct Failing {
    since_logged: u64,
    logged_at: Instant,
    backoff: Duration,
}

impl Acceptor {
    pub fn new(listener: TcpListener, what: &'static str) -> Self {
        Self {
            listener,
            what,
            failing: None,
        }
    }

    pub async fn accept(&mut self) -> (TcpStream, std::net::SocketAddr) {
        loop {
            match self.listener.accept().await {
                Ok(accepted) => {
                    if let Some(f) = self.failing.take() {
                        tracing::info!(
                            listener = self.what,
                            failures = f.since_logged,
                            "accepting connections again"
                        );
                    }
                    return accepted;
                }
                Err(e) => {
                    let now = Instant::now();
                    let f = self.failing.get_or_insert_with(|| {
                        tracing::warn!(listener = self.what, error = %e, "cannot accept connections; backing off");
                        Failing {
                            since_logged: 0,
                            logged_at: now,
                            backoff: Duration::from_millis(10),
                        }
                    });
                    f.since_logged += 1;
                    if now - f.logged_at >= Duration::from_secs(60) {
                        tracing::warn!(listener = self.what, error = %e, failures = f.since_logged, "still cannot accept connections");
                        f.since_logged = 0;
                        f.logged_at = now;
                    }
                    let wait = f.backoff;
                    f.backoff = (f.backoff * 2).min(Duration::from_secs(1));
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }
}

/// A pool of connection slots: a connection holds one for as long as it is open.
#[derive(Clone)]
pub struct Slots(Arc<Semaphore>);

impl Slots {
    pub fn new(count: usize) -> Self {
        Self(Arc::new(Semaphore::new(count)))
    }

    /// A slot, if one is free.
    pub fn try_take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().try_acquire_owned().ok()
    }

    /// A slot, waiting for one.
    pub async fn take(&self) -> Option<OwnedSemaphorePermit> {
        self.0.clone().acquire_owned().await.ok()
    }
}

/// Connections of one kind, at most `cap` open: when a new one comes and all are taken, the
/// oldest is pushed out. Used where a stranger's idle connections must not lock out the
/// next real client (a joining agent): the newest connection always gets in.
#[derive(Clone)]
pub struct Evicting {
    cap: usize,
    open: Arc<std::sync::Mutex<std::collections::VecDeque<CancellationToken>>>,
}

impl Evicting {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            open: Arc::default(),
        }
    }

    /// Admits a connection; cancelling the token (its eviction, or its close) ends it.
    pub fn admit(&self) -> CancellationToken {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|t| !t.is_cancelled());
        if open.len() >= self.cap
            && let Some(oldest) = open.pop_front()
        {
            oldest.cancel();
        }
        let token = CancellationToken::new();
        open.push_back(token.clone());
        token
    }
}

/// A connection that holds its slot while open and fails every read and write once its
/// deadline passes or it is evicted, so that whoever serves it closes it.
pub struct Bounded<S> {
    inner: S,
    _slot: Option<OwnedSemaphorePermit>,
    deadline: Option<Pin<Box<Sleep>>>,
    evicted: Option<(CancellationToken, Pin<Box<WaitForCancellationFutureOwned>>)>,
}

impl<S> Bounded<S> {
    /// `inner`, holding `slot` until closed.
    pub fn new(inner: S, slot: OwnedSemaphorePermit) -> Self {
        Self {
            inner,
            _slot: Some(slot),
            deadline: None,
            evicted: None,
        }
    }

    /// `inner`, ended after `lifetime` or when `pool` pushes it out.
    pub fn evictable(inner: S, pool: &Evicting, lifetime: Duration) -> Self {
        let token = pool.admit();
        let cancelled = Box::pin(token.clone().cancelled_owned());
        Self {
            inner,
            _slot: None,
            deadline: Some(Box::pin(tokio::time::sleep(lifetime))),
            evicted: Some((token, cancelled)),
        }
    }

    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let late = self
            .deadline
            .as_mut()
            .is_some_and(|d| d.as_mut().poll(cx).is_ready());
        let evicted = self
            .evicted
            .as_mut()
            .is_some_and(|(_, c)| c.as_mut().poll(cx).is_ready());
        late || evicted
    }
}

impl<S> Drop for Bounded<S> {
    fn drop(&mut self) {
        // Closed: its place in the pool is free.
        if let Some((token, _)) = &self.evicted {
            token.cancel();
        }
    }
}

fn expired_error() -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        "the connection outlived its deadline",
    )
}

impl<S: AsyncRead + Unpin> AsyncRead for Bounded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Bounded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.expired(cx) {
            return Poll::Ready(Err(expired_error()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

impl<S: tonic::transport::server::Connected> tonic::transport::server::Connected for Bounded<S> {
    type ConnectInfo = S::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[tokio::test]
    async fn a_bounded_connection_frees_its_slot_when_closed() {
        let slots = Slots::new(1);
        let (a, _b) = tokio::io::duplex(64);
        let bounded = Bounded::new(a, slots.try_take().unwrap());
        assert!(slots.try_take().is_none(), "the slot is held while open");
        drop(bounded);
        assert!(slots.try_take().is_some(), "closing frees the slot");
    }

    #[tokio::test]
    async fn an_evictable_connection_ends_at_its_deadline_or_when_pushed_out() {
        let pool = Evicting::new(2);
        let (a, mut a_peer) = tokio::io::duplex(64);
        let mut first = Bounded::evictable(a, &pool, Duration::from_millis(300));
        a_peer.write_all(b"hi").await.unwrap();
        let mut buf = [0u8; 2];
        first.read_exact(&mut buf).await.unwrap();
        // Idle: the read waits, and the deadline ends it.
        let err = first.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        drop(first);

        let long = Duration::from_secs(3600);
        let (b, _b_peer) = tokio::io::duplex(64);
        let (c, _c_peer) = tokio::io::duplex(64);
        let (d, _d_peer) = tokio::io::duplex(64);
        let mut oldest = Bounded::evictable(b, &pool, long);
        let mut second = Bounded::evictable(c, &pool, long);
        // A third, with two open already: the oldest goes, the others stay.
        let _newest = Bounded::evictable(d, &pool, long);
        let err = oldest.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let still = tokio::time::timeout(Duration::from_millis(100), second.read(&mut buf)).await;
        assert!(
            still.is_err(),
            "the second connection is still open and waiting"
        );
    }

    #[test]
    fn caps_follow_the_open_files_limit() {
        assert_eq!(connection_cap(1024), 256);
        assert_eq!(connection_cap(100), 64);
        assert_eq!(connection_cap(1 << 20), 1 << 18);
    }
}
