//! TLS on the PostgreSQL connection, against a real throwaway server with
//! `ssl = on` (`Cluster::start_with_tls`, certificates made for the run),
//! on every poller backend: each `sslmode`, the certificate checks, SCRAM's
//! channel binding, and a plain server's `N`. One fake server plays the
//! part no real one will: bytes injected after the SSLRequest's `S`.

use std::io::Write;
use std::sync::OnceLock;

use connlab::pg::connection::{Connection, Error};
use connlab::pg::Config;
use connlab::testbed::{certs, Cluster};
use util::fake_pg::{fake_server, read_one, SSL_REQUEST};
use util::on_every_backend;

mod util;

/// One TLS cluster for this test binary.
fn tls_cluster() -> &'static Cluster {
    static TLS: OnceLock<Cluster> = OnceLock::new();
    TLS.get_or_init(|| Cluster::start_with_tls().unwrap())
}

/// The TLS cluster's URL with extra query parameters.
fn tls_url(query: &str) -> String {
    format!("{}?{query}", tls_cluster().url())
}

/// The run's CA, as a URL parameter value.
fn run_ca() -> String {
    tls_cluster().tls_ca().unwrap().display().to_string()
}

/// What the server says about this session's encryption.
async fn server_sees_ssl(conn: &mut Connection) -> bool {
    let rows = conn
        .query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap();
    rows.get(0).unwrap().get::<bool>(0).unwrap()
}

#[test]
fn sslmode_require_encrypts_and_the_server_agrees() {
    on_every_backend(|_| async {
        let mut conn = Connection::connect_url(&tls_url("sslmode=require")).await.unwrap();
        let tls = conn.tls().expect("a TLS session");
        assert!(tls.protocol.starts_with("TLSv1_"), "{tls:?}");
        assert!(!tls.server_certificate.is_empty());
        assert!(server_sees_ssl(&mut conn).await);
        assert!(conn.timings().tls > std::time::Duration::ZERO);
    });
}

#[test]
fn prefer_is_the_default_and_uses_tls_when_offered() {
    on_every_backend(|_| async {
        let mut conn = Connection::connect_url(&tls_cluster().url()).await.unwrap();
        assert!(conn.tls().is_some());
        assert!(server_sees_ssl(&mut conn).await);
    });
}

#[test]
fn sslmode_disable_stays_in_clear_on_a_tls_server() {
    on_every_backend(|_| async {
        let mut conn = Connection::connect_url(&tls_url("sslmode=disable")).await.unwrap();
        assert!(conn.tls().is_none());
        assert!(!server_sees_ssl(&mut conn).await);
    });
}

#[test]
fn a_large_result_and_a_large_request_cross_tls_intact() {
    on_every_backend(|_| async {
        let mut conn = Connection::connect_url(&tls_url("sslmode=require")).await.unwrap();
        // About 2 MB of rows: many TLS records, more than rustls buffers at once.
        let rows = conn
            .query("SELECT repeat('x', 1000) || g FROM generate_series(1, 2000) g", &[])
            .await
            .unwrap();
        assert_eq!(rows.len(), 2000);
        assert_eq!(rows.get(1999).unwrap().get::<&str>(0).unwrap().len(), 1004);
        // A 300 kB parameter: the write side in several turns.
        let big = "y".repeat(300_000);
        let rows = conn.query("SELECT length($1::text)", &[&big]).await.unwrap();
        assert_eq!(rows.get(0).unwrap().get::<i32>(0).unwrap(), 300_000);
    });
}

#[test]
fn verify_full_and_verify_ca_with_the_runs_ca_work() {
    on_every_backend(|_| async {
        let url = tls_url(&format!("sslmode=verify-full&sslrootcert={}", run_ca()));
        let mut conn = Connection::connect_url(&url).await.unwrap();
        assert!(server_sees_ssl(&mut conn).await);
        let mut config = Config::from_url(&url).unwrap();
        config.host = connlab::pg::config::Host::Tcp("localhost".into());
        let mut conn = Connection::connect(&config).await.unwrap();
        assert!(server_sees_ssl(&mut conn).await);
        let url = tls_url(&format!("sslmode=verify-ca&sslrootcert={}", run_ca()));
        let mut conn = Connection::connect_url(&url).await.unwrap();
        assert!(server_sees_ssl(&mut conn).await);
    });
}

#[test]
fn verify_ca_and_verify_full_refuse_a_certificate_from_another_ca() {
    let dir = std::env::temp_dir().join(format!("connlab-wrong-ca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wrong = certs::certificate_authority(&dir, "wrong").unwrap();
    on_every_backend(|_| {
        let wrong = wrong.clone();
        async move {
            for mode in ["verify-ca", "verify-full", "require"] {
                let url = tls_url(&format!("sslmode={mode}&sslrootcert={}", wrong.display()));
                let err = Connection::connect_url(&url).await.unwrap_err();
                assert!(matches!(err, Error::Tls(_)), "{mode}: {err:?}");
                let msg = err.to_string();
                assert!(
                    msg.contains("certificate") && msg.contains("UnknownIssuer"),
                    "{mode}: {msg}"
                );
            }
        }
    });
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn verify_full_without_a_root_file_says_which_file_it_wanted() {
    on_every_backend(|_| async {
        let url = tls_url("sslmode=verify-full&sslrootcert=/nonexistent/root.crt");
        let err = Connection::connect_url(&url).await.unwrap_err();
        assert!(err.to_string().contains("/nonexistent/root.crt"), "{err}");
    });
}

#[test]
fn a_server_without_tls_answers_n_require_refuses_prefer_falls_back() {
    let plain = Cluster::shared().unwrap();
    on_every_backend(|_| async {
        let err = Connection::connect_url(&format!("{}?sslmode=require", plain.url()))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("answered 'N'"), "{err}");
        let mut conn = Connection::connect_url(&format!("{}?sslmode=prefer", plain.url()))
            .await
            .unwrap();
        assert!(conn.tls().is_none());
        assert!(!server_sees_ssl(&mut conn).await);
    });
}

/// The SASLInitialResponse's mechanism, read back from the wire tap.
async fn mechanism_used(url: &str) -> Result<String, Error> {
    let mut conn = Connection::connect_tapped(&Config::from_url(url).unwrap(), true).await?;
    let tap = conn.take_wire_tap();
    let initial = tap
        .iter()
        .find(|r| r.name == "SASLInitialResponse")
        .expect("a SASL exchange");
    let bytes = initial.bytes.as_ref().unwrap();
    // Tag, length, then the mechanism's NUL-terminated name.
    let name = &bytes[5..];
    let end = name.iter().position(|&b| b == 0).unwrap();
    Ok(String::from_utf8(name[..end].to_vec()).unwrap())
}

#[test]
fn scram_plus_binds_the_login_to_tls_when_channel_binding_is_required() {
    on_every_backend(|_| async {
        // The server checks the certificate hash we send: a wrong one fails the login.
        let plus = mechanism_used(&tls_url("sslmode=require&channel_binding=require"))
            .await
            .unwrap();
        assert_eq!(plus, "SCRAM-SHA-256-PLUS");
        let preferred = mechanism_used(&tls_url("sslmode=require")).await.unwrap();
        assert_eq!(preferred, "SCRAM-SHA-256-PLUS", "channel_binding=prefer is the default");
        let off = mechanism_used(&tls_url("sslmode=require&channel_binding=disable"))
            .await
            .unwrap();
        assert_eq!(off, "SCRAM-SHA-256");
    });
}

#[test]
fn the_wire_tap_shows_the_ssl_request_and_its_one_byte_answer() {
    let plain = Cluster::shared().unwrap();
    on_every_backend(|_| async {
        for (url, answer) in [(tls_cluster().url(), "'S'"), (plain.url(), "'N'")] {
            let mut conn = Connection::connect_tapped(&Config::from_url(&url).unwrap(), false)
                .await
                .unwrap();
            let tap = conn.take_wire_tap();
            let names: Vec<_> = tap.iter().take(3).map(|r| r.name).collect();
            assert_eq!(names, ["SSLRequest", "SSLResponse", "StartupMessage"]);
            assert!(tap[1].summary.as_deref().unwrap().starts_with(answer), "{}", tap[1]);
        }
    });
}

#[test]
fn channel_binding_require_refuses_plaintext() {
    on_every_backend(|_| async {
        let err = Connection::connect_url(&tls_url("sslmode=disable&channel_binding=require"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains("not TLS"), "{err}");
    });
}

// ANCHOR: injection
/// CVE-2021-23222's shape: a server (or a machine in the middle) answers
/// the SSLRequest with `S` *and* a forged message in the same packet. Those
/// bytes are not protected by the TLS handshake that follows; a client that
/// kept them would later read them as the server's. Refused before the
/// handshake starts.
#[test]
fn bytes_after_the_ssl_answer_are_refused_before_the_handshake() {
    on_every_backend(|_| async {
        for mode in ["prefer", "require"] {
            let url = fake_server(|mut sock| {
                let (_, body) = read_one(&mut sock, false).unwrap();
                assert_eq!(body, SSL_REQUEST);
                // 'S', then a forged AuthenticationOk.
                sock.write_all(b"SR\0\0\0\x08\0\0\0\0").unwrap();
                let _ = util::fake_pg::read_to_eof(&mut sock);
            });
            let err = Connection::connect_url(&format!("{url}?sslmode={mode}"))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Tls(_)), "{err:?}");
            assert!(err.to_string().contains("CVE-2021-23222"), "{err}");
        }
    });
}
// ANCHOR_END: injection

/// Drop sends Terminate without blocking; under TLS it must go out
/// encrypted (and with a close_notify), or the server would read five
/// plaintext bytes as a broken TLS record and log an SSL error.
#[test]
fn drop_says_goodbye_inside_tls() {
    let cluster = Cluster::start_with_tls().unwrap();
    let url = format!("{}?sslmode=require", cluster.url());
    on_every_backend(|_| {
        let url = url.clone();
        async move {
            let mut conn = Connection::connect_url(&url).await.unwrap();
            assert!(server_sees_ssl(&mut conn).await);
            drop(conn);
        }
    });
    // Let the backends read the goodbye and exit.
    std::thread::sleep(std::time::Duration::from_millis(300));
    let log = std::fs::read_to_string(cluster.log_path()).unwrap();
    assert!(!log.contains("SSL"), "the server saw a broken TLS stream:\n{log}");
    assert!(!log.contains("unexpected EOF"), "{log}");
}
