//! The PostgreSQL client against servers that misbehave on purpose, on
//! every poller backend.
//!
//! No real server announces a gigabyte and sends nothing, asks for the
//! password in clear when we demanded SCRAM, or reports 80,000 settings, so
//! a small fake server (`util::fake_pg`) plays each part. Each test is
//! named after the defence it proves and fails without it: memory that
//! follows the bytes that arrive, a deadline over the whole connect, limits
//! on what a server can make the client compute or keep, `require_auth`,
//! and a goodbye (Terminate) when a connection is dropped.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{ErrorKind, Write};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use connlab::pg::auth::scram::DEFAULT_MAX_ITERATIONS;
use connlab::pg::auth::AuthError;
use connlab::pg::config::Config;
use connlab::pg::connection::{Connection, Error, Rows, MAX_PARAMETERS};
use connlab::pg::protocol::ProtocolError;
use connlab::reactor;
use util::fake_pg::*;
use util::on_every_backend;

mod util;

// ---------------------------------------------------------------- memory

/// Counts the bytes this thread has live on the heap, and the peak, so a
/// test can see what one call allocated (the fake server's thread is not
/// counted).
struct Counting;

thread_local! {
    static LIVE: Cell<usize> = const { Cell::new(0) };
    static PEAK: Cell<usize> = const { Cell::new(0) };
}

fn note(grow: usize, shrink: usize) {
    // `try_with`: the thread-locals may already be gone while a thread exits.
    let _ = LIVE.try_with(|live| {
        let now = (live.get() + grow).saturating_sub(shrink);
        live.set(now);
        let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
    });
}

// SAFETY: every call is forwarded to the system allocator unchanged; the
// counters only observe sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size(), 0);
        // SAFETY: same layout contract as our caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, layout.size());
        // SAFETY: `ptr` came from `alloc`/`realloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size, layout.size());
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// The most heap this thread held at once while `f` ran, above where it started.
async fn peak_during<T>(f: impl std::future::Future<Output = T>) -> (T, usize) {
    let start = LIVE.with(Cell::get);
    PEAK.with(|p| p.set(start));
    let out = f.await;
    (out, PEAK.with(Cell::get) - start)
}

/// The 1 GiB header: five bytes announced a DataRow of 512 MiB, and the
/// client grew its read buffer to 512 MiB at once, before the first body
/// byte (measured 1.05 GB per connection for a 1 GiB header). Now the
/// buffer grows with what arrives: 64 KiB sent costs about that much.
#[test]
fn a_header_promising_half_a_gigabyte_costs_only_the_bytes_that_arrive() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            start_result(&mut sock, "big");
            let mut head = vec![b'D'];
            head.extend_from_slice(&(512i32 << 20).to_be_bytes());
            sock.write_all(&head).unwrap();
            let _ = sock.write_all(&[b'x'; 64 * 1024]);
            // ...and the rest never comes.
        });
        let mut conn = Connection::connect_url(&url).await.unwrap();
        let (result, peak) = peak_during(conn.query("SELECT big", &[])).await;
        let err = result.unwrap_err();
        assert!(err.to_string().contains("closed the connection"), "{err}");
        assert!(peak < 4 << 20, "{peak} bytes allocated for a 64 KiB partial message");
    });
}

#[test]
fn a_connection_can_set_a_lower_message_cap() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            start_result(&mut sock, "big");
            sock.write_all(&data_row(&[b'x'; 100_000])).unwrap();
            let _ = read_to_eof(&mut sock);
        });
        let mut config = Config::from_url(&url).unwrap();
        config.max_message_len = 64 * 1024;
        let mut conn = Connection::connect(&config).await.unwrap();
        let err = conn.query("SELECT big", &[]).await.unwrap_err();
        assert!(
            matches!(err, Error::Protocol(ProtocolError::TooLong { max: 65536, .. })),
            "{err:?}"
        );
        assert!(!conn.is_usable());
    });
}

#[test]
fn before_authentication_a_big_message_is_refused_at_its_header() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap();
            // "An ErrorResponse of 1 MiB follows", from a server that has
            // not even asked who we are.
            let mut head = vec![b'E'];
            head.extend_from_slice(&(1i32 << 20).to_be_bytes());
            sock.write_all(&head).unwrap();
            let _ = read_to_eof(&mut sock);
        });
        let err = Connection::connect_url(&url).await.unwrap_err();
        assert!(matches!(err, Error::Protocol(ProtocolError::TooLong { .. })), "{err:?}");
    });
}

// ---------------------------------------------------------------- deadlines

fn assert_timed_out(err: &Error, phase: &str, started: Instant) {
    let Error::Io(io) = err else { panic!("{err:?}") };
    assert_eq!(io.kind(), ErrorKind::TimedOut, "{err}");
    assert!(err.to_string().contains(phase), "{err}");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "{took:?}"
    );
}

/// Connect to `url` with a 1 s connect_timeout and expect it to expire
/// during `phase`.
async fn connect_times_out(url: &str, phase: &str) {
    let started = Instant::now();
    let err = Connection::connect_url(&format!("{url}?connect_timeout=1"))
        .await
        .unwrap_err();
    assert_timed_out(&err, phase, started);
}

/// connect_timeout used to cover only the TCP handshake: a server that
/// accepted and then said nothing hung `connect` forever.
#[test]
fn connect_timeout_covers_a_server_that_accepts_and_says_nothing() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap();
            let _ = read_to_eof(&mut sock); // silence until the client gives up
        });
        connect_times_out(&url, "authentication").await;
    });
}

#[test]
fn connect_timeout_covers_a_server_that_drips_one_byte_at_a_time() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap();
            let out = logged_in("15.0 (slow)");
            for byte in out {
                if sock.write_all(&[byte]).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        connect_times_out(&url, "").await;
    });
}

#[test]
fn cancel_gives_up_on_a_server_that_never_closes_the_cancel_socket() {
    on_every_backend(|_| async {
        let url = serve(2, |n, mut sock| match n {
            0 => {
                trust_login(&mut sock);
                let _ = read_to_eof(&mut sock);
            }
            _ => {
                let _ = read_message(&mut sock, false); // the CancelRequest
                std::thread::sleep(Duration::from_secs(3)); // and no close
            }
        });
        let conn = Connection::connect_url(&format!("{url}?connect_timeout=1"))
            .await
            .unwrap();
        let started = Instant::now();
        let err = conn.cancel_token().cancel().await.unwrap_err();
        assert_timed_out(&err, "CancelRequest", started);
    });
}

#[test]
fn a_timeout_too_large_for_the_clock_is_no_timeout_not_a_panic() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| trust_login(&mut sock));
        let mut config = Config::from_url(&url).unwrap();
        config.connect_timeout = Some(Duration::MAX);
        Connection::connect(&config).await.unwrap();
    });
}

/// The keepalive timer of the connection whose local port is `port`, as
/// the kernel reports it in `/proc/net/tcp` (`proc(5)`): the `tr:tm->when`
/// column is `02:<hex>` while the keepalive timer (`sk_timer`) is pending,
/// with the time left in clock ticks (USER_HZ, 100 per second).
fn keepalive_timer(port: u16) -> Option<Duration> {
    const KEEPALIVE_TIMER: &str = "02";
    const TICKS_PER_SECOND: f64 = 100.0;
    const TCP_ESTABLISHED: &str = "01";
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    let row = table
        .lines()
        .map(|line| line.split_whitespace().collect::<Vec<_>>())
        // ESTABLISHED only: a TIME_WAIT socket from an earlier test may hold
        // the same local port towards another peer.
        .find(|f| f.get(1).is_some_and(|addr| addr.ends_with(&local)) && f.get(3) == Some(&TCP_ESTABLISHED))?;
    let (timer, when) = row.get(5)?.split_once(':')?;
    let ticks = u64::from_str_radix(when, 16).ok()?;
    (timer == KEEPALIVE_TIMER).then(|| Duration::from_secs_f64(ticks as f64 / TICKS_PER_SECOND))
}

#[test]
fn keepalive_parameters_reach_the_socket() {
    on_every_backend(|_| async {
        for (query, expect) in [
            ("keepalives_idle=7&keepalives_interval=3&keepalives_count=4", true),
            ("keepalives=0", false),
        ] {
            let (tx, rx) = mpsc::channel();
            let url = fake_server(move |mut sock| {
                tx.send(sock.peer_addr().unwrap().port()).unwrap();
                trust_login(&mut sock);
                let _ = read_to_eof(&mut sock);
            });
            let _conn = Connection::connect_url(&format!("{url}?{query}")).await.unwrap();
            let port = rx.recv().unwrap();
            // The column shows one timer: while the fake server has not yet
            // ACKed our last bytes it is the retransmit timer (01), so give a
            // loaded machine a moment before calling the keepalive absent.
            let mut timer = keepalive_timer(port);
            let deadline = Instant::now() + Duration::from_secs(2);
            while expect && timer.is_none() && Instant::now() < deadline {
                reactor::sleep(Duration::from_millis(20)).await;
                timer = keepalive_timer(port);
            }
            match expect {
                true => {
                    let left = timer.unwrap_or_else(|| panic!("{query}: no keepalive timer"));
                    assert!(
                        left <= Duration::from_secs(7) && left > Duration::from_secs(5),
                        "{left:?}"
                    );
                }
                false => assert_eq!(timer, None, "{query}"),
            }
        }
    });
}

// ---------------------------------------------------------------- CPU

/// 80,000 distinct settings once cost 19 s of CPU: each was looked up in a
/// list. Now they go in a map, and only the first MAX_PARAMETERS are kept.
#[test]
fn eighty_thousand_distinct_settings_are_capped_and_cheap() {
    on_every_backend(|_| async {
        let url = fake_server(|mut sock| {
            read_message(&mut sock, false).unwrap();
            let mut out = logged_in("15.0 (chatty)");
            for i in 0..80_000 {
                out.extend(parameter_status(&format!("setting_{i}"), "x"));
            }
            out.extend(parameter_status("server_version", "15.1 (changed)"));
            out.extend(ready());
            sock.write_all(&out).unwrap();
            let _ = read_to_eof(&mut sock);
        });
        let conn = Connection::connect_url(&url).await.unwrap();
        assert_eq!(conn.parameters().count(), MAX_PARAMETERS);
        // A change to a setting we keep still counts.
        assert_eq!(conn.parameter("server_version"), Some("15.1 (changed)"));
    });
}

/// A SCRAM server-first asking for `i` iterations; then whatever the
/// client answers, a wrong-password ErrorResponse. Returns what the client
/// sent after server-first (`None`: it hung up).
fn scram_server(iterations: u32) -> (String, mpsc::Receiver<Option<u8>>) {
    let (tx, rx) = mpsc::channel();
    let url = fake_server(move |mut sock| {
        read_message(&mut sock, false).unwrap();
        sock.write_all(&auth(AUTH_SASL, b"SCRAM-SHA-256\0\0")).unwrap();
        let (_, first) = read_message(&mut sock, true).unwrap();
        let first = String::from_utf8_lossy(&first[b"SCRAM-SHA-256\0".len() + 4..]).to_string();
        let nonce = first.rsplit("r=").next().unwrap().to_string();
        let server_first = format!("r={nonce}FAKE,s=c2FsdHNhbHRzYWx0,i={iterations}");
        sock.write_all(&auth(AUTH_SASL_CONTINUE, server_first.as_bytes()))
            .unwrap();
        let answer = read_message(&mut sock, true);
        tx.send(answer.as_ref().map(|(tag, _)| *tag)).unwrap();
        if answer.is_some() {
            let error = b"SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed\0\0";
            let _ = sock.write_all(&message(b'E', error));
        }
    });
    (url, rx)
}

/// 10,000,000 iterations were accepted, and PBKDF2 froze every task on the
/// thread for 2.6 s. The default ceiling refuses it before computing.
#[test]
fn a_huge_scram_iteration_count_is_refused_before_any_pbkdf2() {
    on_every_backend(|_| async {
        let (url, answer) = scram_server(10_000_000);
        let started = Instant::now();
        let err = Connection::connect_url(&url).await.unwrap_err();
        assert!(
            matches!(err, Error::Auth(AuthError::IterationsOutOfRange { asked: 10_000_000, max, .. }) if max == DEFAULT_MAX_ITERATIONS),
            "{err:?}"
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(answer.recv().unwrap(), None, "no proof was computed or sent");
    });
}

/// The 4096 floor is a policy, and a server with a lowered
/// `scram_iterations` needs a way past it.
#[test]
fn the_scram_iteration_floor_is_configurable() {
    on_every_backend(|_| async {
        let (url, answer) = scram_server(1000);
        let err = Connection::connect_url(&url).await.unwrap_err();
        assert!(err.to_string().contains("scram_iterations"), "{err}");
        assert_eq!(answer.recv().unwrap(), None);

        let (url, answer) = scram_server(1000);
        let mut config = Config::from_url(&url).unwrap();
        config.scram_iterations = 1000..=DEFAULT_MAX_ITERATIONS;
        let err = Connection::connect(&config).await.unwrap_err();
        assert_eq!(err.code(), Some("28P01"), "got as far as the password check: {err}");
        assert_eq!(answer.recv().unwrap(), Some(b'p'), "the SASLResponse with our proof");
    });
}

// ---------------------------------------------------------------- require_auth

/// A server that asks with `request`, then reports the first message the
/// client answers with (`None`: it hung up), then lets it in.
/// What the client answered an authentication request with: its tag and
/// body, or `None` if it hung up instead.
type Answer = Option<(u8, Vec<u8>)>;

fn asking_server(request: Vec<u8>) -> (String, mpsc::Receiver<Answer>) {
    let (tx, rx) = mpsc::channel();
    let url = fake_server(move |mut sock| {
        read_message(&mut sock, false).unwrap();
        sock.write_all(&request).unwrap();
        let answer = read_message(&mut sock, true);
        let answered = answer.is_some();
        tx.send(answer).unwrap();
        if answered {
            let mut out = auth(AUTH_OK, &[]);
            out.extend(ready());
            let _ = sock.write_all(&out);
            let _ = read_to_eof(&mut sock);
        }
    });
    (url, rx)
}

fn refused(err: &Error) -> bool {
    matches!(err, Error::Auth(AuthError::MethodRefused { .. }))
}

/// Without TLS, whoever answers our SYN can ask for the password in clear.
/// `require_auth=scram-sha-256` refuses, and the password is never sent.
#[test]
fn require_auth_scram_refuses_a_cleartext_request_without_sending_the_password() {
    on_every_backend(|_| async {
        let (url, answer) = asking_server(auth(AUTH_CLEARTEXT, &[]));
        let err = Connection::connect_url(&format!("{url}?require_auth=scram-sha-256"))
            .await
            .unwrap_err();
        assert!(refused(&err), "{err:?}");
        assert!(err.to_string().contains("password"), "{err}");
        assert_eq!(answer.recv().unwrap(), None, "nothing was sent after the request");

        // Without require_auth the same server gets the password: the downgrade.
        let (url, answer) = asking_server(auth(AUTH_CLEARTEXT, &[]));
        Connection::connect_url(&url).await.unwrap();
        let (tag, body) = answer.recv().unwrap().unwrap();
        assert_eq!((tag, body.as_slice()), (b'p', &b"connlab\0"[..]));
    });
}

/// A server that says AuthenticationOk without asking anything has proved
/// nothing; `require_auth=scram-sha-256` (or `!none`) refuses it.
#[test]
fn require_auth_refuses_a_login_with_no_challenge() {
    on_every_backend(|_| async {
        for policy in ["scram-sha-256", "!none", "md5,password"] {
            let url = fake_server(|mut sock| trust_login(&mut sock));
            let err = Connection::connect_url(&format!("{url}?require_auth={policy}"))
                .await
                .unwrap_err();
            assert!(refused(&err), "{policy}: {err:?}");
            assert!(err.to_string().contains("without asking"), "{err}");
        }
        let url = fake_server(|mut sock| trust_login(&mut sock));
        Connection::connect_url(&format!("{url}?require_auth=none"))
            .await
            .unwrap();
    });
}

#[test]
fn require_auth_negations_refuse_only_what_they_name() {
    on_every_backend(|_| async {
        let (url, answer) = asking_server(auth(AUTH_MD5, b"salt"));
        Connection::connect_url(&format!("{url}?require_auth=!password,!none"))
            .await
            .unwrap();
        let (tag, body) = answer.recv().unwrap().unwrap();
        assert!(tag == b'p' && body.starts_with(b"md5"), "an MD5 answer");

        let (url, answer) = asking_server(auth(AUTH_MD5, b"salt"));
        let err = Connection::connect_url(&format!("{url}?require_auth=!md5"))
            .await
            .unwrap_err();
        assert!(refused(&err) && err.to_string().contains("md5"), "{err:?}");
        assert_eq!(answer.recv().unwrap(), None);

        let (url, _answer) = asking_server(auth(AUTH_SASL, b"SCRAM-SHA-256\0\0"));
        let err = Connection::connect_url(&format!("{url}?require_auth=password"))
            .await
            .unwrap_err();
        assert!(refused(&err) && err.to_string().contains("scram-sha-256"), "{err:?}");
    });
}

// ---------------------------------------------------------------- results

/// A server that answers one query with `rows` rows of `width` bytes (or
/// until the client hangs up), then reports whether the client hung up.
fn flooding_server(rows: usize, width: usize) -> (String, mpsc::Receiver<bool>) {
    let (tx, rx) = mpsc::channel();
    let url = fake_server(move |mut sock| {
        start_result(&mut sock, "flood");
        let row = data_row(&vec![b'r'; width]);
        let mut batch = Vec::new();
        let mut hung_up = false;
        for _ in 0..rows {
            batch.extend_from_slice(&row);
            if batch.len() >= 64 * 1024 {
                hung_up = sock.write_all(&batch).is_err();
                batch.clear();
                if hung_up {
                    break;
                }
            }
        }
        if !hung_up {
            batch.extend(message(b'C', format!("SELECT {rows}\0").as_bytes()));
            batch.extend(ready());
            hung_up = sock.write_all(&batch).is_err();
        }
        let _ = tx.send(hung_up);
    });
    (url, rx)
}

/// Connect to a [`flooding_server`] with `limit` applied to the config and
/// run its one query; the connection, the outcome, and whether the server
/// saw the client hang up.
async fn query_flood(
    rows: usize,
    width: usize,
    limit: impl FnOnce(&mut Config),
) -> (Connection, Result<Rows, Error>, mpsc::Receiver<bool>) {
    let (url, hung_up) = flooding_server(rows, width);
    let mut config = Config::from_url(&url).unwrap();
    limit(&mut config);
    let mut conn = Connection::connect(&config).await.unwrap();
    let outcome = conn.query("SELECT flood", &[]).await;
    (conn, outcome, hung_up)
}

/// A flooding server pushed the client to 1.8 GB in 3 s. Now a request's
/// rows are capped; past the cap the connection is closed, which also
/// stops the server (its next send fails).
#[test]
fn a_result_past_max_result_rows_closes_the_connection_with_a_clear_error() {
    on_every_backend(|_| async {
        let (conn, outcome, hung_up) = query_flood(2_000_000, 8, |c| c.max_result_rows = Some(1000)).await;
        let err = outcome.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ResultTooLarge {
                    limit: "max_result_rows",
                    max: 1000
                }
            ),
            "{err:?}"
        );
        assert!(!conn.is_usable());
        drop(conn);
        assert!(hung_up.recv().unwrap(), "the server saw the connection close");
    });
}

#[test]
fn a_result_past_max_result_bytes_closes_the_connection_and_one_under_it_arrives_whole() {
    on_every_backend(|_| async {
        let cap = |c: &mut Config| c.max_result_bytes = Some(256 * 1024);
        let (conn, outcome, _) = query_flood(1000, 1000, cap).await;
        let err = outcome.unwrap_err();
        assert!(
            matches!(
                err,
                Error::ResultTooLarge {
                    limit: "max_result_bytes",
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(!conn.is_usable());

        let (conn, outcome, _) = query_flood(100, 1000, cap).await;
        assert_eq!(outcome.unwrap().len(), 100);
        assert!(conn.is_usable());
    });
}

// ---------------------------------------------------------------- goodbye

/// A dropped connection used to just close the socket: the server saw EOF
/// with no Terminate. Now Drop sends one, without blocking.
#[test]
fn dropping_a_connection_sends_terminate() {
    on_every_backend(|_| async {
        let (tx, rx) = mpsc::channel();
        let url = fake_server(move |mut sock| {
            trust_login(&mut sock);
            tx.send(read_to_eof(&mut sock)).unwrap();
        });
        let conn = Connection::connect_url(&url).await.unwrap();
        drop(conn);
        assert_eq!(rx.recv().unwrap(), b"X\0\0\0\x04", "exactly one Terminate, then EOF");
    });
}

#[test]
fn close_says_goodbye_once_and_a_broken_connection_not_at_all() {
    on_every_backend(|_| async {
        let (tx, rx) = mpsc::channel();
        let url = serve(2, move |n, mut sock| {
            trust_login(&mut sock);
            if n == 1 {
                // Break the second connection with a malformed message.
                read_request(&mut sock).unwrap();
                sock.write_all(&[b'Z', 0, 0, 0, 5, b'?']).unwrap();
            }
            tx.send((n, read_to_eof(&mut sock))).unwrap();
        });
        let conn = Connection::connect_url(&url).await.unwrap();
        conn.close().await.unwrap();
        let (n, bytes) = rx.recv().unwrap();
        assert_eq!((n, bytes.as_slice()), (0, &b"X\0\0\0\x04"[..]));

        let mut conn = Connection::connect_url(&url).await.unwrap();
        assert!(conn.query("SELECT 1", &[]).await.is_err());
        drop(conn);
        let (n, bytes) = rx.recv().unwrap();
        assert_eq!((n, bytes.as_slice()), (1, &b""[..]), "no Terminate on a broken stream");
    });
}
