//! Moving a TCP connection's bytes between two sockets. Small messages (requests and
//! answers) are copied through a small buffer: one read and one write each. Once a read fills
//! the buffer, the direction is carrying bulk data and switches to `splice(2)`, which moves
//! pages from the receiving socket into a pipe and from the pipe into the sending socket
//! inside the kernel, sparing two copies of every byte. haproxy's `splice-auto` works the
//! same way.
//!
//! A connection ends when both directions have, or when it falls silent: after
//! [`Timeouts::idle`] with nothing moving either way, or, once one side has finished sending
//! (a client that closed), after [`Timeouts::fin`] with nothing moving; both sockets are
//! then shut down whole, so no upstream is left half-open behind a client that went away.

use std::io;
use std::net::Shutdown;
use std::os::fd::OwnedFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use nix::fcntl::{FcntlArg, OFlag, SpliceFFlags, fcntl, splice};
use std::io::Read;

use socket2::SockRef;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The copy buffer; a read that fills it marks a bulk transfer.
const COPY_BUFFER: usize = 16 * 1024;
/// The pipe of a bulk direction. Pipes count against the per-user pipe memory limit
/// (`fs.pipe-user-pages-soft`, 64 MiB by default), past which new pipes get one page: a
/// quarter megabyte leaves room for hundreds of bulk connections.
const PIPE: usize = 256 * 1024;

struct Pipe {
    read: OwnedFd,
    write: OwnedFd,
}

impl Pipe {
    fn new() -> io::Result<Pipe> {
        let (read, write) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC)?;
        // Best effort: the default 64 KiB pipe works too, in more steps.
        let _ = fcntl(&write, FcntlArg::F_SETPIPE_SZ(PIPE as i32));
        Ok(Pipe { read, write })
    }
}

fn flags() -> SpliceFFlags {
    SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK
}

async fn write_all(to: &TcpStream, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        to.writable().await?;
        match to.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// One splice of whatever `from` has into `to`, through `pipe`; 0 at the end of `from`.
async fn splice_once(from: &TcpStream, to: &TcpStream, pipe: &Pipe) -> io::Result<usize> {
    let filled = loop {
        from.readable().await?;
        match from.try_io(Interest::READABLE, || {
            splice(from, None, &pipe.write, None, PIPE, flags()).map_err(io::Error::from)
        }) {
            Ok(n) => break n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    };
    let mut left = filled;
    while left > 0 {
        to.writable().await?;
        match to.try_io(Interest::WRITABLE, || {
            splice(&pipe.read, None, to, None, left, flags()).map_err(io::Error::from)
        }) {
            Ok(n) => left -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads what `from` has into `buf`: `Ok(0)` at its end.
async fn read(from: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        let mut got = None;
        let result = from.try_io(Interest::READABLE, || {
            let n = (&*SockRef::from(from)).read(buf)?;
            got = Some(n);
            if n > 0 && n < buf.len() {
                // A short read drained the socket. Reporting "would block" has tokio clear
                // the readiness it saw (never newer events), so the next read waits for the
                // next edge instead of spending a syscall to learn the socket is empty: a
                // third of a small message's cost.
                return Err(io::ErrorKind::WouldBlock.into());
            }
            Ok(())
        });
        match (got, result) {
            (Some(n), _) => return Ok(n),
            (None, Err(e)) if e.kind() != io::ErrorKind::WouldBlock => return Err(e),
            (None, _) => from.readable().await?,
        }
    }
}

/// How long a connection may stay silent (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub fin: Duration,
}

/// When bytes last moved on a connection, and whether one side has finished.
struct Activity {
    started: Instant,
    /// Milliseconds after `started`.
    last: AtomicU64,
    one_side_done: AtomicBool,
    /// Told when one side finishes, so the shorter limit applies from then.
    finished: tokio::sync::Notify,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            started: Instant::now(),
            last: AtomicU64::new(0),
            one_side_done: AtomicBool::new(false),
            finished: tokio::sync::Notify::new(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    fn silent_for(&self) -> Duration {
        Duration::from_millis(self.now().saturating_sub(self.last.load(Ordering::Relaxed)))
    }
}

/// Moves bytes from `from` to `to` until `from` ends, then half-closes `to`. On a failure
/// (a reset, a dead peer) both sockets are shut down, so the other direction ends too and
/// the client learns at once instead of waiting on a connection that will never answer.
async fn one_way(from: &TcpStream, to: &TcpStream, activity: &Activity) -> io::Result<()> {
    let result = pump(from, to, activity).await;
    activity.one_side_done.store(true, Ordering::Relaxed);
    activity.finished.notify_one();
    match &result {
        // The peer finished sending: pass the end on, so a client that half-closes still
        // gets its whole answer.
        Ok(()) => {
            let _ = SockRef::from(to).shutdown(Shutdown::Write);
        }
        Err(_) => {
            let _ = SockRef::from(from).shutdown(Shutdown::Both);
            let _ = SockRef::from(to).shutdown(Shutdown::Both);
        }
    }
    result
}

async fn pump(from: &TcpStream, to: &TcpStream, activity: &Activity) -> io::Result<()> {
    let mut buf = vec![0u8; COPY_BUFFER];
    let mut pipe: Option<Pipe> = None;
    loop {
        if let Some(p) = &pipe {
            if splice_once(from, to, p).await? == 0 {
                break;
            }
            activity.touch();
            continue;
        }
        let n = read(from, &mut buf).await?;
        if n == 0 {
            break;
        }
        activity.touch();
        write_all(to, &buf[..n]).await?;
        if n == buf.len() {
            // Out of pipes (file descriptors): stay on copying.
            pipe = Pipe::new().ok();
        }
    }
    Ok(())
}

/// Moves both directions, each on its own task so a wake-up on one socket polls only the
/// direction it concerns, until both have ended or the connection falls silent.
pub async fn bidirectional(a: TcpStream, b: TcpStream, timeouts: Timeouts) -> io::Result<()> {
    let a = Arc::new(a);
    let b = Arc::new(b);
    let activity = Arc::new(Activity::new());
    let (a2, b2, activity2) = (a.clone(), b.clone(), activity.clone());
    let back = tokio::spawn(async move { one_way(&b2, &a2, &activity2).await });
    let both = async {
        let there = one_way(&a, &b, &activity).await;
        let back = back.await.unwrap_or_else(|e| Err(io::Error::other(e)));
        there.and(back)
    };
    tokio::pin!(both);
    tokio::select! {
        result = &mut both => result,
        () = watch_silence(&a, &b, &activity, timeouts) => both.await,
    }
}

/// Returns once the connection has been silent too long, after shutting both sockets down
/// (which ends both directions: their reads see the end).
async fn watch_silence(a: &TcpStream, b: &TcpStream, activity: &Activity, timeouts: Timeouts) {
    loop {
        let limit = if activity.one_side_done.load(Ordering::Relaxed) {
            timeouts.fin.min(timeouts.idle)
        } else {
            timeouts.idle
        };
        let silent = activity.silent_for();
        if silent >= limit {
            let _ = SockRef::from(a).shutdown(Shutdown::Both);
            let _ = SockRef::from(b).shutdown(Shutdown::Both);
            return;
        }
        // Checked again when the limit would be reached, or when one side finishes and the
        // shorter limit applies.
        tokio::select! {
            () = tokio::time::sleep(limit - silent) => {}
            () = activity.finished.notified() => {}
        }
    }
}
