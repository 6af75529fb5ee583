//! An `ss -tan`-like table, built from `/proc` and `getsockopt`: this
//! process's sockets (default) or every TCP socket on the machine (`--all`).
//!
//! ```text
//! cargo run --example sockets            # this process: one row per socket fd
//! cargo run --example sockets -- --all   # the machine: every row of /proc/net/tcp{,6}
//! ```
//!
//! So that there is something to see, the example first opens a small zoo
//! on loopback: a TCP listener with one connection waiting in its accept
//! queue, an established pair, a half-closed pair (FIN-WAIT-2 on one side,
//! CLOSE-WAIT on the other), a pair closed a moment ago (its client end is
//! now in TIME-WAIT, which has no fd, so it shows only in `--all` and in the
//! port census), and a Unix-domain listener with a connected pair.
//!
//! Each row: netid, state, Recv-Q and Send-Q (for a listener: connections
//! waiting for `accept` and the backlog; otherwise unread and unacknowledged
//! bytes), both ends, and the fd and inode. The last lines count sockets by
//! state, the way `ss -s` summarises. Compare with `ss -tanpe` and `ss -xanpe`.

use std::io::{self, Read};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};

use connlab::inspect::{self, Census, Family, FdReport, ProcRow};
use connlab::sys::addr::Addr;

mod common;

/// Everything the zoo holds open until the table is printed.
struct Zoo {
    _tcp: Vec<TcpStream>,
    _listener: TcpListener,
    _unix: Vec<UnixStream>,
    _unix_listener: UnixListener,
    dir: std::path::PathBuf,
    port: u16,
}

impl Drop for Zoo {
    fn drop(&mut self) {
        // Best effort: a leftover temp dir is harmless and not worth a panic.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Block until the peer's FIN arrives (`read` returns 0).
fn expect_eof(stream: &mut TcpStream) -> io::Result<()> {
    let mut byte = [0u8; 1];
    match stream.read(&mut byte)? {
        0 => Ok(()),
        n => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("expected EOF, read {n} byte(s)"),
        )),
    }
}

fn open_zoo() -> io::Result<Zoo> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let connect_and_accept = || -> io::Result<(TcpStream, TcpStream)> {
        let client = TcpStream::connect(addr)?;
        let (server, _) = listener.accept()?;
        Ok((client, server))
    };
    let (client, server) = connect_and_accept()?;
    let (half, mut half_peer) = connect_and_accept()?;
    half.shutdown(Shutdown::Write)?;
    expect_eof(&mut half_peer)?;
    let (closing, mut closing_peer) = connect_and_accept()?;
    drop(closing);
    expect_eof(&mut closing_peer)?;
    drop(closing_peer);
    let waiting = TcpStream::connect(addr)?; // left in the accept queue

    let dir = std::env::temp_dir().join(format!("connlab-sockets-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let path = dir.join("zoo.sock");
    let unix_listener = UnixListener::bind(&path)?;
    let unix_client = UnixStream::connect(&path)?;
    let (unix_server, _) = unix_listener.accept()?;

    Ok(Zoo {
        _tcp: vec![client, server, half, half_peer, waiting],
        _listener: listener,
        _unix: vec![unix_client, unix_server],
        _unix_listener: unix_listener,
        dir,
        port: addr.port(),
    })
}

fn addr_text(addr: &Option<Addr>) -> String {
    match addr {
        Some(Addr::Unix(None)) => "*".to_string(),
        Some(a) => a.to_string(),
        None => "*:*".to_string(),
    }
}

fn q(n: Option<usize>) -> String {
    n.map_or("-".to_string(), |n| n.to_string())
}

fn print_process_row(r: &FdReport) {
    let Some(s) = &r.socket else { return };
    let (netid, state, recv_q, send_q) = match (&s.family, &s.proc_row, s.tcp_state, s.listen_queue) {
        (Family::Unix, Some(ProcRow::Unix(row)), _, _) => {
            ("u_str", row.state_name().to_string(), q(s.unread), q(s.unacked))
        }
        (Family::Unix, _, _, _) => ("u_str", "?".to_string(), q(s.unread), q(s.unacked)),
        (_, _, Some(st), Some(lq)) => ("tcp", st.to_string(), lq.pending.to_string(), lq.backlog.to_string()),
        (_, _, Some(st), None) => ("tcp", st.to_string(), q(s.unread), q(s.unacked)),
        _ => ("?", "?".to_string(), q(s.unread), q(s.unacked)),
    };
    println!(
        "{netid:<6} {state:<11} {recv_q:>6} {send_q:>6}  {:<40} {:<40} {:>4} {:>9}",
        addr_text(&s.local),
        addr_text(&s.peer),
        r.fd,
        s.inode
    );
}

fn this_process() -> io::Result<()> {
    let zoo = open_zoo()?;
    let table = inspect::process_fds()?;
    println!(
        "{:<6} {:<11} {:>6} {:>6}  {:<40} {:<40} {:>4} {:>9}",
        "Netid", "State", "Recv-Q", "Send-Q", "Local", "Peer", "fd", "inode"
    );
    let mut tcp_rows = Vec::new();
    let mut unix = 0;
    for report in &table.rows {
        print_process_row(report);
        match report.socket.as_ref().and_then(|s| s.proc_row.as_ref()) {
            Some(ProcRow::Tcp(row)) => tcp_rows.push(row.clone()),
            Some(ProcRow::Unix(_)) => unix += 1,
            None => {}
        }
    }
    println!();
    println!(
        "this process, sockets with an fd: {} + {unix} unix",
        Census::from_rows(&tcp_rows, None)
    );
    println!(
        "the machine, sockets on port {} (fd or not): {}",
        zoo.port,
        inspect::tcp_census(Some(zoo.port))?
    );
    println!("(two sockets there have no fd: the TIME-WAIT end, which we closed and only the kernel");
    println!(" still holds, and the server end of the connection waiting in the accept queue)");
    if table.skipped > 0 {
        println!("({} fds vanished while the table was read)", table.skipped);
    }
    println!("{}", inspect::fd_usage()?);
    Ok(())
}

fn whole_machine() -> io::Result<()> {
    let _zoo = open_zoo()?;
    let table = inspect::tcp_table()?;
    println!(
        "{:<11} {:>6} {:>6}  {:<40} {:<40} {:>6} {:>9}",
        "State", "Recv-Q", "Send-Q", "Local", "Peer", "uid", "inode"
    );
    for row in &table.rows {
        println!(
            "{:<11} {:>6} {:>6}  {:<40} {:<40} {:>6} {:>9}",
            row.state.ss_name(),
            row.rx_queue,
            row.tx_queue,
            row.local.to_string(),
            row.remote.to_string(),
            row.uid,
            row.inode
        );
    }
    println!();
    let mut census = Census::from_rows(&table.rows, None);
    census.skipped = table.skipped;
    println!("{census}");
    println!("(a LISTEN row's Send-Q is the backlog in ss; /proc/net/tcp does not carry it, so it reads 0 here)");
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("sockets.rs"));
    let all = args.flag("--all", "every TCP socket on the machine, not only this process's");
    args.finish();
    common::exit("sockets", if all { whole_machine() } else { this_process() })
}
