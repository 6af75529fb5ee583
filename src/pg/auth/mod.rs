//! `pg::auth`: proving who we are to the server, with no I/O.
//!
//! After the StartupMessage the server picks a method from `pg_hba.conf` and says so with an
//! Authentication message (`R`). The client answers; possibly several rounds; until AuthenticationOk
//! or an ErrorResponse (`28P01` for a wrong password). The methods:
//!
//! | server asks | client answers | what crosses the wire |
//! |---|---|---|
//! | `trust` | nothing | AuthenticationOk at once |
//! | cleartext (code 3) | PasswordMessage | the password itself |
//! | MD5 (code 5) | PasswordMessage | `"md5" + md5(md5(password + user) + salt)` ([`md5_password`]) |
//! | SASL (code 10) | SASLInitialResponse, SASLResponse | SCRAM-SHA-256 proofs ([`scram`]), never the password |
//!
//! [`Authenticator`] drives all of them: hand it each Authentication message, send what it appends.
//! Spec: <https://www.postgresql.org/docs/current/protocol-flow.html#PROTOCOL-FLOW-START-UP> and
//! <https://www.postgresql.org/docs/current/auth-password.html>.

use std::fmt;
use std::io;
use std::ops::RangeInclusive;

use md5::{Digest, Md5};

use super::protocol::backend::Authentication;
use super::protocol::{frontend, EncodeError};

pub mod channel_binding;
mod require;
pub mod scram;

pub use require::{AuthMethod, RequireAuth};
use scram::Binding;
pub use scram::ScramSha256;

use crate::pg::tls::ChannelBinding;

/// Authentication that cannot proceed. (A password the server rejects is not one of these: the server
/// says so with an ErrorResponse, SQLSTATE `28P01`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The server asks for a method connlab does not implement (GSSAPI, SSPI, Kerberos).
    UnsupportedMethod(&'static str),
    /// The server offers SASL but none of its mechanisms is `SCRAM-SHA-256`.
    NoSupportedMechanism(Vec<String>),
    /// The server asks for a password and none was configured.
    PasswordRequired(&'static str),
    /// A message that does not fit where the exchange is (e.g. AuthenticationOk before the server
    /// proved itself in SCRAM).
    Unexpected(&'static str),
    /// A SCRAM message that does not follow RFC 5802's grammar.
    Malformed(&'static str),
    /// The server's SCRAM nonce does not extend ours.
    NonceMismatch,
    /// The server asked for a PBKDF2 iteration count outside the accepted range.
    IterationsOutOfRange {
        /// The count in the server-first-message.
        asked: u32,
        /// The fewest we accept.
        min: u32,
        /// The most we accept.
        max: u32,
    },
    /// The server chose a method that `require_auth` refuses (see [`RequireAuth`]).
    MethodRefused {
        /// The method the server asked for (`none` if it asked for nothing).
        method: AuthMethod,
        /// The methods the policy allows.
        allowed: RequireAuth,
    },
    /// The server sent SCRAM's `e=` error attribute.
    ServerError(String),
    /// The server's SCRAM signature is wrong: it does not know the password's verifier.
    BadServerSignature,
    /// The kernel's random number generator failed.
    Random(String),
    /// The answer could not be encoded (a password with a NUL byte).
    Encode(EncodeError),
    /// `channel_binding=require`, and the login would not be bound to TLS (the reason is given).
    ChannelBindingRequired(&'static str),
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthError::UnsupportedMethod(m) => {
                write!(
                    f,
                    "the server asks for {m} authentication, which connlab does not support"
                )
            }
            AuthError::NoSupportedMechanism(offered) => write!(
                f,
                "the server offers SASL mechanisms {offered:?}; connlab supports only {} \
                 ({} needs TLS channel binding)",
                scram::SCRAM_SHA_256,
                scram::SCRAM_SHA_256_PLUS
            ),
            AuthError::PasswordRequired(m) => {
                write!(
                    f,
                    "the server asks for a password ({m}) and none was given (set one in the URL or PGPASSWORD)"
                )
            }
            AuthError::Unexpected(what) => write!(f, "authentication: unexpected {what}"),
            AuthError::Malformed(what) => write!(f, "SCRAM: {what}"),
            AuthError::NonceMismatch => f.write_str("SCRAM: the server's nonce does not extend ours"),
            AuthError::IterationsOutOfRange { asked, min, max } => write!(
                f,
                "SCRAM: the server asks for {asked} PBKDF2 iterations; this client accepts {min} to {max} \
                 (Config::scram_iterations)"
            ),
            AuthError::MethodRefused {
                method: AuthMethod::None,
                allowed,
            } => write!(
                f,
                "the server let us in without asking for any authentication, which require_auth={allowed} refuses"
            ),
            AuthError::MethodRefused { method, allowed } => write!(
                f,
                "the server asks for authentication method {}, which require_auth={allowed} refuses",
                method.keyword()
            ),
            AuthError::ServerError(e) => write!(f, "SCRAM: the server reports error {e:?}"),
            AuthError::BadServerSignature => {
                f.write_str("SCRAM: the server's signature is wrong; it cannot prove it knows the password")
            }
            AuthError::Random(e) => write!(f, "getrandom failed for the SCRAM nonce: {e}"),
            AuthError::Encode(e) => e.fmt(f),
            AuthError::ChannelBindingRequired(why) => {
                write!(f, "channel_binding=require, but {why}")
            }
        }
    }
}

impl std::error::Error for AuthError {}

impl From<EncodeError> for AuthError {
    fn from(e: EncodeError) -> Self {
        AuthError::Encode(e)
    }
}

impl From<AuthError> for io::Error {
    fn from(e: AuthError) -> io::Error {
        let kind = match e {
            AuthError::UnsupportedMethod(_) | AuthError::NoSupportedMechanism(_) => io::ErrorKind::Unsupported,
            AuthError::PasswordRequired(_) | AuthError::Encode(_) => io::ErrorKind::InvalidInput,
            AuthError::Random(_) => io::ErrorKind::Other,
            AuthError::NonceMismatch
            | AuthError::BadServerSignature
            | AuthError::ServerError(_)
            | AuthError::MethodRefused { .. }
            | AuthError::ChannelBindingRequired(_) => io::ErrorKind::PermissionDenied,
            AuthError::Unexpected(_) | AuthError::Malformed(_) | AuthError::IterationsOutOfRange { .. } => {
                io::ErrorKind::InvalidData
            }
        };
        io::Error::new(kind, e)
    }
}

/// The length of `"md5"` + 32 hex digits.
const MD5_RESPONSE_LEN: usize = 35;

// ANCHOR: md5
/// The MD5 method's answer: `"md5" + hex(md5(hex(md5(password + user)) + salt))`.
///
/// The inner hash is what the server stores (`pg_authid.rolpassword`), so the server can check the
/// answer without knowing the password; the salt stops a captured answer from being replayed. But
/// that inner hash *is* the credential (anyone holding it can log in), and MD5 is fast to brute-force:
/// PostgreSQL deprecates this method in favour of SCRAM.
pub fn md5_password(user: &str, password: &str, salt: [u8; 4]) -> String {
    let inner = Md5::new().chain_update(password).chain_update(user).finalize();
    let outer = Md5::new().chain_update(hex(&inner)).chain_update(salt).finalize();
    let mut out = String::with_capacity(MD5_RESPONSE_LEN);
    out.push_str("md5");
    out.push_str(&hex(&outer));
    out
}
// ANCHOR_END: md5

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// Pick the SASL mechanism when the connection is not bound to TLS: `SCRAM-SHA-256` if offered,
/// else an error listing what was.
///
/// `SCRAM-SHA-256-PLUS` is skipped even when preferred by the server: it binds the exchange to a TLS
/// channel and we have none (with TLS, [`Authenticator::channel_binding`] decides instead).
pub fn choose_mechanism<'a>(offered: impl IntoIterator<Item = &'a str>) -> Result<&'static str, AuthError> {
    let mut seen = Vec::new();
    for m in offered {
        if m == scram::SCRAM_SHA_256 {
            return Ok(scram::SCRAM_SHA_256);
        }
        seen.push(m.to_owned());
    }
    Err(AuthError::NoSupportedMechanism(seen))
}

/// What the caller does after [`Authenticator::respond`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthStep {
    /// A message was appended to the output buffer: send it, then read the next message.
    Send,
    /// Nothing to send (after SCRAM's server-final): read the next message.
    Wait,
    /// AuthenticationOk: authentication is over; startup continues (ParameterStatus, BackendKeyData,
    /// ReadyForQuery).
    Done,
}

/// Where the authenticator is.
enum Phase {
    Start,
    PasswordSent,
    Scram(Box<ScramSha256>),
    Done,
}

/// The client side of authentication, for any method: a sans-IO state machine.
///
/// ```
/// use connlab::pg::auth::{AuthStep, Authenticator};
/// use connlab::pg::protocol::backend::Authentication;
/// let mut auth = Authenticator::new("alice", Some("secret"));
/// let mut out = Vec::new();
/// let step = auth.respond(&Authentication::Md5Password { salt: *b"salt" }, &mut out)?;
/// assert_eq!(step, AuthStep::Send); // `out` now holds a PasswordMessage
/// assert_eq!(auth.respond(&Authentication::Ok, &mut out)?, AuthStep::Done);
/// # Ok::<(), connlab::pg::auth::AuthError>(())
/// ```
///
/// Its `Debug` never shows the password.
pub struct Authenticator {
    user: String,
    password: Option<String>,
    method: Option<&'static str>,
    phase: Phase,
    require: RequireAuth,
    iterations: RangeInclusive<u32>,
    binding_policy: ChannelBinding,
    /// The TLS server certificate (DER), when the connection is TLS.
    server_certificate: Option<Vec<u8>>,
    /// The SCRAM exchange in progress or done is bound to TLS.
    bound: bool,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("method", &self.method)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    /// An authenticator for `user` (the StartupMessage's user; MD5 needs it) with an optional password.
    pub fn new(user: &str, password: Option<&str>) -> Authenticator {
        Authenticator {
            user: user.to_owned(),
            password: password.map(str::to_owned),
            method: None,
            phase: Phase::Start,
            require: RequireAuth::any(),
            iterations: scram::DEFAULT_MIN_ITERATIONS..=scram::DEFAULT_MAX_ITERATIONS,
            binding_policy: ChannelBinding::Prefer,
            server_certificate: None,
            bound: false,
        }
    }

    /// Channel binding: the `channel_binding` policy, and the server's TLS certificate (DER) when
    /// the connection is TLS (`None` in plaintext). With a certificate and a server that offers
    /// `SCRAM-SHA-256-PLUS`, SCRAM binds itself to the TLS session unless the policy is `Disable`;
    /// under `Require`, anything else is refused (plaintext, no `-PLUS` offered, a method that is
    /// not SCRAM at all).
    pub fn channel_binding(mut self, policy: ChannelBinding, server_certificate: Option<Vec<u8>>) -> Authenticator {
        self.binding_policy = policy;
        self.server_certificate = server_certificate;
        self
    }

    /// Is the SCRAM exchange bound to the TLS session (`SCRAM-SHA-256-PLUS`)?
    pub fn is_bound(&self) -> bool {
        self.bound
    }

    /// Let the server use only the methods `require` allows (by default, any).
    pub fn require(mut self, require: RequireAuth) -> Authenticator {
        self.require = require;
        self
    }

    /// Run SCRAM only for an iteration count within `range` (see [`ScramSha256::accept_iterations`]).
    pub fn scram_iterations(mut self, range: RangeInclusive<u32>) -> Authenticator {
        self.iterations = range;
        self
    }

    /// The method the server chose, once it has: `"trust"`, `"cleartext password"`, `"MD5"`,
    /// `"SCRAM-SHA-256"`.
    pub fn method(&self) -> Option<&'static str> {
        self.method
    }

    /// Answer one Authentication message, appending the reply (if any) to `out`.
    pub fn respond(&mut self, request: &Authentication<'_>, out: &mut Vec<u8>) -> Result<AuthStep, AuthError> {
        self.check_binding(request)?;
        match request {
            Authentication::Ok => {
                // A server that skips SCRAM's last step would skip proving it knows the password:
                // AuthenticationOk is only believed once the server signature checked out.
                if let Phase::Scram(scram) = &self.phase {
                    if !scram.is_verified() {
                        return Err(AuthError::Unexpected(
                            "AuthenticationOk before the server's SCRAM signature",
                        ));
                    }
                }
                if matches!(self.phase, Phase::Start) {
                    // No challenge at all: the `none` method, which require_auth may refuse.
                    self.check_allowed(AuthMethod::None)?;
                }
                self.method.get_or_insert("trust");
                self.phase = Phase::Done;
                Ok(AuthStep::Done)
            }
            Authentication::CleartextPassword => {
                self.check_allowed(AuthMethod::Password)?;
                self.expect_start("cleartext password")?;
                let password = self
                    .password
                    .as_deref()
                    .ok_or(AuthError::PasswordRequired("cleartext password"))?;
                frontend::password_message(out, password)?;
                self.phase = Phase::PasswordSent;
                Ok(AuthStep::Send)
            }
            Authentication::Md5Password { salt } => {
                self.check_allowed(AuthMethod::Md5)?;
                self.expect_start("MD5")?;
                let password = self.password.as_deref().ok_or(AuthError::PasswordRequired("MD5"))?;
                frontend::password_message(out, &md5_password(&self.user, password, *salt))?;
                self.phase = Phase::PasswordSent;
                Ok(AuthStep::Send)
            }
            Authentication::Sasl(mechanisms) => {
                self.check_allowed(AuthMethod::ScramSha256)?;
                self.expect_start("SASL")?;
                let (mechanism, binding) = self.choose_binding(&mechanisms.iter().collect::<Vec<_>>())?;
                let password = self.password.as_deref().ok_or(AuthError::PasswordRequired(mechanism))?;
                self.bound = matches!(binding, Binding::TlsServerEndPoint(_));
                self.method = Some(mechanism);
                let scram = ScramSha256::new(password)?
                    .accept_iterations(self.iterations.clone())
                    .with_binding(binding);
                frontend::sasl_initial_response(out, mechanism, scram.client_first())?;
                self.phase = Phase::Scram(Box::new(scram));
                Ok(AuthStep::Send)
            }
            Authentication::SaslContinue(data) => {
                let Phase::Scram(scram) = &mut self.phase else {
                    return Err(AuthError::Unexpected(
                        "AuthenticationSASLContinue outside a SASL exchange",
                    ));
                };
                let client_final = scram.server_first(data)?;
                frontend::sasl_response(out, &client_final)?;
                Ok(AuthStep::Send)
            }
            Authentication::SaslFinal(data) => {
                let Phase::Scram(scram) = &mut self.phase else {
                    return Err(AuthError::Unexpected("AuthenticationSASLFinal outside a SASL exchange"));
                };
                scram.server_final(data)?;
                Ok(AuthStep::Wait)
            }
            Authentication::Gss | Authentication::GssContinue(_) => {
                self.check_allowed(AuthMethod::Gss)?;
                Err(AuthError::UnsupportedMethod(request.method_name()))
            }
            Authentication::Sspi => {
                self.check_allowed(AuthMethod::Sspi)?;
                Err(AuthError::UnsupportedMethod(request.method_name()))
            }
            Authentication::KerberosV5 => Err(AuthError::UnsupportedMethod(request.method_name())),
        }
    }

    /// Under `channel_binding=require`, refuse any request but SCRAM's, and an AuthenticationOk
    /// that does not end a bound exchange: a server (or middleman) that says "trust" or asks for a
    /// password would otherwise skip the binding altogether (libpq refuses the same way).
    fn check_binding(&self, request: &Authentication<'_>) -> Result<(), AuthError> {
        if self.binding_policy != ChannelBinding::Require {
            return Ok(());
        }
        match request {
            Authentication::Sasl(_) | Authentication::SaslContinue(_) | Authentication::SaslFinal(_) => Ok(()),
            Authentication::Ok if self.bound => Ok(()),
            Authentication::Ok => Err(AuthError::ChannelBindingRequired(
                "the server let us in without a SCRAM-SHA-256-PLUS exchange",
            )),
            _ => Err(AuthError::ChannelBindingRequired(
                "the server asks for a method other than SCRAM, which cannot bind to TLS",
            )),
        }
    }

    /// The SASL mechanism and the GS2 binding: `-PLUS` when we have TLS, the policy allows it and
    /// the server offers it; otherwise plain SCRAM saying `y` (we could have, with TLS) or `n`.
    fn choose_binding(&self, offered: &[&str]) -> Result<(&'static str, Binding), AuthError> {
        let usable = self.binding_policy != ChannelBinding::Disable;
        match &self.server_certificate {
            Some(cert) if usable && offered.contains(&scram::SCRAM_SHA_256_PLUS) => Ok((
                scram::SCRAM_SHA_256_PLUS,
                Binding::TlsServerEndPoint(channel_binding::tls_server_end_point(cert)?),
            )),
            _ if self.binding_policy == ChannelBinding::Require => {
                Err(AuthError::ChannelBindingRequired(match self.server_certificate {
                    None => "the connection is not TLS (see sslmode)",
                    Some(_) => "the server does not offer SCRAM-SHA-256-PLUS",
                }))
            }
            Some(_) if usable => Ok((choose_mechanism(offered.iter().copied())?, Binding::NotOffered)),
            _ => Ok((choose_mechanism(offered.iter().copied())?, Binding::None)),
        }
    }

    /// Refuse, before answering anything, a method the policy does not allow.
    fn check_allowed(&self, method: AuthMethod) -> Result<(), AuthError> {
        match self.require.allows(method) {
            true => Ok(()),
            false => Err(AuthError::MethodRefused {
                method,
                allowed: self.require,
            }),
        }
    }

    fn expect_start(&mut self, method: &'static str) -> Result<(), AuthError> {
        if !matches!(self.phase, Phase::Start) {
            return Err(AuthError::Unexpected("a second authentication request"));
        }
        self.method = Some(match method {
            "SASL" => scram::SCRAM_SHA_256,
            m => m,
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn md5_matches_postgres_formula() {
        // From PostgreSQL's own formula: SELECT 'md5' || md5(md5('secret' || 'alice') || 'salt');
        assert_eq!(
            md5_password("alice", "secret", *b"salt"),
            "md5986e2194384c07f4fd1df4b1351b3e68"
        );
    }

    #[test]
    fn plus_only_server_is_refused_by_name() {
        let err = choose_mechanism(["SCRAM-SHA-256-PLUS"]).unwrap_err();
        assert!(err.to_string().contains("SCRAM-SHA-256-PLUS"), "{err}");
        assert_eq!(
            choose_mechanism(["SCRAM-SHA-256-PLUS", "SCRAM-SHA-256"]).unwrap(),
            "SCRAM-SHA-256"
        );
    }

    #[test]
    fn authentication_ok_before_scram_proof_is_refused() {
        let mut auth = Authenticator::new("u", Some("p"));
        let mut out = Vec::new();
        let body = b"SCRAM-SHA-256\0\0";
        let mut frame = vec![b'R'];
        frame.extend_from_slice(&(8 + body.len() as i32).to_be_bytes());
        frame.extend_from_slice(&10i32.to_be_bytes());
        frame.extend_from_slice(body);
        let (msg, _) = crate::pg::protocol::Decoder::new().decode(&frame).unwrap().unwrap();
        let crate::pg::protocol::Message::Authentication(req) = msg else {
            panic!()
        };
        assert_eq!(auth.respond(&req, &mut out).unwrap(), AuthStep::Send);
        assert!(matches!(
            auth.respond(&Authentication::Ok, &mut out),
            Err(AuthError::Unexpected(_))
        ));
    }

    #[test]
    fn a_refused_method_is_refused_before_anything_is_written() {
        let only_scram = RequireAuth::parse("scram-sha-256").unwrap();
        let mut out = Vec::new();
        let mut auth = Authenticator::new("u", Some("hunter2")).require(only_scram);
        let err = auth.respond(&Authentication::CleartextPassword, &mut out).unwrap_err();
        assert!(matches!(
            err,
            AuthError::MethodRefused {
                method: AuthMethod::Password,
                ..
            }
        ));
        assert!(out.is_empty(), "the password must not be encoded");
        let mut auth = Authenticator::new("u", Some("hunter2")).require(only_scram);
        let err = auth.respond(&Authentication::Ok, &mut out).unwrap_err();
        assert!(matches!(
            err,
            AuthError::MethodRefused {
                method: AuthMethod::None,
                ..
            }
        ));
    }

    #[test]
    fn debug_never_shows_the_password() {
        let auth = Authenticator::new("u", Some("hunter2"));
        assert!(!format!("{auth:?}").contains("hunter2"));
    }

    #[test]
    fn gssapi_is_refused_by_name() {
        let err = Authenticator::new("u", None)
            .respond(&Authentication::Gss, &mut Vec::new())
            .unwrap_err();
        assert_eq!(err, AuthError::UnsupportedMethod("GSSAPI"));
    }
}
