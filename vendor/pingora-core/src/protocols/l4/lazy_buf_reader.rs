// PORTCULLIS PATCH (pingora-core 7): a read buffer that holds memory only
// while it holds bytes.
//
// tokio's `BufReader` allocates its whole capacity when it is made and keeps
// it for the life of the stream. Under TLS the L4 read buffer (64 KiB, so
// that rustls' small reads of each record do not each cost a syscall) was
// kept by every idle keep-alive connection: 10,000 idle TLS clients held
// 640 MB of empty buffers. This reader does what `BufReader` does — reads
// that find the buffer empty and ask for at least its capacity go straight
// to the stream; others are served from one read of up to `capacity` bytes —
// but that read lands in a buffer shared by the thread, which is free again
// as soon as the poll returns (a `Pending` read leaves nothing in it, by
// `AsyncRead`'s contract). Only bytes the caller did not take yet are kept,
// in a buffer of exactly their size, released when they are consumed. The
// bytes each caller's read returns are the ones `BufReader` returns
// (Portcullis' `tests/it/proxy/buffers.rs` compares the two read by read).

use std::cell::RefCell;
use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

thread_local! {
    /// The scratch buffer of every `LazyBufReader` on this thread. Grown to
    /// the largest capacity in use; borrowed within one poll only.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// `tokio::io::BufReader` without a buffer of its own while it holds no
/// bytes.
pub struct LazyBufReader<R> {
    inner: R,
    /// Bytes read but not yet taken, from `pos`; unallocated when none.
    held: Vec<u8>,
    pos: usize,
    capacity: usize,
}

impl<R: AsyncRead + Unpin> LazyBufReader<R> {
    /// A reader reading `capacity` bytes at a time (more than zero).
    pub fn with_capacity(capacity: usize, inner: R) -> Self {
        assert!(capacity > 0, "a zero-capacity read buffer reads nothing");
        LazyBufReader {
            inner,
            held: Vec::new(),
            pos: 0,
            capacity,
        }
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The inner reader; bytes still held are lost, as with `BufReader`.
    pub fn into_inner(self) -> R {
        self.inner
    }

    /// Bytes allocated for buffering right now (0 when nothing is held).
    pub fn allocated(&self) -> usize {
        self.held.capacity()
    }

    /// Gives `buf` as much of the held bytes as fits.
    fn serve_held(&mut self, buf: &mut ReadBuf<'_>) {
        let n = (self.held.len() - self.pos).min(buf.remaining());
        buf.put_slice(&self.held[self.pos..self.pos + n]);
        self.pos += n;
        if self.pos == self.held.len() {
            self.held = Vec::new();
            self.pos = 0;
        }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for LazyBufReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.pos < this.held.len() {
            this.serve_held(buf);
            return Poll::Ready(Ok(()));
        }
        // Nothing held: a large read bypasses the buffer, as in `BufReader`.
        if buf.remaining() >= this.capacity {
            return Pin::new(&mut this.inner).poll_read(cx, buf);
        }
        SCRATCH.with_borrow_mut(|scratch| {
            if scratch.len() < this.capacity {
                scratch.resize(this.capacity, 0);
            }
            let mut read = ReadBuf::new(&mut scratch[..this.capacity]);
            ready!(Pin::new(&mut this.inner).poll_read(cx, &mut read))?;
            let got = read.filled();
            let n = got.len().min(buf.remaining());
            buf.put_slice(&got[..n]);
            if n < got.len() {
                this.held = got[n..].to_vec();
                this.pos = 0;
            }
            Poll::Ready(Ok(()))
        })
    }
}

impl<R: AsyncWrite + Unpin> AsyncWrite for LazyBufReader<R> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<R: fmt::Debug> fmt::Debug for LazyBufReader<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBufReader")
            .field("reader", &self.inner)
            .field(
                "buffer",
                &format_args!("{}/{}", self.held.len() - self.pos, self.capacity),
            )
            .finish()
    }
}
