//! Why is the first response on a new connection slower (Q23)? The
//! congestion window, read from `TCP_INFO` around one 100 KB response on a
//! fresh connection, on the same connection at once, and after it idled.
//!
//! The story: a new connection starts with a congestion window of 10
//! segments (about 14 KB at Ethernet's 1,460-byte MSS), so a larger
//! response needs several round trips while the window doubles; a warm
//! connection has already grown its window. On loopback the MSS is 32 KiB
//! and the round trip tens of µs, so nothing shows. In a private network
//! namespace this experiment sets the server's MSS to 1,460 bytes
//! (`TCP_MAXSEG` on the listener, inherited by the accepted socket) and its
//! congestion control (`TCP_CONGESTION`: CUBIC, the story's, or BBR, this
//! machine's default), then reads the server's `tcpi_snd_cwnd` before and
//! after each response.
//!
//! What the story leaves out: a window only stays grown while the
//! connection is busy. With `tcp_slow_start_after_idle` = 1 (the default),
//! a connection idle for longer than one retransmission timeout (200 ms at
//! least) restarts from the initial window (`tcp_cwnd_restart`, RFC 5681
//! §4.1), so a pooled connection that waited a second between responses
//! starts over. Turning the sysctl off keeps the window. BBR is exempt: a
//! congestion control with its own `cong_control` hook (BBR has one) skips
//! the restart and paces from its model instead.

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

use super::{accept_all, listener, start_connect, wait_for};
use crate::sys::{self, netns, socket};

/// The response size the story talks about.
pub const RESPONSE: usize = 100 * 1024;
/// Ethernet's MSS with a 1,500-byte MTU.
pub const ETHERNET_MSS: u16 = 1460;
/// Idle time before the third response: longer than any loopback RTO.
pub const IDLE: Duration = Duration::from_secs(1);

/// The server's window around one response.
#[derive(Debug, Clone, Copy)]
pub struct Response {
    /// `tcpi_snd_cwnd` before the write, segments.
    pub cwnd_before: u32,
    /// `tcpi_snd_cwnd` once every byte was acknowledged.
    pub cwnd_after: u32,
    /// Data segments the response took (`tcpi_data_segs_out` difference).
    pub segments: u32,
}

/// Fresh, warm (right after), and after [`IDLE`] of silence.
#[derive(Debug, Clone)]
pub struct Report {
    /// `tcp_slow_start_after_idle` in this run.
    pub restart_after_idle: bool,
    /// The MSS the server sent with.
    pub mss: u32,
    /// The server's congestion control (`TCP_CONGESTION`).
    pub congestion_control: String,
    /// The three responses.
    pub responses: [Response; 3],
}

/// Run in the current (private) namespace.
pub fn run(congestion_control: &str, restart_after_idle: bool) -> io::Result<Report> {
    netns::set_sysctl(
        "net/ipv4/tcp_slow_start_after_idle",
        if restart_after_idle { "1" } else { "0" },
    )?;
    let (listen_fd, addr) = listener(8)?;
    socket::set_maxseg(listen_fd.as_raw_fd(), ETHERNET_MSS)?;
    socket::set_congestion_control(listen_fd.as_raw_fd(), congestion_control)?;
    let client = start_connect(addr)?;
    let server = wait_for(Duration::from_secs(2), Duration::from_millis(1), || {
        Ok(accept_all(&listen_fd)?.pop().map(|(fd, _)| fd))
    })?
    .ok_or_else(|| io::Error::other("the connection was never accepted"))?;
    let fresh = respond(&server, &client)?;
    let warm = respond(&server, &client)?;
    std::thread::sleep(IDLE);
    let idle = respond(&server, &client)?;
    let mss = sys::info::tcp_info(server.as_raw_fd())?.raw.tcpi_snd_mss;
    let congestion_control = congestion_control.to_string();
    Ok(Report {
        restart_after_idle,
        mss,
        congestion_control,
        responses: [fresh, warm, idle],
    })
}

/// Write [`RESPONSE`] bytes from `server`, read them all on `client`, wait
/// until the server has every ACK, and report its window.
fn respond(server: &OwnedFd, client: &OwnedFd) -> io::Result<Response> {
    let before = sys::info::tcp_info(server.as_raw_fd())?.raw;
    let body = vec![b'x'; RESPONSE];
    let mut buf = vec![0u8; RESPONSE];
    let (mut sent, mut got) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(5);
    while got < RESPONSE {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!("only {got} of {RESPONSE} bytes arrived")));
        }
        if sent < RESPONSE {
            match socket::write(server.as_raw_fd(), &body[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        match socket::read(client.as_raw_fd(), &mut buf[got..]) {
            Ok(0) => return Err(io::Error::other("the client saw EOF mid-response")),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(Duration::from_micros(50)),
            Err(e) => return Err(e),
        }
    }
    let after = wait_for(Duration::from_secs(2), Duration::from_micros(200), || {
        let info = sys::info::tcp_info(server.as_raw_fd())?.raw;
        Ok((info.tcpi_unacked == 0).then_some(info))
    })?
    .ok_or_else(|| io::Error::other("the response was never fully acknowledged"))?;
    Ok(Response {
        cwnd_before: before.tcpi_snd_cwnd,
        cwnd_after: after.tcpi_snd_cwnd,
        segments: after.tcpi_data_segs_out - before.tcpi_data_segs_out,
    })
}

/// Round trips a sender needs for `segments` starting from window `cwnd`,
/// doubling each round trip (slow start, no loss): arithmetic, not measured.
pub fn slow_start_rounds(segments: u32, cwnd: u32) -> u32 {
    let (mut sent, mut window, mut rounds) = (0u32, cwnd.max(1), 0);
    while sent < segments {
        sent = sent.saturating_add(window);
        window = window.saturating_mul(2);
        rounds += 1;
    }
    rounds
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hundred_kilobytes_take_four_round_trips_from_ten_segments() {
        assert_eq!(slow_start_rounds(70, 10), 3);
        assert_eq!(slow_start_rounds(71, 10), 4);
        assert_eq!(slow_start_rounds(71, 80), 1);
        assert_eq!(slow_start_rounds(0, 10), 0);
    }
}
