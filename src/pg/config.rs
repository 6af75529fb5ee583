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
//! Spec: the PostgreSQL manual, §34.1.1 "Connection Strings" and §34.15
//! "Environment Variables". Simplifications: one host only (libpq accepts a
//! comma-separated list to try in turn), no `key=value` strings, no TLS
//! (`sslmode` may only be `disable`, `allow` or `prefer`, all of which
//! libpq also lets run in clear).

use std::error::Error;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

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
    /// Give up on the TCP handshake after this long (`connect_timeout`, seconds).
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
    /// before they are sent. Any client-side statement cache must stay off
    /// under this flag.
    pub transaction_pooling: bool,
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
    connect_timeout: Option<String>,
    transaction_pooling: Option<String>,
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
        let connect_timeout = match pick(parts.connect_timeout, "PGCONNECT_TIMEOUT") {
            Some(text) => {
                let secs: u64 = text
                    .parse()
                    .map_err(|_| err(format!("connect_timeout {text:?} is not a number of seconds")))?;
                // libpq: zero (or no value) means wait forever.
                (secs > 0).then(|| Duration::from_secs(secs))
            }
            None => None,
        };
        Ok(Config {
            host,
            port,
            user,
            password,
            dbname,
            application_name: pick(parts.application_name, "PGAPPNAME"),
            connect_timeout,
            transaction_pooling: match parts.transaction_pooling.as_deref() {
                None | Some("false") => false,
                Some("true") => true,
                Some(other) => return Err(err(format!("transaction_pooling={other:?}: expected true or false"))),
            },
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
            "connect_timeout" => parts.connect_timeout = Some(value),
            "transaction_pooling" => parts.transaction_pooling = Some(value),
            "sslmode" if matches!(value.as_str(), "disable" | "allow" | "prefer") => {}
            "sslmode" => return Err(err(format!("sslmode={value}: connlab does not speak TLS (yet)"))),
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
            ("postgres://u@h/db?sslmode=require", "TLS"),
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
