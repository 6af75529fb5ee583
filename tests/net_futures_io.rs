//! Our streams through the `futures-io` traits only, on every backend and
//! mode: code generic over `AsyncRead + AsyncWrite` (as a codec or a
//! runtime-neutral crate is written) echoes a megabyte over TCP and over a
//! Unix socket, and `poll_close` is a half-close the peer reads as EOF.

mod util;

use std::future::poll_fn;
use std::pin::Pin;
use std::time::Duration;

use connlab::net::{Stream, TcpListener, TcpStream, UnixListener, UnixStream};
use connlab::reactor;
use futures_io::{AsyncRead, AsyncWrite};

/// `write_all` then `close`, written against the traits alone.
async fn send_and_close<W: AsyncWrite + Unpin>(mut w: W, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        let n = poll_fn(|cx| Pin::new(&mut w).poll_write(cx, data)).await?;
        data = &data[n..];
    }
    poll_fn(|cx| Pin::new(&mut w).poll_flush(cx)).await?;
    poll_fn(|cx| Pin::new(&mut w).poll_close(cx)).await
}

/// Read to EOF, against the trait alone.
async fn read_to_end<R: AsyncRead + Unpin>(mut r: R) -> std::io::Result<Vec<u8>> {
    let (mut out, mut buf) = (Vec::new(), [0u8; 4096]);
    loop {
        match poll_fn(|cx| Pin::new(&mut r).poll_read(cx, &mut buf)).await? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// The server echoes through `&Stream`; the client sends all, half-closes
/// (`poll_close`) and then reads the echo, all through the traits.
async fn echo_over(server: Stream, client: Stream, payload: Vec<u8>) -> Vec<u8> {
    let echo = reactor::spawn(async move {
        let got = read_to_end(&server).await.unwrap();
        send_and_close(&server, &got).await.unwrap();
    });
    send_and_close(&client, &payload).await.unwrap();
    let back = read_to_end(&client).await.unwrap();
    echo.await;
    back
}

fn payload() -> Vec<u8> {
    (0..1 << 20).map(|i: u32| (i * 7 % 251) as u8).collect()
}

#[test]
fn tcp_streams_echo_through_the_futures_io_traits() {
    for config in util::configs() {
        let back = config
            .block_on(async {
                let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap(), 8).unwrap();
                let addr = listener.local_addr().unwrap();
                let client = TcpStream::connect(addr).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                echo_over(Stream::Tcp(server), Stream::Tcp(client), payload()).await
            })
            .unwrap();
        assert!(back == payload(), "{config:?}: the echo differs");
    }
}

/// Run `body` on a connected Unix socket pair (server side, client side)
/// under every backend and mode, and check it returns the payload.
fn on_unix_pairs<F, Fut>(tag: &str, body: F)
where
    F: Fn(Stream, Stream) -> Fut,
    Fut: std::future::Future<Output = Vec<u8>>,
{
    for config in util::configs() {
        let name = format!("connlab-futures-io-{tag}-{}-{:?}", std::process::id(), config.backend);
        let path = std::env::temp_dir().join(name);
        let _ = std::fs::remove_file(&path);
        let back = config
            .block_on(async {
                let listener = UnixListener::bind(&path, 8).unwrap();
                let client = UnixStream::connect(&path).await.unwrap();
                let (server, _) = listener.accept().await.unwrap();
                // A stranded waiter is a hang: make it a failure instead.
                reactor::timeout(
                    Duration::from_secs(20),
                    body(Stream::Unix(server), Stream::Unix(client)),
                )
                .await
                .unwrap_or_else(|_| panic!("{config:?}: hung for 20 s"))
            })
            .unwrap();
        let _ = std::fs::remove_file(&path);
        assert!(back == payload(), "{config:?}: the echo differs");
    }
}

#[test]
fn unix_streams_echo_through_the_futures_io_traits() {
    on_unix_pairs("echo", |server, client| echo_over(server, client, payload()));
}

#[test]
fn owned_streams_implement_the_traits_too() {
    fn is_async_io<T: AsyncRead + AsyncWrite + Unpin>() {}
    is_async_io::<TcpStream>();
    is_async_io::<UnixStream>();
    is_async_io::<Stream>();
    is_async_io::<&TcpStream>();
    is_async_io::<&UnixStream>();
}

/// Regression test for a reactor bug this file found: in one-shot mode an
/// event disarms the whole fd but wakes only the direction that fired, so a
/// task waiting on the *other* direction of the same socket was never
/// re-armed unless the woken task waited again. Here the writer finishes
/// first and the reader waited forever (on poll and select, whose one-shot
/// is emulated; epoll got lucky when one event carried both directions).
#[test]
fn a_reader_and_a_writer_on_one_socket_both_finish_in_every_mode() {
    on_unix_pairs("rw", |server, client| async move {
        let echo = reactor::spawn(async move {
            let got = read_to_end(&server).await.unwrap();
            send_and_close(&server, &got).await.unwrap();
        });
        // The writer fills the socket buffer while the reader waits on the same fd.
        let client = std::rc::Rc::new(client);
        let writer = client.clone();
        let sending = reactor::spawn(async move { send_and_close(&*writer, &payload()).await.unwrap() });
        let back = read_to_end(&*client).await.unwrap();
        sending.await;
        echo.await;
        back
    });
}
