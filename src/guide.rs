//! A guided tour, bottom to top, in code that runs.
//!
//! Every block on this page is a doc-test: `cargo test --doc` compiles and
//! runs it against the real kernel (and, in the last two chapters, a real
//! PostgreSQL that the test starts itself). So the guide cannot drift from
//! the code it teaches. Each chapter names the story's question and the
//! module to read next.
//!
//! # 1. Which socket is ready? (Q26: [`poller`](crate::poller))
//!
//! Register an fd under a token, make it readable, and ask the kernel. The
//! same five lines run on `select`, `poll` and `epoll`; only the cost of the
//! wait differs (see `docs/wait_scaling.md`).
//!
//! ```
//! use std::io::Write;
//! use std::os::fd::AsRawFd;
//! use std::time::Duration;
//! use connlab::poller::{Backend, Events, Interest, Mode, Token};
//!
//! for backend in Backend::ALL {
//!     let (ours, mut theirs) = std::os::unix::net::UnixStream::pair()?;
//!     let mut poller = backend.open()?;
//!     poller.add(ours.as_raw_fd(), Token(7), Interest::READABLE, Mode::Level)?;
//!
//!     let mut events = Events::with_capacity(8);
//!     poller.wait(&mut events, Some(Duration::ZERO))?;
//!     assert!(events.is_empty(), "{backend}: nothing written yet, nothing ready");
//!
//!     theirs.write_all(b"hello")?;
//!     poller.wait(&mut events, Some(Duration::from_secs(1)))?;
//!     let event = events.iter().next().expect("one event");
//!     assert_eq!(event.token, Token(7));
//!     assert!(event.readable);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Edge-triggered readiness is epoll's alone, and the others say so rather
//! than fake it:
//!
//! ```
//! use connlab::poller::{Backend, Mode};
//! let select = Backend::Select.open()?;
//! assert!(!select.supports(Mode::Edge));
//! assert!(Backend::Epoll.open()?.supports(Mode::Edge));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # 2. Who runs the code when it is ready? (Q8: [`reactor`](crate::reactor), [`net`](crate::net))
//!
//! A listener, a client and an echo, as `async fn`s on connlab's own event
//! loop. `connect` returns `EINPROGRESS` inside; the reactor waits for the
//! socket to become writable and reads `SO_ERROR` (`docs/sockets.md`).
//!
//! ```
//! use connlab::net::{TcpListener, TcpStream};
//! use connlab::poller::Backend;
//! use connlab::reactor;
//!
//! let echoed = reactor::block_on(Backend::Epoll, async {
//!     let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap(), 16)?;
//!     let addr = listener.local_addr()?;
//!     let server = reactor::spawn(async move {
//!         let (conn, _peer) = listener.accept().await?;
//!         let mut buf = [0u8; 64];
//!         let n = conn.read(&mut buf).await?;
//!         conn.write_all(&buf[..n]).await
//!     });
//!     let client = TcpStream::connect(addr).await?;
//!     client.write_all(b"ping").await?;
//!     let mut reply = [0u8; 4];
//!     client.read_exact(&mut reply).await?;
//!     server.await?;
//!     Ok::<_, std::io::Error>(reply)
//! })??;
//! assert_eq!(&echoed, b"ping");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! A deadline is a timer in the same loop, not the kernel's two-minute SYN
//! retry:
//!
//! ```
//! use std::time::{Duration, Instant};
//! use connlab::{poller::Backend, reactor};
//!
//! let started = Instant::now();
//! let outcome = reactor::block_on(Backend::Poll, reactor::timeout(
//!     Duration::from_millis(20),
//!     reactor::sleep(Duration::from_secs(10)),
//! ))?;
//! assert!(outcome.is_err(), "the timer won");
//! assert!(started.elapsed() < Duration::from_secs(5));
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # 3. What is behind the integer? (Q10, Q11: [`inspect`](crate::inspect))
//!
//! From an fd to its `/proc` link, inode, 4-tuple and TCP state, read from
//! the kernel and cross-checked with `/proc/net/tcp`.
//!
//! ```
//! use std::net::{TcpListener, TcpStream};
//! use std::os::fd::AsRawFd;
//! use connlab::inspect::{self, TcpState};
//!
//! let listener = TcpListener::bind("127.0.0.1:0")?;
//! let client = TcpStream::connect(listener.local_addr()?)?;
//! let report = inspect::fd(client.as_raw_fd())?;
//! assert!(report.link.starts_with("socket:["));
//! let socket = report.socket.expect("a socket");
//! assert_eq!(socket.tcp_state, Some(TcpState::Established));
//! let (local, peer) = socket.four_tuple().expect("connected");
//! assert_eq!(peer, listener.local_addr()?);
//! assert_eq!(local, client.local_addr()?);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # 4. What does a query become? (Q17, Q18: [`pg`](crate::pg))
//!
//! The wire protocol needs no socket: encoders append bytes, the decoder
//! reads them back, and "need more bytes" is an answer, not an error.
//!
//! ```
//! use connlab::pg::protocol::{frontend, Decoder};
//!
//! let mut out = Vec::new();
//! frontend::parse(&mut out, "", "SELECT name FROM users WHERE id = $1", &[])?;
//! frontend::sync(&mut out);
//! assert_eq!(out[0], b'P');
//! assert_eq!(&out[out.len() - 5..], &[b'S', 0, 0, 0, 4]);
//!
//! // The server's "ReadyForQuery, idle": tag 'Z', length 5, status 'I'.
//! let ready = [b'Z', 0, 0, 0, 5, b'I'];
//! let decoder = Decoder::new();
//! assert!(decoder.decode(&ready[..3])?.is_none(), "half a message: need more bytes");
//! let (msg, used) = decoder.decode(&ready)?.expect("a whole message");
//! assert_eq!(used, ready.len());
//! assert_eq!(msg.to_string(), "ReadyForQuery I");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! On a real server (the throwaway cluster the tests share: initdb in a
//! temp dir, a free port, SCRAM-SHA-256):
//!
//! ```
//! use connlab::pg::Connection;
//! use connlab::testbed::Cluster;
//! use connlab::{poller::Backend, reactor};
//!
//! let cluster = Cluster::shared()?;
//! let name = reactor::block_on(Backend::Epoll, async {
//!     let mut conn = Connection::connect_url(&cluster.url()).await?;
//!     let rows = conn.query("SELECT name FROM users WHERE id = $1", &[&42i32]).await?;
//!     let name: String = rows.get(0).expect("one row").get(0)?;
//!     conn.close().await?;
//!     Ok::<_, connlab::pg::connection::Error>(name)
//! })??;
//! assert_eq!(name, "Alice");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # 5. What does `pool.acquire()` do? (Q9, Q20: [`pool`](crate::pool))
//!
//! The first acquire opens a connection; releasing it (dropping the handle)
//! puts it back; the next acquire pops the same one, with no syscall.
//!
//! ```
//! use connlab::testbed::Cluster;
//! use connlab::pool::{pg::PgManager, Config, Pool};
//! use connlab::{poller::Backend, reactor};
//!
//! let cluster = Cluster::shared()?;
//! reactor::block_on(Backend::Poll, async {
//!     let config = Config { min_size: 1, ..Config::default() };
//!     let pool = Pool::new(PgManager::from_url(&cluster.url())?, config);
//!     let first = pool.acquire().await?;
//!     let pid = first.backend_pid();
//!     drop(first);
//!     let again = pool.acquire().await?;
//!     assert_eq!(again.backend_pid(), pid, "the same backend, reused");
//!     assert_eq!(pool.stats().created, 1, "one connection served both acquires");
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })??;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Next: `cargo run --release --example journey` runs all of this in one
//! pass and prints what each step cost; `docs/README.md` is the reading
//! order.
