//! A real, throwaway HAProxy (`testbed::haproxy`) in front of connlab's
//! echo server (`testbed::echo`): the two legs of a balanced connection,
//! the spreading rules, and a backend that dies.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use connlab::inspect;
use connlab::testbed::backend::{self, Backend};
use connlab::testbed::haproxy::{Balance, HaProxy, Mode, Settings};

/// Long enough for a handful of 100 ms health checks on a loaded machine.
const UP_WITHIN: Duration = Duration::from_secs(5);

fn backends(n: usize) -> Vec<Backend> {
    (0..n).map(|_| Backend::echo().expect("an echo backend")).collect()
}

/// HAProxy in front of `backends`, once its health checks have seen them all UP.
fn balancer(backends: &[Backend], balance: Balance) -> HaProxy {
    let mut settings = Settings::tcp(backends.iter().map(Backend::addr).collect());
    settings.balance = balance;
    let lb = HaProxy::start(settings).expect("a throwaway HAProxy (scripts/install-haproxy)");
    for i in 0..backends.len() {
        let up = lb.wait_for_status(&format!("b{i}"), "UP", UP_WITHIN).unwrap();
        assert!(up.is_some(), "b{i} not UP: {:?}", lb.stats());
    }
    lb
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
fn round_robin_stacks_long_connections_and_least_connections_spreads_them() {
    let servers = backends(2);
    for (balance, expect_even) in [(Balance::RoundRobin, false), (Balance::LeastConn, true)] {
        let lb = balancer(&servers, balance);
        let _kept = backend::alternate_long_and_short(lb.addr(), 8, Duration::from_millis(30)).unwrap();
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
fn a_backend_that_dies_is_marked_down_and_the_other_serves_on() {
    let mut servers = backends(2);
    let lb = balancer(&servers, Balance::RoundRobin);
    let stop = AtomicBool::new(false);
    let (report, down_after) = std::thread::scope(|scope| {
        let client = scope.spawn(|| backend::load_until(lb.addr(), &stop, Duration::from_secs(10)));
        std::thread::sleep(Duration::from_millis(100));
        servers.pop().unwrap().kill().unwrap();
        let down_after = lb.wait_for_status("b1", "DOWN", Duration::from_secs(3)).unwrap();
        std::thread::sleep(Duration::from_millis(100));
        stop.store(true, Ordering::Release);
        (client.join().unwrap(), down_after)
    });
    let down_after = down_after.expect("b1 marked DOWN within 3 s");
    // fall 2 × inter 100 ms, plus a check in flight.
    assert!(down_after < Duration::from_millis(900), "{down_after:?}");
    assert!(report.ok > 0, "b0 kept serving: {report:?}");
    for _ in 0..10 {
        backend::round_trip(lb.addr()).expect("after DOWN, every request goes to b0");
    }
}

#[test]
fn http_mode_reuses_a_few_backend_connections_for_many_client_connections() {
    let servers: Vec<Backend> = (0..2).map(|i| Backend::http(&format!("b{i}")).unwrap()).collect();
    let mut settings = Settings::tcp(servers.iter().map(Backend::addr).collect());
    settings.mode = Mode::Http;
    let lb = HaProxy::start(settings).unwrap();
    for i in 0..2 {
        assert!(lb.wait_for_status(&format!("b{i}"), "UP", UP_WITHIN).unwrap().is_some());
    }
    let mut carried_by = std::collections::BTreeSet::new();
    for _ in 0..20 {
        // A new client connection for every request, closed after it.
        let mut client = TcpStream::connect(lb.addr()).unwrap();
        let body = backend::http_get(&mut client, "/").unwrap();
        let mut words = body.split_whitespace();
        let (server, conn) = (words.next().unwrap().to_string(), words.nth(1).unwrap().to_string());
        carried_by.insert((server, conn));
    }
    let stats = lb.stats().unwrap();
    let reuses: u64 = stats.iter().map(|s| s.reuses).sum();
    assert!(
        carried_by.len() < 20,
        "20 client connections, {} backend connections: {carried_by:?}",
        carried_by.len()
    );
    assert!(reuses > 0, "HAProxy counts reuse: {stats:?}");
}

/// Set in the child process of the watchdog test.
const CHILD: &str = "CONNLAB_LB_WATCHDOG_CHILD";

#[test]
fn haproxy_and_its_directory_are_gone_after_the_process_that_started_them_is_killed() {
    if std::env::var_os(CHILD).is_some() {
        // The child: start a balancer, say where it is, wait to be killed.
        let servers = backends(1);
        let lb = balancer(&servers, Balance::RoundRobin);
        println!("{} {}", lb.pid(), lb.admin_socket().parent().unwrap().display());
        std::io::stdout().flush().unwrap();
        std::thread::sleep(Duration::from_secs(30));
        return;
    }
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "haproxy_and_its_directory_are_gone_after_the_process_that_started_them_is_killed",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
    while !line.contains("/connlab-haproxy-") {
        line.clear();
        assert!(
            std::io::BufRead::read_line(&mut out, &mut line).unwrap() > 0,
            "the child said nothing"
        );
    }
    let mut words = line.split_whitespace();
    let pid: u32 = words.next().unwrap().parse().unwrap();
    let root = std::path::PathBuf::from(words.next().unwrap());
    assert!(root.exists());
    child.kill().unwrap(); // SIGKILL: no destructor runs in the child
    child.wait().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    // Gone, or a zombie waiting for whoever inherited it to reap it.
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.rsplit(')').next().and_then(|rest| rest.split_whitespace().next()) != Some("Z"))
    };
    while (alive() || root.exists()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!alive(), "haproxy {pid} stopped by the watchdog");
    assert!(!root.exists(), "{} removed by the watchdog", root.display());
}
