//! pingora's stream buffers (`PORTCULLIS PATCH` pingora-core 4 and 7 in
//! `vendor/pingora-core/src/protocols/l4/`): a connection's read and write
//! buffers hold memory only while they hold bytes. They must make exactly
//! the decisions tokio's `BufReader`/`BufWriter` make — the same bytes to
//! each caller, the same reads and writes reaching the socket — so each is
//! run beside tokio's over scripted sources and sinks and compared call by
//! call. (They live here because the vendored crate's own tests need
//! upstream's dev-dependencies; Portcullis' suite runs these.)

mod writer {
    use std::io::{self, IoSlice};
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use pingora::protocols::l4::lazy_buf_writer::LazyBufWriter;
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncWrite;
    use tokio::io::{AsyncWriteExt, BufWriter};

    /// Records every write it is given; accepts at most `max` bytes a call,
    /// and optionally reports vectored support.
    #[derive(Clone)]
    struct Recorder {
        writes: Arc<Mutex<Vec<Vec<u8>>>>,
        max: usize,
        vectored: bool,
    }

    impl Recorder {
        fn new(max: usize, vectored: bool) -> Self {
            Recorder {
                writes: Arc::default(),
                max,
                vectored,
            }
        }
        fn writes(&self) -> Vec<Vec<u8>> {
            self.writes.lock().unwrap().clone()
        }
    }

    impl AsyncWrite for Recorder {
        fn poll_write(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &[u8],
        ) -> Poll<io::Result<usize>> {
            let n = buf.len().min(self.max);
            self.writes.lock().unwrap().push(buf[..n].to_vec());
            Poll::Ready(Ok(n))
        }
        fn poll_write_vectored(
            self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            bufs: &[IoSlice<'_>],
        ) -> Poll<io::Result<usize>> {
            let mut all = Vec::new();
            for b in bufs {
                all.extend_from_slice(b);
            }
            all.truncate(self.max);
            let n = all.len();
            self.writes.lock().unwrap().push(all);
            Poll::Ready(Ok(n))
        }
        fn is_write_vectored(&self) -> bool {
            self.vectored
        }
        fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
        fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
            Poll::Ready(Ok(()))
        }
    }

    /// One step of a writer's life.
    #[derive(Clone, Debug)]
    enum Op {
        Write(usize),
        Vectored(Vec<usize>),
        Flush,
    }

    fn bytes(n: usize, seed: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + seed) as u8).collect()
    }

    /// Runs `ops` through a tokio `BufWriter` and a `LazyBufWriter` of the
    /// same capacity over identical recorders, and compares what each call
    /// returned and every write the inner writer saw.
    async fn same_as_bufwriter(capacity: usize, max: usize, vectored: bool, ops: &[Op]) {
        let a = Recorder::new(max, vectored);
        let b = Recorder::new(max, vectored);
        let mut tokio_w = BufWriter::with_capacity(capacity, a.clone());
        let mut lazy_w = LazyBufWriter::with_capacity(capacity, b.clone());
        for (i, op) in ops.iter().enumerate() {
            match op {
                Op::Write(n) => {
                    let data = bytes(*n, i);
                    let x = tokio_w.write(&data).await.unwrap();
                    let y = lazy_w.write(&data).await.unwrap();
                    assert_eq!(x, y, "write {i} of {ops:?}");
                }
                Op::Vectored(lens) => {
                    let data: Vec<Vec<u8>> = lens
                        .iter()
                        .enumerate()
                        .map(|(j, n)| bytes(*n, i + j))
                        .collect();
                    let slices: Vec<IoSlice<'_>> = data.iter().map(|d| IoSlice::new(d)).collect();
                    let x = tokio_w.write_vectored(&slices).await.unwrap();
                    let y = lazy_w.write_vectored(&slices).await.unwrap();
                    assert_eq!(x, y, "vectored write {i} of {ops:?}");
                }
                Op::Flush => {
                    tokio_w.flush().await.unwrap();
                    lazy_w.flush().await.unwrap();
                    assert_eq!(lazy_w.allocated(), 0, "a flushed writer holds no memory");
                }
            }
            assert_eq!(a.writes(), b.writes(), "after op {i} of {ops:?}");
            assert_eq!(tokio_w.buffer(), lazy_w.buffer(), "after op {i} of {ops:?}");
        }
    }

    #[tokio::test]
    async fn writes_exactly_what_bufwriter_writes() {
        use Op::*;
        let scripts: Vec<Vec<Op>> = vec![
            vec![Write(10), Write(20), Flush],
            vec![Write(100), Write(100), Write(50), Flush, Write(3), Flush],
            vec![Write(300), Flush],
            vec![Write(255), Write(1), Write(1), Flush],
            vec![Vectored(vec![10, 0, 20]), Vectored(vec![200, 100]), Flush],
            vec![
                Vectored(vec![0, 0]),
                Write(5),
                Vectored(vec![250, 10]),
                Flush,
            ],
            vec![Write(0), Flush, Flush],
        ];
        for ops in &scripts {
            for capacity in [0, 1, 64, 256, 1024] {
                for max in [1, 7, usize::MAX] {
                    for vectored in [false, true] {
                        same_as_bufwriter(capacity, max, vectored, ops).await;
                    }
                }
            }
        }
    }

    #[tokio::test]
    async fn memory_is_held_only_while_bytes_wait() {
        let rec = Recorder::new(usize::MAX, false);
        let mut w = LazyBufWriter::with_capacity(16 * 1024, rec.clone());
        assert_eq!(w.allocated(), 0, "a new writer allocates nothing");
        w.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
        assert!(
            w.allocated() >= 16 * 1024,
            "buffered bytes live in one buffer"
        );
        assert!(rec.writes().is_empty(), "small writes wait for the flush");
        w.flush().await.unwrap();
        assert_eq!(w.allocated(), 0, "the flush gives the buffer back");
        assert_eq!(rec.writes(), vec![b"HTTP/1.1 200 OK\r\n\r\n".to_vec()]);
    }
}

mod reader {
    use std::io;
    use std::pin::Pin;
    use std::task::{Context, Poll};

    use pingora::protocols::l4::lazy_buf_reader::LazyBufReader;
    use tokio::io::{AsyncRead, ReadBuf};
    use tokio::io::{AsyncReadExt, BufReader};

    /// Gives its data out in the given chunk sizes, one chunk per read (cut
    /// to the room the caller has), then end of file.
    struct Chunks {
        data: Vec<u8>,
        chunks: Vec<usize>,
        reads: usize,
    }

    impl Chunks {
        fn new(chunks: &[usize]) -> Self {
            let total = chunks.iter().sum::<usize>();
            Chunks {
                data: (0..total).map(|i| (i * 7 + 3) as u8).collect(),
                chunks: chunks.iter().rev().copied().collect(),
                reads: 0,
            }
        }
    }

    impl AsyncRead for Chunks {
        fn poll_read(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
            buf: &mut ReadBuf<'_>,
        ) -> Poll<io::Result<()>> {
            self.reads += 1;
            if let Some(next) = self.chunks.pop() {
                let n = next.min(buf.remaining());
                if n < next {
                    self.chunks.push(next - n);
                }
                let taken: Vec<u8> = self.data.drain(..n).collect();
                buf.put_slice(&taken);
            }
            Poll::Ready(Ok(()))
        }
    }

    /// Reads everything through a tokio `BufReader` and a `LazyBufReader`
    /// of the same capacity with the same sequence of caller buffer sizes,
    /// and compares every read's bytes and the reads reaching the source.
    async fn same_as_bufreader(capacity: usize, chunks: &[usize], asks: &[usize]) {
        let mut a = BufReader::with_capacity(capacity, Chunks::new(chunks));
        let mut b = LazyBufReader::with_capacity(capacity, Chunks::new(chunks));
        // Bounded above the longest script (4,097 bytes read one at a time).
        for (i, ask) in asks.iter().cycle().enumerate().take(10_000) {
            let mut x = vec![0u8; *ask];
            let mut y = vec![0u8; *ask];
            let nx = a.read(&mut x).await.unwrap();
            let ny = b.read(&mut y).await.unwrap();
            assert_eq!(
                (nx, &x[..nx]),
                (ny, &y[..ny]),
                "read {i}, capacity {capacity}, chunks {chunks:?}, asks {asks:?}"
            );
            assert_eq!(
                a.get_ref().reads,
                b.get_ref().reads,
                "source reads after read {i}"
            );
            if nx == 0 && *ask > 0 {
                break;
            }
        }
        assert_eq!(a.get_ref().data.len(), 0, "the source was read to its end");
        assert_eq!(b.allocated(), 0, "a drained reader holds no memory");
    }

    #[tokio::test]
    async fn reads_exactly_what_bufreader_reads() {
        let chunk_sets: &[&[usize]] = &[&[5], &[100, 3, 50], &[4096, 1], &[1; 20], &[300, 300]];
        let ask_sets: &[&[usize]] = &[&[1], &[7], &[64], &[256], &[5000], &[3, 300, 17]];
        for capacity in [1, 16, 256, 1024] {
            for chunks in chunk_sets {
                for asks in ask_sets {
                    same_as_bufreader(capacity, chunks, asks).await;
                }
            }
        }
    }

    #[tokio::test]
    async fn memory_is_held_only_while_unread_bytes_wait() {
        let mut r = LazyBufReader::with_capacity(64 * 1024, Chunks::new(&[100]));
        assert_eq!(r.allocated(), 0, "a new reader allocates nothing");
        let mut small = [0u8; 30];
        assert_eq!(r.read(&mut small).await.unwrap(), 30);
        assert_eq!(r.allocated(), 70, "only the unread bytes are kept");
        let mut rest = [0u8; 100];
        assert_eq!(r.read(&mut rest).await.unwrap(), 70);
        assert_eq!(r.allocated(), 0, "taking them gives the memory back");
    }
}
