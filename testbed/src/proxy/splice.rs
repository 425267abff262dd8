//! The fast path of a direction with no toxic: `splice(2)` from the source socket into a pipe
//! and from the pipe into the destination socket, so the bytes never enter user space. It
//! runs until a toxic for this direction appears (then the toxic path takes over, with the
//! pipe drained first so no byte is reordered), the source closes, or the connection is ended.
//! Bytes are counted as they move: `received` when spliced in, `forwarded` when spliced out.

use std::sync::atomic::Ordering;

use nix::fcntl::{OFlag, SpliceFFlags, splice};
use tokio::io::Interest;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::watch;

use super::link::{Conn, Ending, ToxicSet};
use super::toxic::Stream;

/// What ended the fast path.
pub(crate) enum Fast {
    /// The source closed (everything read was forwarded).
    Eof,
    /// A toxic for this direction appeared: continue on the toxic path.
    Toxic,
    /// The connection was ended from elsewhere.
    Killed,
    /// A socket failed.
    Failed(Ending),
    /// No pipe could be made: use the toxic path throughout.
    Unavailable,
}

/// Bytes moved per splice: the default pipe's size. A 1 MiB pipe (F_SETPIPE_SZ) measured no
/// faster in the proxy bench and would pin 2 MiB of kernel memory per connection.
const CHUNK: usize = 1 << 16;

fn has_toxic(toxics: &watch::Receiver<ToxicSet>, stream: Stream) -> bool {
    toxics.borrow().iter().any(|t| t.stream == stream)
}

pub(crate) async fn run(
    conn: &Conn,
    stream: Stream,
    src: &OwnedReadHalf,
    dst: &OwnedWriteHalf,
    toxics: &mut watch::Receiver<ToxicSet>,
    kill: &mut watch::Receiver<Option<Ending>>,
) -> Fast {
    if has_toxic(toxics, stream) {
        return Fast::Toxic;
    }
    let Ok((pipe_r, pipe_w)) = nix::unistd::pipe2(OFlag::O_NONBLOCK | OFlag::O_CLOEXEC) else {
        return Fast::Unavailable;
    };
    let counters = conn.counters(stream);
    let (src_failed, dst_failed) = match stream {
        Stream::Upstream => (Ending::ClientError, Ending::UpstreamError),
        Stream::Downstream => (Ending::UpstreamError, Ending::ClientError),
    };
    let flags = SpliceFFlags::SPLICE_F_MOVE | SpliceFFlags::SPLICE_F_NONBLOCK;
    // Reading and writing overlap: bytes are spliced in while the pipe has room and out while
    // it holds any. A toxic arriving stops the reading; the pipe is drained, then the toxic
    // path takes over.
    let mut in_pipe = 0usize;
    let mut eof = false;
    let mut switch = false;
    loop {
        if in_pipe == 0 {
            if eof {
                return Fast::Eof;
            }
            if switch {
                return Fast::Toxic;
            }
        }
        let reading = !eof && !switch && in_pipe < CHUNK;
        // Biased: a toxic added before bytes arrived applies to them (checked again right
        // before each splice in, since readiness and the change can land together).
        tokio::select! {
            biased;
            _ = kill.wait_for(Option::is_some) => {
                counters.discarded.fetch_add(in_pipe as u64, Ordering::Relaxed);
                return Fast::Killed;
            }
            changed = toxics.changed(), if !switch => match changed {
                Ok(()) => switch = has_toxic(toxics, stream),
                Err(_) => switch = true,
            },
            r = src.as_ref().readable(), if reading => {
                if has_toxic(toxics, stream) {
                    switch = true;
                    continue;
                }
                if r.is_err() {
                    return Fast::Failed(src_failed);
                }
                let moved = src.as_ref().try_io(Interest::READABLE, || {
                    splice(src.as_ref(), None, &pipe_w, None, CHUNK - in_pipe, flags).map_err(std::io::Error::from)
                });
                match moved {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        counters.received.fetch_add(n as u64, Ordering::Relaxed);
                        in_pipe += n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => return Fast::Failed(src_failed),
                }
            }
            w = dst.as_ref().writable(), if in_pipe > 0 => {
                if w.is_err() {
                    counters.discarded.fetch_add(in_pipe as u64, Ordering::Relaxed);
                    return Fast::Failed(dst_failed);
                }
                let wrote = dst.as_ref().try_io(Interest::WRITABLE, || {
                    splice(&pipe_r, None, dst.as_ref(), None, in_pipe, flags).map_err(std::io::Error::from)
                });
                match wrote {
                    Ok(n) => {
                        counters.wrote(n as u64);
                        in_pipe -= n;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(_) => {
                        counters.discarded.fetch_add(in_pipe as u64, Ordering::Relaxed);
                        return Fast::Failed(dst_failed);
                    }
                }
            }
        }
    }
}
