//! The PostgreSQL client against a real, throwaway server (`pg::cluster`).
//!
//! One server per test binary (`Cluster::shared`), started on first use and
//! removed when the binary exits.

use std::process::Command;

use connlab::pg::cluster::{self, Cluster};

/// Run one statement with the system's `psql`, as an independent witness
/// that the cluster is what it claims to be.
fn psql(url: &str, sql: &str) -> String {
    let out = Command::new("psql")
        .args(["-X", "-A", "-t", "-d", url, "-c", sql])
        .output()
        .expect("psql is installed alongside the server");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[test]
fn cluster_serves_every_login_over_tcp_and_unix_socket() {
    let cluster = Cluster::shared().unwrap();
    for login in cluster::LOGINS {
        let who = psql(&cluster.url_for(&login), "SELECT current_user");
        assert_eq!(who, login.user);
        let name = psql(&cluster.unix_url_for(&login), "SELECT name FROM users WHERE id = 42");
        assert_eq!(name, "Alice");
    }
}

#[test]
fn cluster_uses_the_auth_method_it_promises() {
    let cluster = Cluster::shared().unwrap();
    let methods = psql(
        &cluster.url(),
        "SELECT string_agg(user_name[1] || '=' || auth_method, ',' ORDER BY line_number) \
         FROM pg_hba_file_rules WHERE type = 'host'",
    );
    for login in [cluster::MD5, cluster::CLEARTEXT, cluster::TRUST] {
        assert!(
            methods.contains(&format!("{}={}", login.user, login.method)),
            "{methods}"
        );
    }
    let stored = psql(
        &cluster.url(),
        "SELECT left(rolpassword, 3) FROM pg_authid WHERE rolname = 'connlab_md5'",
    );
    assert_eq!(stored, "md5");
}

#[test]
fn own_cluster_restarts_on_the_same_port_and_is_removed_on_drop() {
    let cluster = Cluster::start().unwrap();
    let (port, dir, pid) = (cluster.port(), cluster.socket_dir().to_path_buf(), cluster.pid());
    assert_eq!(psql(&cluster.url(), "SELECT 1"), "1");
    cluster.restart().unwrap();
    assert_eq!(cluster.port(), port);
    assert_ne!(cluster.pid(), pid);
    assert_eq!(psql(&cluster.url(), "SELECT count(*) FROM users"), "1000");
    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "server still listening"
    );
}
