//! A test HTTP server on its own thread (its own reactor), and a tiny
//! blocking client that reads responses by their `Content-Length`: the
//! vocabulary of `tests/http.rs` and `tests/http_failures.rs`.

#![allow(dead_code)] // each test binary uses a different subset

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use connlab::http::{Limits, Request, Response, Server, ServerStats, Status};
use connlab::net::TcpListener;
use connlab::poller::Backend;
use connlab::reactor;

/// The test handler's routes:
/// - `/big?n=N`: N bytes of `x`;
/// - `/sleep?ms=M`: answers after M ms (a request in flight);
/// - anything else: `METHOD TARGET body=LEN served_before=K peer=ADDR`.
pub async fn handler(req: Request) -> Response {
    let target = req.head.target.clone();
    if let Some(n) = target.strip_prefix("/big?n=") {
        let n: usize = n.parse().unwrap_or(0);
        return Response::text(Status::OK, vec![b'x'; n]);
    }
    if let Some(ms) = target.strip_prefix("/sleep?ms=") {
        reactor::sleep(Duration::from_millis(ms.parse().unwrap_or(0))).await;
        return Response::text(Status::OK, "slept\n");
    }
    Response::text(
        Status::OK,
        format!(
            "{} {} body={} served_before={} peer={}",
            req.head.method,
            target,
            req.body.len(),
            req.conn.served_before,
            req.conn.peer
        ),
    )
}

/// A server running [`handler`] on its own thread.
pub struct TestServer {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    stats: Arc<Mutex<ServerStats>>,
    thread: Option<thread::JoinHandle<io::Result<ServerStats>>>,
}

impl TestServer {
    pub fn start(backend: Backend, limits: Limits) -> TestServer {
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(Mutex::new(ServerStats::default()));
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = {
            let (stop, stats) = (stop.clone(), stats.clone());
            thread::spawn(move || {
                reactor::block_on(backend, async move {
                    let listener = TcpListener::bind("127.0.0.1:0".parse().unwrap(), 1024)?;
                    tx.send(listener.local_addr()?).unwrap();
                    let server = Server::new(listener, limits);
                    let live = server.stats();
                    // The stats live on this thread (Rc); copy them out
                    // every few ms for the test thread to read.
                    reactor::spawn(async move {
                        loop {
                            *stats.lock().unwrap() = live.get();
                            reactor::sleep(Duration::from_millis(5)).await;
                        }
                    });
                    let stopped = async move {
                        while !stop.load(Ordering::Relaxed) {
                            reactor::sleep(Duration::from_millis(5)).await;
                        }
                    };
                    server.serve(handler, stopped).await
                })?
            })
        };
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("the server thread did not start");
        TestServer {
            addr,
            stop,
            stats,
            thread: Some(thread),
        }
    }

    /// The server's counters as of a few ms ago.
    pub fn stats(&self) -> ServerStats {
        *self.stats.lock().unwrap()
    }

    /// Wait (up to 10 s) until `pred` holds for the counters.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&ServerStats) -> bool) -> ServerStats {
        for _ in 0..2000 {
            let s = self.stats();
            if pred(&s) {
                return s;
            }
            thread::sleep(Duration::from_millis(5));
        }
        panic!("timed out waiting for {what}; stats: {:?}", self.stats());
    }

    /// Stop accepting, let in-flight requests finish, return the final counters.
    pub fn stop(mut self) -> ServerStats {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().unwrap().join().unwrap().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A response as the client read it.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

pub fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    BufReader::new(stream)
}

pub fn send(conn: &mut BufReader<TcpStream>, bytes: &[u8]) {
    conn.get_mut().write_all(bytes).unwrap();
}

pub fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n").into_bytes()
}

/// Read one response, framed by its Content-Length.
pub fn read_reply(conn: &mut BufReader<TcpStream>) -> io::Result<Reply> {
    let mut line = String::new();
    if conn.read_line(&mut line)? == 0 {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "EOF before a status line"));
    }
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        conn.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(':').unwrap_or((trimmed, ""));
        headers.push((name.to_string(), value.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no Content-Length"))?;
    let mut body = vec![0; len];
    conn.read_exact(&mut body)?;
    Ok(Reply { status, headers, body })
}

/// After the server said it would close, the next read is EOF.
pub fn assert_closed(conn: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    let n = conn.read_to_end(&mut rest).expect("reading to EOF");
    assert_eq!(n, 0, "expected EOF, got {:?}", String::from_utf8_lossy(&rest));
}

/// Every backend the reactor runs on here.
pub fn backends() -> [Backend; 3] {
    Backend::ALL
}

/// The `click` example, run as a child process (as a user runs it).
pub struct ClickProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    /// Everything it printed before the URL line, and a reader for the rest.
    pub stdout: BufReader<std::process::ChildStdout>,
}

/// Where cargo put the `click` example: beside this test binary's `deps/`.
/// `cargo test` builds examples; a lone `cargo test --test X` does not, so
/// then build it first with `cargo build --example click`.
pub fn click_binary() -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let path = profile_dir.join("examples").join("click");
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --example click` (a full `cargo test` builds it)",
        path.display()
    );
    path
}

impl ClickProcess {
    /// Start `click --addr 127.0.0.1:0 ARGS...` and wait for its URL.
    pub fn start(args: &[&str]) -> ClickProcess {
        use std::process::{Command, Stdio};
        let mut child = Command::new(click_binary())
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawning the click example");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Built before the URL is known, so that a panic below still
        // reaps the child (in `Drop`).
        let mut click = ClickProcess {
            child,
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            stdout,
        };
        let mut line = String::new();
        loop {
            line.clear();
            if click.stdout.read_line(&mut line).unwrap() == 0 {
                panic!("click exited before printing its URL");
            }
            if let Some(rest) = line.split("http://").nth(1) {
                click.addr = rest.split('/').next().unwrap().parse().unwrap();
                return click;
            }
        }
    }

    /// SIGINT (Ctrl-C), then wait for the exit status and the rest of stdout.
    pub fn interrupt(mut self) -> (std::process::ExitStatus, String) {
        // SAFETY: kill(2) with a pid we own and a valid signal number; no memory is involved.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        (self.child.wait().unwrap(), rest)
    }
}

impl Drop for ClickProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            // SAFETY: as in `interrupt`: a signal to our own child.
            unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGINT) };
            let _ = self.child.wait();
        }
    }
}
