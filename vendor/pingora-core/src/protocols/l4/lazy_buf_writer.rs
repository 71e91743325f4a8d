// PORTCULLIS PATCH (pingora-core 4): a write buffer that holds memory only
// while it holds bytes.
//
// tokio's `BufWriter` allocates its whole capacity when it is made and keeps
// it for the life of the stream. A downstream connection lives mostly idle
// (keep-alive waits between requests), so with a 16 KiB write buffer 10,000
// idle connections held 160 MB of buffers that were empty. This writer makes
// the same decisions as `BufWriter` — when to buffer, when to flush first,
// when to write straight through — but allocates its buffer on the first
// write that is buffered and gives it back once a flush has emptied it. A
// request/response exchange therefore costs one allocation of the buffer
// (served from the allocator's thread cache) instead of a buffer per
// connection, and the bytes on the wire and the number of writes are what
// `BufWriter` gives (Portcullis' `tests/it/proxy/buffers.rs` compares the
// two write by write; this copy's own tests need upstream's dev-dependencies).

use std::fmt;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `tokio::io::BufWriter` with its buffer allocated on demand and released
/// when empty after a flush.
pub struct LazyBufWriter<W> {
    inner: W,
    /// Empty and unallocated (capacity 0) unless bytes wait in it.
    buf: Vec<u8>,
    /// How much of `buf` the inner writer has taken.
    written: usize,
    capacity: usize,
}

impl<W: AsyncWrite + Unpin> LazyBufWriter<W> {
    /// A writer buffering up to `capacity` bytes; 0 writes straight through.
    pub fn with_capacity(capacity: usize, inner: W) -> Self {
        LazyBufWriter {
            inner,
            buf: Vec::new(),
            written: 0,
            capacity,
        }
    }

    /// Room left before a write must flush first.
    fn spare(&self) -> usize {
        self.capacity - self.buf.len()
    }

    /// Makes sure the buffer can take `capacity` bytes without growing.
    fn allocate(&mut self) {
        if self.buf.capacity() < self.capacity {
            self.buf.reserve_exact(self.capacity - self.buf.len());
        }
    }

    fn flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let len = self.buf.len();
        let mut ret = Ok(());
        while self.written < len {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..])) {
                Ok(0) => {
                    ret = Err(io::Error::new(
                        io::ErrorKind::WriteZero,
                        "failed to write the buffered data",
                    ));
                    break;
                }
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    ret = Err(e);
                    break;
                }
            }
        }
        if self.written == len {
            // Everything went: the memory goes back too.
            self.buf = Vec::new();
        } else if self.written > 0 {
            self.buf.drain(..self.written);
        }
        self.written = 0;
        Poll::Ready(ret)
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    /// The inner writer; bytes still buffered are lost, as with `BufWriter`.
    pub fn into_inner(self) -> W {
        self.inner
    }

    /// The bytes waiting to be written.
    pub fn buffer(&self) -> &[u8] {
        &self.buf[self.written..]
    }

    /// Bytes allocated for buffering right now (0 when idle).
    pub fn allocated(&self) -> usize {
        self.buf.capacity()
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for LazyBufWriter<W> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if buf.len() > self.spare() {
            ready!(self.flush_buf(cx))?;
        }
        if buf.len() >= self.capacity {
            Pin::new(&mut self.inner).poll_write(cx, buf)
        } else {
            self.allocate();
            self.buf.extend_from_slice(buf);
            Poll::Ready(Ok(buf.len()))
        }
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if self.inner.is_write_vectored() {
            let total_len = bufs
                .iter()
                .fold(0usize, |acc, b| acc.saturating_add(b.len()));
            if total_len > self.spare() {
                ready!(self.flush_buf(cx))?;
            }
            if total_len >= self.capacity {
                Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
            } else {
                self.allocate();
                bufs.iter().for_each(|b| self.buf.extend_from_slice(b));
                Poll::Ready(Ok(total_len))
            }
        } else {
            while bufs.first().map(|buf| buf.len()) == Some(0) {
                bufs = &bufs[1..];
            }
            if bufs.is_empty() {
                return Poll::Ready(Ok(0));
            }
            let first_len = bufs[0].len();
            if first_len > self.spare() {
                ready!(self.flush_buf(cx))?;
            }
            if first_len >= self.capacity {
                return Pin::new(&mut self.inner).poll_write(cx, &bufs[0]);
            }
            self.allocate();
            self.buf.extend_from_slice(&bufs[0]);
            let mut total_written = first_len;
            for buf in &bufs[1..] {
                if buf.len() > self.spare() {
                    break;
                }
                self.buf.extend_from_slice(buf);
                total_written += buf.len();
            }
            Poll::Ready(Ok(total_written))
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.flush_buf(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<W: AsyncRead + Unpin> AsyncRead for LazyBufWriter<W> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<W: fmt::Debug> fmt::Debug for LazyBufWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LazyBufWriter")
            .field("writer", &self.inner)
            .field(
                "buffer",
                &format_args!("{}/{}", self.buf.len(), self.capacity),
            )
            .field("written", &self.written)
            .finish()
    }
}
