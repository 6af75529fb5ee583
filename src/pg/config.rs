//! `pg::config`: where to connect and as whom, from a URL and the `PG*`
//! environment variables, the way `libpq` reads them.
//!
//! ```text
//! postgres://user:password@host:port/dbname?application_name=demo
//! postgres://connlab@/postgres?host=/tmp/connlab-pg-1-0&port=5433   (Unix socket dir)
//! postgres://connlab@%2Ftmp%2Fconnlab-pg-1-0:5433/postgres          (the same, percent-encoded)
//! ```
//!
//! What the URL leaves out comes from `PGHOST`, `PGPORT`, `PGUSER`,
//! `PGPASSWORD`, `PGDATABASE`, then from the defaults (`localhost`, 5432,
//! the login name, a database named after the user).
//!
//! The password is a secret: it is kept in a [`Password`] whose `Debug`
//! and `Display` print `***`, so neither `{:?}` on a [`Config`] nor the
//! narrator can leak it.
//!
//! The URL parameters connlab reads, with libpq's names and meanings:
//! `host`, `port`, `user`, `password`, `dbname`, `application_name`,
//! `options` (`-c name=value` server settings for the session),
//! `connect_timeout` (seconds for the *whole* connect: TCP handshake,
//! startup and authentication), `keepalives`, `keepalives_idle`,
//! `keepalives_interval`, `keepalives_count` (TCP keepalive, `tcp(7)`),
//! `require_auth` (which authentication methods the server may choose, see
//! [`RequireAuth`]). Limits a hostile server must not exceed (the SCRAM
//! iteration range, the size of one message and of one result) are fields
//! of [`Config`] with defaults; libpq has no URL names for them.
//!
//! Spec: the PostgreSQL manual, "Connection Strings" and "Parameter Key
//! Words" in the libpq chapter, and "Environment Variables"
//! (<https://www.postgresql.org/docs/current/libpq-connect.html>).
//! TLS: `sslmode`, `sslrootcert` and `channel_binding` (and `PGSSLMODE`,
//! `PGSSLROOTCERT`, `PGCHANNELBINDING`), gathered in [`TlsConfig`]; what
//! each mode checks is in [`crate::pg::tls`].
//!
//! Simplifications: one host only (libpq accepts a comma-separated list to
//! try in turn), no `key=value` strings, no client certificates.

use std::error::Error;
use std::fmt;
use std::io;
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::time::Duration;

use crate::pg::auth::scram::{DEFAULT_MAX_ITERATIONS, DEFAULT_MIN_ITERATIONS};
pub use crate::pg::auth::RequireAuth;
use crate::pg::protocol::backend::DEFAULT_MAX_MESSAGE_LEN;
pub use crate::pg::tls::{ChannelBinding, SslMode, TlsConfig};

/// The port PostgreSQL listens on unless told otherwise.
pub const DEFAULT_PORT: u16 = 5432;
/// The host used when neither the URL nor `PGHOST` names one.
pub const DEFAULT_HOST: &str = "localhost";

/// Where the server is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Host {
    /// A host name or IP address, reached over TCP.
    Tcp(String),
    /// A directory holding the Unix socket `.s.PGSQL.<port>` (libpq's rule:
    /// a host that starts with `/` is a directory, not a name).
    Unix(PathBuf),
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Tcp(name) => f.write_str(name),
            Host::Unix(dir) => write!(f, "{}", dir.display()),
        }
    }
}

impl Host {
    fn parse(text: &str) -> Host {
        if text.starts_with('/') {
            Host::Unix(PathBuf::from(text))
        } else {
            Host::Tcp(text.to_string())
        }
    }
}

/// A password that never shows itself in `Debug` or `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wrap a password.
    pub fn new(text: impl Into<String>) -> Password {
        Password(text.into())
    }

    /// The secret itself, for the authentication exchange only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Everything needed to open a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the server is.
    pub host: Host,
    /// The TCP port, which also names the Unix socket (`.s.PGSQL.5432`).
    pub port: u16,
    /// The role to log in as.
    pub user: String,
    /// The password, if the server asks for one.
    pub password: Option<Password>,
    /// The database to connect to.
    pub dbname: String,
    /// Shown in `pg_stat_activity.application_name`.
    pub application_name: Option<String>,
    /// Server settings for this session (`options`, `PGOPTIONS`), as
    /// libpq sends them: `-c name=value` pairs, space-separated, passed in
    /// the StartupMessage's `options` parameter, e.g.
    /// `-c statement_timeout=5s -c search_path=app` (URL-encoded:
    /// `options=-c%20statement_timeout%3D5s`). The server applies them as
    /// if `SET` had run before the first query, and refuses the connection
    /// if one is unknown. A space inside a value is written `\ `.
    pub options: Option<String>,
    /// Give up on connecting after this long (`connect_timeout`, whole
    /// seconds, `PGCONNECT_TIMEOUT`): the TCP handshake, the startup and
    /// the authentication together, as libpq does, so a server that accepts
    /// and then says nothing (or drips a byte a second) cannot hang us.
    /// Also bounds a [`CancelToken::cancel`](crate::pg::connection::CancelToken::cancel).
    /// `None` (or `0` in the URL) waits forever.
    pub connect_timeout: Option<Duration>,
    /// The server is a transaction-pooling proxy such as PgBouncer in
    /// `pool_mode = transaction` (URL: `?transaction_pooling=true`, a
    /// connlab key that libpq does not know). Consecutive transactions may
    /// then run on different server connections, so the client keeps no
    /// state in the server session: statements are unnamed (a "prepared"
    /// statement is parsed again with each execution, in the same message
    /// batch), and statements that would create session state (`SET`
    /// without `LOCAL`, `PREPARE`, `LISTEN`, session advisory locks) are
    /// refused with [`Error::SessionState`](crate::pg::connection::Error::SessionState)
    /// before they are sent. The statement cache is off under this flag,
    /// whatever [`statement_cache_size`](Config::statement_cache_size) says.
    pub transaction_pooling: bool,
    /// How many named statements each connection keeps parsed for
    /// [`query`](crate::pg::Connection::query) (`statement_cache_size`;
    /// default [`DEFAULT_STATEMENT_CACHE_SIZE`](crate::pg::connection::DEFAULT_STATEMENT_CACHE_SIZE)).
    /// `0` turns the cache off: every query then parses the unnamed
    /// statement, which is what a transaction-mode pooler such as PgBouncer
    /// needs (the next transaction may run on a backend that never saw our
    /// Parse).
    pub statement_cache_size: usize,
    /// TCP keepalive on the socket (`keepalives*`); on by default, as in libpq.
    pub keepalive: Keepalive,
    /// The authentication methods the server may choose (`require_auth`,
    /// `PGREQUIREAUTH`); by default any.
    pub require_auth: RequireAuth,
    /// The SCRAM iteration counts we agree to compute PBKDF2 for; by
    /// default [`DEFAULT_MIN_ITERATIONS`]`..=`[`DEFAULT_MAX_ITERATIONS`],
    /// where both ends are explained. Lower the floor to log in to a
    /// server whose `scram_iterations` was lowered.
    pub scram_iterations: RangeInclusive<u32>,
    /// The longest message we accept once logged in (before that, at most
    /// [`MAX_STARTUP_MESSAGE_LEN`]). Default: 1 GiB, the most a server can
    /// send. Memory follows the bytes that arrive, not this number; lower
    /// it when rows are known to be small, so a wrong server is cut off sooner.
    pub max_message_len: usize,
    /// The most row bytes one request may receive: the sizes of its DataRow
    /// messages, which the buffered rows hold in at most about twice that
    /// (a NULL is 4 bytes on the wire and 8 in memory). Past it the request fails with
    /// [`Error::ResultTooLarge`](crate::pg::connection::Error::ResultTooLarge)
    /// and the connection is closed. Default: 1 GiB; `None` for no limit.
    pub max_result_bytes: Option<usize>,
    /// The most rows one request may buffer, likewise. Default: no limit.
    pub max_result_rows: Option<u64>,
    /// `sslmode`, `sslrootcert`, `channel_binding` (default: `prefer`,
    /// none, `prefer`, as libpq).
    pub tls: TlsConfig,
}

/// The longest message a server may send before authentication is over:
/// Authentication requests, ParameterStatus, BackendKeyData and an
/// ErrorResponse are each a few hundred bytes. A stranger announcing more is
/// refused at its header.
pub const MAX_STARTUP_MESSAGE_LEN: usize = 64 * 1024;

/// The default cap on one request's buffered rows: 1 GiB.
pub const DEFAULT_MAX_RESULT_BYTES: usize = 1 << 30;

/// The largest `connect_timeout` (and keepalive time) accepted: libpq
/// reads these as a C `int`, so it refuses anything larger too.
const MAX_SECONDS: u64 = i32::MAX as u64;

/// TCP keepalive (`socket(7)` `SO_KEEPALIVE`; `tcp(7)` `TCP_KEEPIDLE`,
/// `TCP_KEEPINTVL`, `TCP_KEEPCNT`): after `idle` without traffic the kernel
/// sends a probe every `interval`, and after `count` unanswered probes it
/// resets the connection, so a dead peer (a server host that lost power) is
/// noticed instead of waited for. `None` keeps the kernel's setting
/// (`net.ipv4.tcp_keepalive_time` = 7200 s, `_intvl` = 75 s, `_probes` = 9).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    /// `keepalives=1` (default) or `0`.
    pub enabled: bool,
    /// `keepalives_idle`: idle time before the first probe.
    pub idle: Option<Duration>,
    /// `keepalives_interval`: time between probes.
    pub interval: Option<Duration>,
    /// `keepalives_count`: unanswered probes before the connection is dropped.
    pub count: Option<u32>,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            enabled: true,
            idle: None,
            interval: None,
            count: None,
        }
    }
}

impl fmt::Display for Config {
    /// The URL without its password: `postgres://user@host:port/db`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.host {
            Host::Tcp(name) if name.contains(':') => {
                write!(f, "postgres://{}@[{name}]:{}/{}", self.user, self.port, self.dbname)
            }
            Host::Tcp(name) => write!(f, "postgres://{}@{name}:{}/{}", self.user, self.port, self.dbname),
            Host::Unix(dir) => write!(
                f,
                "postgres://{}@/{}?host={}&port={}",
                self.user,
                self.dbname,
                dir.display(),
                self.port
            ),
        }
    }
}

/// A URL or variable we could not make sense of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid connection settings: {}", self.0)
    }
}

impl Error for ConfigError {}

impl From<ConfigError> for io::Error {
    fn from(e: ConfigError) -> io::Error {
        io::Error::new(io::ErrorKind::InvalidInput, e)
    }
}

fn err(msg: impl Into<String>) -> ConfigError {
    ConfigError(msg.into())
}

/// The values a URL may set; `None` means "not said here, fall back".
#[derive(Default)]
struct Parts {
    host: Option<String>,
    port: Option<String>,
    user: Option<String>,
    password: Option<String>,
    dbname: Option<String>,
    application_name: Option<String>,
    options: Option<String>,
    connect_timeout: Option<String>,
    transaction_pooling: Option<String>,
    statement_cache_size: Option<String>,
    keepalives: Option<String>,
    keepalives_idle: Option<String>,
    keepalives_interval: Option<String>,
    keepalives_count: Option<String>,
    require_auth: Option<String>,
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    channel_binding: Option<String>,
}

impl Config {
    /// Settings from the `PG*` variables and the defaults alone.
    pub fn from_env() -> Result<Config, ConfigError> {
        Config::resolve(Parts::default(), &|name| std::env::var(name).ok())
    }

    /// Parse a `postgres://` (or `postgresql://`) URL; what it leaves out
    /// comes from the `PG*` variables, then the defaults.
    pub fn from_url(url: &str) -> Result<Config, ConfigError> {
        Config::from_url_with_env(url, &|name| std::env::var(name).ok())
    }

    /// [`from_url`](Self::from_url) with the environment passed in, so tests
    /// (and callers with their own settings store) need not touch the real one.
    pub fn from_url_with_env(url: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        Config::resolve(parse_url(url)?, env)
    }

    fn resolve(parts: Parts, env: &dyn Fn(&str) -> Option<String>) -> Result<Config, ConfigError> {
        let pick = |given: Option<String>, var: &str| given.or_else(|| env(var)).filter(|v| !v.is_empty());
        let keepalive = keepalive(&parts)?;
        let host = Host::parse(&pick(parts.host, "PGHOST").unwrap_or_else(|| DEFAULT_HOST.to_string()));
        let port = match pick(parts.port, "PGPORT") {
            Some(text) => parse_port(&text)?,
            None => DEFAULT_PORT,
        };
        let user = pick(parts.user, "PGUSER")
            .or_else(|| env("USER"))
            .ok_or_else(|| err("no user given (URL, PGUSER or USER)"))?;
        let dbname = pick(parts.dbname, "PGDATABASE").unwrap_or_else(|| user.clone());
        // An empty password is still a password (`postgres://u:@h/`), so no filter here.
        let password = parts.password.or_else(|| env("PGPASSWORD")).map(Password);
        // libpq: zero means wait forever.
        let connect_timeout = match pick(parts.connect_timeout, "PGCONNECT_TIMEOUT") {
            Some(text) => seconds("connect_timeout", &text, MAX_SECONDS)?,
            None => None,
        };
        let statement_cache_size = match parts.statement_cache_size {
            Some(text) => text
                .parse()
                .map_err(|_| err(format!("statement_cache_size {text:?} is not a count of statements")))?,
            None => crate::pg::connection::DEFAULT_STATEMENT_CACHE_SIZE,
        };
        let require_auth = match pick(parts.require_auth, "PGREQUIREAUTH") {
            Some(text) => RequireAuth::parse(&text).map_err(err)?,
            None => RequireAuth::any(),
        };
        let tls = TlsConfig {
            mode: pick(parts.sslmode, "PGSSLMODE")
                .map_or(Ok(SslMode::default()), |t| SslMode::parse(&t).map_err(err))?,
            root_cert: pick(parts.sslrootcert, "PGSSLROOTCERT").map(PathBuf::from),
            channel_binding: pick(parts.channel_binding, "PGCHANNELBINDING")
                .map_or(Ok(ChannelBinding::default()), |t| {
                    ChannelBinding::parse(&t).map_err(err)
                })?,
        };
        Ok(Config {
            tls,
            host,
            port,
            user,
            password,
            dbname,
            application_name: pick(parts.application_name, "PGAPPNAME"),
            options: pick(parts.options, "PGOPTIONS"),
            connect_timeout,
            transaction_pooling: match parts.transaction_pooling.as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(err(format!("transaction_pooling={other:?}: expected true or false"))),
            },
            statement_cache_size,
            keepalive,
            require_auth,
            scram_iterations: DEFAULT_MIN_ITERATIONS..=DEFAULT_MAX_ITERATIONS,
            max_message_len: DEFAULT_MAX_MESSAGE_LEN,
            max_result_bytes: Some(DEFAULT_MAX_RESULT_BYTES),
            max_result_rows: None,
        })
    }

    /// Replace the password.
    pub fn with_password(mut self, password: impl Into<String>) -> Config {
        self.password = Some(Password::new(password));
        self
    }
}

impl std::str::FromStr for Config {
    type Err = ConfigError;

    fn from_str(url: &str) -> Result<Config, ConfigError> {
        Config::from_url(url)
    }
}

/// A whole number of seconds from 0 to `max`; 0 is `None` ("no limit" or
/// "the kernel's default", as libpq reads it). Refusing what does not fit,
/// rather than saturating, tells the user their number was not used.
fn seconds(name: &str, text: &str, max: u64) -> Result<Option<Duration>, ConfigError> {
    Ok(count(name, text, max)?.map(Duration::from_secs))
}

/// A whole number from 0 to `max`, with 0 as `None`.
fn count(name: &str, text: &str, max: u64) -> Result<Option<u64>, ConfigError> {
    match text.trim().parse::<u64>() {
        Ok(n) if n <= max => Ok((n > 0).then_some(n)),
        _ => Err(err(format!("{name} {text:?} is not a whole number from 0 to {max}"))),
    }
}

/// The largest `TCP_KEEPIDLE` and `TCP_KEEPINTVL` Linux accepts, in seconds
/// (`MAX_TCP_KEEPIDLE`, `MAX_TCP_KEEPINTVL` in `include/net/tcp.h`).
const MAX_KEEPALIVE_SECONDS: u64 = 32767;
/// The largest `TCP_KEEPCNT` Linux accepts (`MAX_TCP_KEEPCNT`).
const MAX_KEEPALIVE_COUNT: u64 = 127;

fn keepalive(parts: &Parts) -> Result<Keepalive, ConfigError> {
    let text = |v: &Option<String>| v.as_deref().filter(|t| !t.is_empty()).map(str::to_owned);
    let enabled = match text(&parts.keepalives) {
        Some(t) => count("keepalives", &t, 1)?.is_some(),
        None => true,
    };
    let secs = |name, v: &Option<String>| text(v).map_or(Ok(None), |t| seconds(name, &t, MAX_KEEPALIVE_SECONDS));
    Ok(Keepalive {
        enabled,
        idle: secs("keepalives_idle", &parts.keepalives_idle)?,
        interval: secs("keepalives_interval", &parts.keepalives_interval)?,
        count: match text(&parts.keepalives_count) {
            Some(t) => count("keepalives_count", &t, MAX_KEEPALIVE_COUNT)?.map(|n| n as u32),
            None => None,
        },
    })
}

fn parse_port(text: &str) -> Result<u16, ConfigError> {
    match text.parse::<u16>() {
        Ok(0) | Err(_) => Err(err(format!("port {text:?} is not a number from 1 to 65535"))),
        Ok(port) => Ok(port),
    }
}

// ANCHOR: parse_url
/// `postgres://[user[:password]@][host][:port][/dbname][?key=value&...]`,
/// split on its delimiters first and percent-decoded piece by piece after,
/// so an encoded `%40` in a password is never mistaken for the `@`.
fn parse_url(url: &str) -> Result<Parts, ConfigError> {
    let rest = ["postgresql://", "postgres://"]
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .ok_or_else(|| err("a URL starts with postgres:// or postgresql://"))?;
    let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    // The password may itself contain '@' only when encoded; the last '@'
    // ends the user info, as in RFC 3986.
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((userinfo, hostport)) => (Some(userinfo), hostport),
        None => (None, authority),
    };

    let mut parts = Parts::default();
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        parts.user = non_empty(decode(user)?);
        parts.password = password.map(decode).transpose()?;
    }
    let (host, port) = split_host_port(hostport)?;
    parts.host = non_empty(decode(host)?);
    parts.port = port.map(decode).transpose()?;
    parts.dbname = non_empty(decode(path)?);

    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| err(format!("query parameter {pair:?} has no '='")))?;
        let value = decode(value)?;
        match decode(key)?.as_str() {
            "host" => parts.host = Some(value),
            "port" => parts.port = Some(value),
            "user" => parts.user = Some(value),
            "password" => parts.password = Some(value),
            "dbname" => parts.dbname = Some(value),
            "application_name" => parts.application_name = Some(value),
            "options" => parts.options = Some(value),
            "connect_timeout" => parts.connect_timeout = Some(value),
            "transaction_pooling" => parts.transaction_pooling = Some(value),
            "statement_cache_size" => parts.statement_cache_size = Some(value),
            "keepalives" => parts.keepalives = Some(value),
            "keepalives_idle" => parts.keepalives_idle = Some(value),
            "keepalives_interval" => parts.keepalives_interval = Some(value),
            "keepalives_count" => parts.keepalives_count = Some(value),
            "require_auth" => parts.require_auth = Some(value),
            "sslmode" => parts.sslmode = Some(value),
            "sslrootcert" => parts.sslrootcert = Some(value),
            "channel_binding" => parts.channel_binding = Some(value),
            other => return Err(err(format!("unknown query parameter {other:?}"))),
        }
    }
    Ok(parts)
}
// ANCHOR_END: parse_url

/// `host`, `host:port`, `[v6]`, `[v6]:port`, `:port` or nothing.
fn split_host_port(hostport: &str) -> Result<(&str, Option<&str>), ConfigError> {
    if let Some(bracketed) = hostport.strip_prefix('[') {
        let (host, after) = bracketed
            .split_once(']')
            .ok_or_else(|| err(format!("unclosed '[' in host {hostport:?}")))?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(port) => Ok((host, Some(port))),
                None => Err(err(format!("unexpected {after:?} after an IPv6 address"))),
            },
        };
    }
    Ok(match hostport.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (hostport, None),
    })
}

fn non_empty(text: String) -> Option<String> {
    (!text.is_empty()).then_some(text)
}

/// Percent-decoding (RFC 3986 §2.1): `%2F` is `/`. The decoded bytes must
/// be UTF-8; a stray `%` is an error rather than a guess.
fn decode(text: &str) -> Result<String, ConfigError> {
    if !text.contains('%') {
        return Ok(text.to_string());
    }
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = |at: usize| bytes.get(at).and_then(|&c| (c as char).to_digit(16));
            let (Some(hi), Some(lo)) = (hex(i + 1), hex(i + 2)) else {
                return Err(err(format!("bad percent-escape in {text:?}")));
            };
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| err(format!("{text:?} decodes to bytes that are not UTF-8")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(url: &str) -> Result<Config, ConfigError> {
        Config::from_url_with_env(url, &no_env)
    }

    #[test]
    fn transaction_pooling_is_off_unless_the_url_says_true() {
        assert!(!parse("postgres://u@h/db").unwrap().transaction_pooling);
        assert!(
            parse("postgres://u@h/db?transaction_pooling=true")
                .unwrap()
                .transaction_pooling
        );
        assert!(
            !parse("postgres://u@h/db?transaction_pooling=false")
                .unwrap()
                .transaction_pooling
        );
        assert!(parse("postgres://u@h/db?transaction_pooling=yes").is_err());
    }

    #[test]
    fn full_url_sets_every_field() {
        let c = parse("postgres://alice:s3cret@db.example:6543/shop?application_name=demo&connect_timeout=3").unwrap();
        assert_eq!(c.host, Host::Tcp("db.example".into()));
        assert_eq!(c.port, 6543);
        assert_eq!(c.user, "alice");
        assert_eq!(c.password.as_ref().map(Password::expose), Some("s3cret"));
        assert_eq!(c.dbname, "shop");
        assert_eq!(c.application_name.as_deref(), Some("demo"));
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(3)));
    }

    #[test]
    fn tls_settings_come_from_the_url_then_the_environment() {
        let c = parse("postgres://u@h/db?sslmode=verify-full&sslrootcert=/ca.pem&channel_binding=require").unwrap();
        assert_eq!(c.tls.mode, SslMode::VerifyFull);
        assert_eq!(c.tls.root_cert, Some(PathBuf::from("/ca.pem")));
        assert_eq!(c.tls.channel_binding, ChannelBinding::Require);
        assert_eq!(parse("postgres://u@h/db").unwrap().tls, TlsConfig::default());
        let env = |name: &str| (name == "PGSSLMODE").then(|| "require".to_string());
        let c = Config::from_url_with_env("postgres://u@h/db", &env).unwrap();
        assert_eq!(c.tls.mode, SslMode::Require);
        let c = Config::from_url_with_env("postgres://u@h/db?sslmode=disable", &env).unwrap();
        assert_eq!(c.tls.mode, SslMode::Disable, "the URL wins over PGSSLMODE");
    }

    #[test]
    fn unix_socket_dir_as_query_or_encoded_host() {
        let a = parse("postgres://u@/db?host=/tmp/pg&port=5433").unwrap();
        let b = parse("postgresql://u@%2Ftmp%2Fpg:5433/db").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.host, Host::Unix("/tmp/pg".into()));
        assert_eq!(a.port, 5433);
    }

    #[test]
    fn ipv6_host_in_brackets() {
        let c = parse("postgres://u@[::1]:7000/db").unwrap();
        assert_eq!(c.host, Host::Tcp("::1".into()));
        assert_eq!(c.port, 7000);
        assert_eq!(c.to_string(), "postgres://u@[::1]:7000/db");
    }

    #[test]
    fn encoded_at_and_colon_stay_in_the_password() {
        let c = parse("postgres://u:p%40ss%3Aword@h/db").unwrap();
        assert_eq!(c.password.as_ref().map(Password::expose), Some("p@ss:word"));
        assert_eq!(c.host, Host::Tcp("h".into()));
    }

    #[test]
    fn environment_fills_what_the_url_leaves_out() {
        let env = |name: &str| match name {
            "PGHOST" => Some("/var/run/postgresql".to_string()),
            "PGPORT" => Some("5999".to_string()),
            "PGUSER" => Some("bob".to_string()),
            "PGPASSWORD" => Some("envpw".to_string()),
            _ => None,
        };
        let c = Config::from_url_with_env("postgres:///things", &env).unwrap();
        assert_eq!(c.host, Host::Unix("/var/run/postgresql".into()));
        assert_eq!(c.port, 5999);
        assert_eq!(c.user, "bob");
        assert_eq!(c.dbname, "things");
        assert_eq!(c.password.as_ref().map(Password::expose), Some("envpw"));
        // The URL wins over the environment.
        let c = Config::from_url_with_env("postgres://carol@h:1/d", &env).unwrap();
        assert_eq!((c.user.as_str(), c.port), ("carol", 1));
    }

    #[test]
    fn defaults_are_localhost_5432_and_a_database_named_after_the_user() {
        let c = parse("postgres://dave@").unwrap();
        assert_eq!(c.host, Host::Tcp(DEFAULT_HOST.into()));
        assert_eq!(c.port, DEFAULT_PORT);
        assert_eq!(c.dbname, "dave");
        assert_eq!(c.password, None);
    }

    #[test]
    fn password_never_shows_in_debug_or_display() {
        let c = parse("postgres://u:hunter2@h:1/db").unwrap();
        let shown = format!("{c:?} {c}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
    }

    #[test]
    fn malformed_urls_are_refused_with_a_reason() {
        for (url, why) in [
            ("mysql://u@h/db", "postgres://"),
            ("postgres://u@h:99999/db", "port"),
            ("postgres://u@h:0/db", "port"),
            ("postgres://u@h/db?sslmode=on", "verify-full"),
            ("postgres://u@h/db?channel_binding=yes", "channel_binding"),
            ("postgres://u@h/db?colour=blue", "unknown"),
            ("postgres://u@h/db?novalue", "no '='"),
            ("postgres://u%zz@h/db", "percent"),
            ("postgres://u%ff@h/db", "UTF-8"),
            ("postgres://u@[::1/db", "unclosed"),
        ] {
            let e = parse(url).unwrap_err().to_string();
            assert!(e.contains(why), "{url}: {e}");
        }
    }

    #[test]
    fn huge_connect_timeout_is_refused_not_a_panic() {
        // 2^64 - 1 seconds once overflowed `Instant + Duration` in the timer code (exit 101).
        let e = parse("postgres://u@h/db?connect_timeout=18446744073709551615").unwrap_err();
        assert!(e.to_string().contains("connect_timeout"), "{e}");
        let env = |name: &str| (name == "PGCONNECT_TIMEOUT").then(|| "18446744073709551615".to_string());
        let e = Config::from_url_with_env("postgres://u@h/db", &env).unwrap_err();
        assert!(e.to_string().contains("2147483647"), "{e}");
        // The largest libpq accepts is accepted; 0 means no limit.
        let c = parse("postgres://u@h/db?connect_timeout=2147483647").unwrap();
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(i32::MAX as u64)));
        assert_eq!(
            parse("postgres://u@h/db?connect_timeout=0").unwrap().connect_timeout,
            None
        );
    }

    #[test]
    fn options_come_from_the_url_or_pgoptions() {
        let c = parse("postgres://u@h/db?options=-c%20statement_timeout%3D5s%20-c%20search_path%3Dapp").unwrap();
        assert_eq!(c.options.as_deref(), Some("-c statement_timeout=5s -c search_path=app"));
        let env = |name: &str| (name == "PGOPTIONS").then(|| "-c work_mem=8MB".to_string());
        let c = Config::from_url_with_env("postgres://u@h/db", &env).unwrap();
        assert_eq!(c.options.as_deref(), Some("-c work_mem=8MB"));
        assert_eq!(parse("postgres://u@h/db").unwrap().options, None);
    }

    #[test]
    fn keepalive_parameters_follow_libpq() {
        let c = parse("postgres://u@h/db").unwrap();
        assert_eq!(c.keepalive, Keepalive::default());
        assert!(c.keepalive.enabled);
        let c = parse("postgres://u@h/db?keepalives_idle=7&keepalives_interval=3&keepalives_count=4").unwrap();
        assert_eq!(c.keepalive.idle, Some(Duration::from_secs(7)));
        assert_eq!(c.keepalive.interval, Some(Duration::from_secs(3)));
        assert_eq!(c.keepalive.count, Some(4));
        assert!(!parse("postgres://u@h/db?keepalives=0").unwrap().keepalive.enabled);
        for bad in [
            "keepalives=2",
            "keepalives_idle=40000",
            "keepalives_count=128",
            "keepalives_interval=-1",
        ] {
            assert!(parse(&format!("postgres://u@h/db?{bad}")).is_err(), "{bad}");
        }
    }

    #[test]
    fn require_auth_comes_from_the_url_or_pgrequireauth() {
        use crate::pg::auth::AuthMethod;
        let c = parse("postgres://u@h/db?require_auth=scram-sha-256").unwrap();
        assert!(c.require_auth.allows(AuthMethod::ScramSha256));
        assert!(!c.require_auth.allows(AuthMethod::Password));
        let env = |name: &str| (name == "PGREQUIREAUTH").then(|| "!password,!md5".to_string());
        let c = Config::from_url_with_env("postgres://u@h/db", &env).unwrap();
        assert!(!c.require_auth.allows(AuthMethod::Md5) && c.require_auth.allows(AuthMethod::None));
        assert!(parse("postgres://u@h/db?require_auth=md5,!none").is_err());
        assert!(parse("postgres://u@h/db")
            .unwrap()
            .require_auth
            .allows(AuthMethod::Password));
    }

    fn encode(text: &str) -> String {
        text.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    proptest! {
        #[test]
        fn any_input_gives_a_config_or_an_error_never_a_panic(url in "\\PC{0,80}") {
            let _ = parse(&url);
            let _ = parse(&format!("postgres://{url}"));
        }

        #[test]
        fn encoded_fields_round_trip(
            user in "\\PC{1,20}",
            password in "\\PC{0,20}",
            host in "[a-z][a-z0-9.-]{0,20}",
            port in 1u16..,
            db in "\\PC{1,20}",
        ) {
            let url = format!("postgres://{}:{}@{host}:{port}/{}", encode(&user), encode(&password), encode(&db));
            let c = parse(&url).unwrap();
            prop_assert_eq!(c.user, user);
            prop_assert_eq!(c.password.as_ref().map(Password::expose), Some(password.as_str()));
            prop_assert_eq!(c.host, Host::Tcp(host));
            prop_assert_eq!(c.port, port);
            prop_assert_eq!(c.dbname, db);
        }
    }
}
