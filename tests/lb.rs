//! A real, throwaway HAProxy (`testbed::haproxy`) in front of connlab's
//! echo server (`testbed::echo`): the two legs of a balanced connection,
//! the spreading rules, and a backend that dies.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use connlab::inspect;
use connlab::testbed::echo::EchoBackend;
use connlab::testbed::haproxy::{Balance, HaProxy, Settings};

fn backends(n: usize) -> Vec<EchoBackend> {
    (0..n).map(|_| EchoBackend::start().expect("an echo backend")).collect()
}

fn balancer(backends: &[EchoBackend], balance: Balance) -> HaProxy {
    let mut settings = Settings::tcp(backends.iter().map(EchoBackend::addr).collect());
    settings.balance = balance;
    HaProxy::start(settings).expect("a throwaway HAProxy (scripts/install-haproxy)")
}

/// One echo round trip on a fresh connection through the balancer.
fn echo_once(lb: SocketAddr) -> std::io::Result<()> {
    let mut conn = TcpStream::connect(lb)?;
    conn.set_read_timeout(Some(Duration::from_secs(2)))?;
    conn.write_all(b"ping")?;
    let mut buf = [0u8; 4];
    conn.read_exact(&mut buf)?;
    assert_eq!(&buf, b"ping");
    Ok(())
}

/// Wait (bounded) until HAProxy's health checks have seen every server.
fn wait_all_up(lb: &HaProxy) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if lb
            .stats()
            .is_ok_and(|s| !s.is_empty() && s.iter().all(|s| s.status == "UP"))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("servers not UP: {:?}", lb.stats());
}

#[test]
fn client_leg_and_backend_leg_are_two_connections_with_two_four_tuples() {
    let servers = backends(2);
    let lb = balancer(&servers, Balance::RoundRobin);
    let mut client = TcpStream::connect(lb.addr()).unwrap();
    client.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    client.read_exact(&mut buf).unwrap();
    let (local, remote) = (client.local_addr().unwrap(), client.peer_addr().unwrap());
    assert_eq!(remote, lb.addr(), "the client's connection ends at the balancer");
    let backend_ports: Vec<u16> = servers.iter().map(|s| s.addr().port()).collect();
    let table = inspect::tcp_table().unwrap().rows;
    let leg = table
        .iter()
        .find(|row| backend_ports.contains(&row.remote.port()) && row.state == inspect::TcpState::Established)
        .expect("the balancer's own connection to a backend, in /proc/net/tcp");
    assert_ne!(leg.local, local, "a different local end");
    assert_ne!(leg.remote, remote, "a different remote end");
}

#[test]
fn round_robin_alternates_and_least_connections_spreads_long_connections() {
    let servers = backends(2);
    for (balance, expect_even) in [(Balance::RoundRobin, false), (Balance::LeastConn, true)] {
        let lb = balancer(&servers, balance);
        wait_all_up(&lb);
        // Every other connection stays open: round-robin sends all of those
        // to the same server, least-connections balances them.
        let mut held = Vec::new();
        for i in 0..8 {
            let mut conn = TcpStream::connect(lb.addr()).unwrap();
            conn.write_all(b"x").unwrap();
            let mut buf = [0u8; 1];
            conn.read_exact(&mut buf).unwrap();
            if i % 2 == 0 {
                held.push(conn);
            } else {
                // Closed: give HAProxy a moment to see the FIN, so its
                // count of open connections is current at the next choice.
                drop(conn);
                std::thread::sleep(Duration::from_millis(30));
            }
        }
        std::thread::sleep(Duration::from_millis(50));
        let current: Vec<u64> = lb.stats().unwrap().iter().map(|s| s.current).collect();
        assert_eq!(current.iter().sum::<u64>(), 4, "{balance:?}: {current:?}");
        let even = current.iter().all(|&c| c == 2);
        assert_eq!(
            even, expect_even,
            "{balance:?}: open connections per server {current:?}"
        );
    }
}

#[test]
fn a_backend_that_dies_fails_some_requests_then_is_marked_down() {
    let mut servers = backends(2);
    let lb = balancer(&servers, Balance::RoundRobin);
    wait_all_up(&lb);
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (stop, addr) = (stop.clone(), lb.addr());
        std::thread::spawn(move || {
            let (mut ok, mut failed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                match echo_once(addr) {
                    Ok(()) => ok += 1,
                    Err(_) => failed += 1,
                }
            }
            (ok, failed)
        })
    };
    std::thread::sleep(Duration::from_millis(100));
    servers.pop().unwrap().kill().unwrap();
    let down_after = lb.wait_for_status("b1", "DOWN", Duration::from_secs(3)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = client.join().unwrap();
    let down_after = down_after.expect("b1 marked DOWN within 3 s");
    // fall 2 × inter 100 ms, plus a check in flight.
    assert!(down_after < Duration::from_millis(900), "{down_after:?}");
    assert!(ok > 0, "b0 kept serving: {ok} ok, {failed} failed");
    for _ in 0..10 {
        echo_once(lb.addr()).expect("after DOWN, every request goes to b0");
    }
}
