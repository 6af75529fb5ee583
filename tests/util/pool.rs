//! A pool manager over plain loopback TCP, and the tiny server it talks to,
//! so the pool's policy can be tested on real sockets without PostgreSQL.
//!
//! The protocol is one byte each way. The server speaks first, a `H`
//! (hello) on accept, which the client waits for before its connect counts
//! as done: like PostgreSQL's startup, a connect is more than the TCP
//! handshake, so a server that accepts and says nothing ([`SilentServer`])
//! can hang it. Then `P` (ping) is answered `p` and `R` (reset) `r`. The
//! client side keeps two flags that stand in for a Postgres session's
//! state: `dirty` ("inside a transaction") and `broken` ("protocol out of
//! sync").

use std::cell::{Cell, RefCell};
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;

use connlab::net::{TcpListener, TcpStream};
use connlab::pool::{Health, Manager};
use connlab::reactor::{self, JoinHandle};

pub const HELLO: u8 = b'H';
pub const PING: u8 = b'P';
pub const PONG: u8 = b'p';
pub const RESET: u8 = b'R';
pub const RESET_DONE: u8 = b'r';

/// The server: an accept loop task plus one task per connection. All run
/// on the test's reactor.
pub struct TestServer {
    pub addr: SocketAddr,
    handlers: Rc<RefCell<Vec<JoinHandle<()>>>>,
    /// Resets (`R`) answered so far.
    pub resets: Rc<Cell<u64>>,
    /// While set, requests are read and never answered (a backend that
    /// hangs mid-session).
    pub mute: Rc<Cell<bool>>,
}

impl TestServer {
    pub fn start() -> io::Result<TestServer> {
        TestServer::start_on("127.0.0.1:0".parse().expect("a literal address"))
    }

    pub fn start_on(addr: SocketAddr) -> io::Result<TestServer> {
        let listener = TcpListener::bind(addr, 128)?;
        let addr = listener.local_addr()?;
        let handlers: Rc<RefCell<Vec<JoinHandle<()>>>> = Rc::default();
        let resets: Rc<Cell<u64>> = Rc::default();
        let mute: Rc<Cell<bool>> = Rc::default();
        {
            let (handlers, resets, mute) = (handlers.clone(), resets.clone(), mute.clone());
            // Detached: the acceptor lives as long as the test's reactor.
            drop(reactor::spawn(async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (resets, mute) = (resets.clone(), mute.clone());
                    handlers.borrow_mut().push(reactor::spawn(serve(stream, resets, mute)));
                }
            }));
        }
        Ok(TestServer {
            addr,
            handlers,
            resets,
            mute,
        })
    }

    /// Close every server-side connection (the client sees EOF), like
    /// `pg_terminate_backend` on all of them.
    pub fn kill_all(&self) {
        for handler in self.handlers.borrow_mut().drain(..) {
            handler.abort();
        }
    }
}

async fn serve(stream: TcpStream, resets: Rc<Cell<u64>>, mute: Rc<Cell<bool>>) {
    if stream.write_all(&[HELLO]).await.is_err() {
        return;
    }
    let mut byte = [0u8; 1];
    while let Ok(1) = stream.read(&mut byte).await {
        if mute.get() {
            continue;
        }
        let answer = match byte[0] {
            PING => PONG,
            RESET => {
                resets.set(resets.get() + 1);
                RESET_DONE
            }
            _ => return,
        };
        if stream.write_all(&[answer]).await.is_err() {
            return;
        }
    }
}

/// The client side of one connection.
pub struct TestConn {
    pub stream: TcpStream,
    /// Stands in for "inside a transaction": the pool must reset it.
    pub dirty: bool,
    /// Stands in for "protocol out of sync": the pool must discard it.
    pub broken: bool,
}

impl TestConn {
    async fn ask(&mut self, request: u8, expect: u8) -> io::Result<()> {
        self.stream.write_all(&[request]).await?;
        expect_byte(&self.stream, expect).await
    }

    pub async fn ping(&mut self) -> io::Result<()> {
        self.ask(PING, PONG).await
    }
}

/// Read one byte and check it is `expect`.
async fn expect_byte(stream: &TcpStream, expect: u8) -> io::Result<()> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte).await? {
        1 if byte[0] == expect => Ok(()),
        0 => Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "test server closed the connection",
        )),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unexpected answer from the test server",
        )),
    }
}

/// The manager: counts what the pool asked of it.
pub struct TcpManager {
    /// Where new connections go; [`TcpManager::point_at`] moves it.
    addr: Cell<SocketAddr>,
    pub connects: Cell<u64>,
    pub validations: Cell<u64>,
}

impl TcpManager {
    pub fn new(addr: SocketAddr) -> TcpManager {
        TcpManager {
            addr: Cell::new(addr),
            connects: Cell::new(0),
            validations: Cell::new(0),
        }
    }
}

impl TcpManager {
    /// Send the connections opened from now on to `addr`.
    pub fn point_at(&self, addr: SocketAddr) {
        self.addr.set(addr);
    }
}

impl Manager for TcpManager {
    type Connection = TestConn;
    type Error = io::Error;

    async fn connect(&self) -> io::Result<TestConn> {
        self.connects.set(self.connects.get() + 1);
        let stream = TcpStream::connect(self.addr.get()).await?;
        expect_byte(&stream, HELLO).await?;
        Ok(TestConn {
            stream,
            dirty: false,
            broken: false,
        })
    }

    async fn validate(&self, conn: &mut TestConn) -> io::Result<()> {
        self.validations.set(self.validations.get() + 1);
        conn.ping().await
    }

    fn check(&self, conn: &mut TestConn) -> Health {
        if conn.broken {
            Health::Broken
        } else if conn.dirty {
            Health::NeedsReset
        } else {
            Health::Clean
        }
    }

    async fn reset(&self, conn: &mut TestConn) -> io::Result<()> {
        conn.ask(RESET, RESET_DONE).await?;
        conn.dirty = false;
        Ok(())
    }
}

/// A server that accepts every connection and never sends a byte: a
/// PostgreSQL whose backend hangs before its first message, a process
/// stopped with `SIGSTOP` after the kernel finished the handshake. The
/// connections stay open while the test's reactor runs.
pub struct SilentServer {
    pub addr: SocketAddr,
    /// Connections accepted so far.
    pub accepted: Rc<Cell<u64>>,
}

impl SilentServer {
    pub fn start() -> io::Result<SilentServer> {
        let listener = TcpListener::bind("127.0.0.1:0".parse().expect("a literal address"), 128)?;
        let addr = listener.local_addr()?;
        let accepted: Rc<Cell<u64>> = Rc::default();
        let count = accepted.clone();
        // Detached, like `TestServer`'s acceptor; the held streams close
        // when the reactor drops the task.
        drop(reactor::spawn(async move {
            let mut held = Vec::new();
            while let Ok((stream, _)) = listener.accept().await {
                count.set(count.get() + 1);
                held.push(stream);
            }
        }));
        Ok(SilentServer { addr, accepted })
    }
}
