//! What is behind the integer? The story's Q10-Q11 for a live connection.
//!
//! ```text
//! cargo run --example what_is_fd
//! ```
//!
//! Opens a listener on 127.0.0.1 (a free port), connects to it, accepts,
//! sends a few bytes each way, and prints the stack behind the client's fd,
//! top to bottom: the Rust object, the fd number, the `/proc/self/fd` link,
//! the inode, family and type, both ends, the TCP state (from `TCP_INFO` and
//! from `/proc/net/tcp`, which agree), `TCP_INFO`'s RTT, cwnd and byte
//! counters, and the buffers. Then the listener and the accepted socket more
//! briefly, showing that all three share one port and differ by 4-tuple
//! (Q16), and finally the `ss` command to check it all. The program waits
//! for Enter before exiting so you can run that command in another terminal
//! (pass `--no-wait` to skip the pause).

use std::io::{self, BufRead, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use connlab::inspect;

mod common;

fn run(no_wait: bool) -> io::Result<()> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let mut client = TcpStream::connect(listener.local_addr()?)?;
    let (mut accepted, _) = listener.accept()?;
    client.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    accepted.read_exact(&mut buf)?;
    accepted.write_all(b"pong")?;
    client.read_exact(&mut buf)?;

    let report = inspect::fd(client.as_raw_fd())?;
    println!("== the client's connection, top to bottom ==");
    println!("Rust object   std::net::TcpStream (owns the fd; its Drop calls close(2))");
    print!("{report}");

    println!();
    println!("== one port, three sockets (Q16) ==");
    for (name, fd) in [
        ("listener", listener.as_raw_fd()),
        ("accepted", accepted.as_raw_fd()),
        ("client", client.as_raw_fd()),
    ] {
        let r = inspect::fd(fd)?;
        let Some(s) = &r.socket else { continue };
        let local = s.local.as_ref().map_or("-".to_string(), |a| a.to_string());
        let peer = s.peer.as_ref().map_or("*:*".to_string(), |a| a.to_string());
        let state = s.tcp_state.map_or("?", |st| st.ss_name());
        println!(
            "{name:<9} fd {fd:<3} inode {:<8} {state:<7} {local:<21} {peer}",
            s.inode
        );
    }

    println!();
    println!("fd table: {}", inspect::fd_usage()?);
    println!();
    println!(
        "Check it with:  ss -tanpie 'sport = :{port} or dport = :{port}'",
        port = listener.local_addr()?.port()
    );
    println!("           or:  ls -l /proc/{}/fd", std::process::id());
    if !no_wait {
        println!("(press Enter to close the sockets and exit)");
        let mut line = String::new();
        // EOF on stdin (e.g. run from a script) also ends the pause.
        io::stdin().lock().read_line(&mut line)?;
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    let mut args = common::Args::from_env(env!("CARGO_CRATE_NAME"), include_str!("what_is_fd.rs"));
    let no_wait = args.flag("--no-wait", "exit at once instead of waiting for Enter");
    args.finish();
    common::exit("what_is_fd", run(no_wait))
}
