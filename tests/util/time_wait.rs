//! A loopback server that lets the client close first.
//!
//! TIME_WAIT is kept by whichever end closes first (the active closer), so
//! to count the client's TIME_WAIT sockets the server must not close until
//! the client has. This one answers every 4-byte request with 4 bytes and
//! closes a connection only after reading its EOF, on a thread of its own
//! (blocking `std::net`: the reactor is not what these tests are about).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;

/// What the server answers to each request.
pub const REPLY: &[u8; 4] = b"pong";

pub struct ClientClosesFirst {
    pub addr: SocketAddr,
    /// Connections the server has closed so far.
    closed: Arc<AtomicUsize>,
}

impl ClientClosesFirst {
    /// Bind `127.0.0.1:0` and serve until the process exits.
    pub fn start() -> io::Result<ClientClosesFirst> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let addr = listener.local_addr()?;
        let closed = Arc::new(AtomicUsize::new(0));
        let count = closed.clone();
        thread::spawn(move || {
            for mut stream in listener.incoming().flatten() {
                let mut request = [0u8; 4];
                while stream.read_exact(&mut request).is_ok() && stream.write_all(REPLY).is_ok() {}
                // The client's EOF (or an error) ended the loop: our close
                // comes second, into the client's FIN_WAIT_2.
                drop(stream);
                count.fetch_add(1, Ordering::Relaxed);
            }
        });
        Ok(ClientClosesFirst { addr, closed })
    }

    /// Connect and make one request-reply exchange.
    pub fn connect(&self) -> io::Result<TcpStream> {
        let mut stream = TcpStream::connect(self.addr)?;
        stream.set_nodelay(true)?;
        exchange(&mut stream)?;
        Ok(stream)
    }

    /// Connections the server has closed so far (each after the client did).
    pub fn closes(&self) -> usize {
        self.closed.load(Ordering::Relaxed)
    }
}

/// One request and its reply on an open connection.
pub fn exchange(stream: &mut TcpStream) -> io::Result<()> {
    stream.write_all(b"ping")?;
    let mut reply = [0u8; 4];
    stream.read_exact(&mut reply)?;
    Ok(())
}
