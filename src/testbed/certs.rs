//! Certificates for a throwaway TLS server: a CA made for the run, and a
//! server certificate it signs, with the `openssl` command.
//!
//! ```text
//! openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!     -keyout ca.key -out ca.crt -days 2 -subj "/CN=connlab throwaway CA"
//! openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
//!     -keyout server.key -out server.csr -subj /CN=localhost
//! openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
//!     -out server.crt -days 2 -extfile server.ext
//! ```
//!
//! `server.ext` names the server `localhost`, `127.0.0.1` and `::1` in its
//! subjectAltName: a TLS client checks the name it dialled against that
//! list (never against the CN, RFC 6125 §6.4.4), so `sslmode=verify-full`
//! to `127.0.0.1` needs the IP address listed. Keys are ECDSA P-256: made
//! in milliseconds, where RSA-2048 takes a noticeable fraction of a second.
//!
//! Why the command and not the `rcgen` crate: Debian's PostgreSQL server
//! package depends on `openssl` (through `ssl-cert`), so the command is
//! there wherever the cluster can start, and a library dependency for the
//! test harness alone would weigh on every user of the crate.
//! See `openssl-req(1)`, `openssl-x509(1)`, `x509v3_config(5)`.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::process;
use crate::sys::user::Account;

/// Days a certificate made here is valid: a run lasts minutes, and a
/// little slack covers clocks that differ.
const DAYS: &str = "2";

/// The files of a server certificate made by [`server_certificate`].
#[derive(Debug, Clone)]
pub struct ServerFiles {
    /// The CA certificate (PEM): what a client puts in `sslrootcert`.
    pub ca: PathBuf,
    /// The server certificate (PEM): postgresql.conf's `ssl_cert_file`.
    pub cert: PathBuf,
    /// Its private key (PEM, mode 0600, owned by the server's account):
    /// `ssl_key_file`. PostgreSQL refuses a key others can read.
    pub key: PathBuf,
}

/// Make a self-signed CA in `dir` as `NAME.crt` and `NAME.key`; returns the
/// certificate's path.
pub fn certificate_authority(dir: &Path, name: &str) -> io::Result<PathBuf> {
    let cert = dir.join(format!("{name}.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            DAYS,
            "-subj",
        ],
        &[
            format!("/CN=connlab throwaway CA {name}"),
            "-keyout".into(),
            format!("{name}.key"),
            "-out".into(),
            format!("{name}.crt"),
        ],
    )?;
    Ok(cert)
}

/// Make a CA and a server certificate for `localhost`/`127.0.0.1`/`::1` in
/// `dir`, the key handed to `run_as` with mode 0600.
pub fn server_certificate(dir: &Path, run_as: Option<Account>) -> io::Result<ServerFiles> {
    let ca = certificate_authority(dir, "ca")?;
    let ext = dir.join("server.ext");
    fs::write(
        &ext,
        "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        &[],
    )?;
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.crt",
            "-days",
            DAYS,
            "-extfile",
            "server.ext",
        ],
        &[],
    )?;
    let files = ServerFiles {
        ca,
        cert: dir.join("server.crt"),
        key: dir.join("server.key"),
    };
    fs::set_permissions(&files.key, fs::Permissions::from_mode(0o600))?;
    process::give_to(&files.key, run_as)?;
    process::give_to(&files.cert, run_as)?;
    Ok(files)
}

/// Run `openssl ARGS… MORE…` in `dir`; a failure carries its stderr.
fn openssl(dir: &Path, args: &[&str], more: &[String]) -> io::Result<()> {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .args(more)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("running openssl {}: {e} (install it: apt-get install openssl)", args[0]),
            )
        })?;
    if output.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "openssl {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}
