//! SCRAM-SHA-256, the client side, as a sans-IO state machine.
//!
//! Messages (carried in SASLInitialResponse / AuthenticationSASLContinue / SASLResponse /
//! AuthenticationSASLFinal):
//!
//! ```text
//! client-first  n,,n=,r=<client nonce>
//! server-first  r=<client nonce + server nonce>,s=<salt, base64>,i=<iterations>
//! client-final  c=biws,r=<full nonce>,p=<ClientProof, base64>
//! server-final  v=<ServerSignature, base64>        (or e=<error>)
//! ```
//!
//! Specs: RFC 5802 §3 and §5 (SCRAM), RFC 7677 (the SHA-256 variant and its test vector),
//! <https://www.postgresql.org/docs/current/sasl-authentication.html#SASL-SCRAM-SHA-256>.
//!
//! The point of SCRAM is that *both* sides prove something. We prove we know the password without
//! sending it (ClientProof); the server proves it knows the password's salted hash (ServerSignature),
//! so a fake server that merely accepts us is caught. That second check is the one a careless client
//! skips; here it is [`ScramSha256::server_final`], and it compares in constant time.
//!
//! Channel binding (`SCRAM-SHA-256-PLUS`, RFC 5802 §6) ties the exchange to the TLS session: the
//! GS2 header becomes `p=tls-server-end-point,,` and client-final's `c=` carries, besides the header,
//! a hash of the server's certificate ([`Binding`], computed in `channel_binding.rs`). Without TLS
//! the header is `n,,` ("client does not support channel binding"); with TLS but a server that did
//! not offer the `-PLUS` mechanism it is `y,,` ("I could have, you did not offer"), which lets a
//! server that *did* offer it detect a middleman who stripped it from the list.

use std::ops::RangeInclusive;

use base64ct::{Base64, Encoding};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

use super::AuthError;

type HmacSha256 = Hmac<Sha256>;

/// The mechanism's name in AuthenticationSASL and SASLInitialResponse.
pub const SCRAM_SHA_256: &str = "SCRAM-SHA-256";
/// The channel-binding variant, which needs TLS; offered by servers with SSL on.
pub const SCRAM_SHA_256_PLUS: &str = "SCRAM-SHA-256-PLUS";

/// GS2 header: `n` = no channel binding, and no authorization identity. RFC 5802 §7.
pub const GS2_HEADER: &str = "n,,";

/// The channel-binding flag of the GS2 header, and the binding data that goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Binding {
    /// `n,,`: this client does not do channel binding (no TLS, or `channel_binding=disable`).
    #[default]
    None,
    /// `y,,`: this client could bind, but the server did not offer `SCRAM-SHA-256-PLUS`.
    NotOffered,
    /// `p=tls-server-end-point,,` and the hash of the server's certificate (RFC 5929 §4).
    TlsServerEndPoint(Vec<u8>),
}

impl Binding {
    /// The GS2 header this binding starts client-first with.
    pub fn gs2_header(&self) -> &'static str {
        match self {
            Binding::None => GS2_HEADER,
            Binding::NotOffered => "y,,",
            Binding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    /// client-final's `c=`: base64 of the GS2 header and the binding data (`biws` for `n,,`).
    fn c_attribute(&self) -> String {
        let mut input = self.gs2_header().as_bytes().to_vec();
        if let Binding::TlsServerEndPoint(data) = self {
            input.extend_from_slice(data);
        }
        Base64::encode_string(&input)
    }
}

/// Random bytes in our nonce: 18 bytes is 144 bits, 24 characters of base64 (libpq uses the same).
pub const NONCE_BYTES: usize = 18;

/// The fewest PBKDF2 iterations accepted unless configured otherwise ([`ScramSha256::accept_iterations`],
/// `Config::scram_iterations`). 4096 is PostgreSQL's default and the count RFC 7677 §4 says a server
/// SHOULD use at least; the RFC asks nothing of the client, so refusing fewer is *our* policy, not
/// the standard's. Why refuse by default: the salt, the nonces and our ClientProof cross the wire, so
/// an eavesdropper (or a fake server that picked `i=1`) can test password guesses offline, and the
/// iteration count is what makes each guess expensive. The price: PostgreSQL 16 lets an administrator
/// lower `scram_iterations`, and a login to such a server fails with an error saying so until the
/// client lowers this floor too.
pub const DEFAULT_MIN_ITERATIONS: u32 = 4096;
/// The most PBKDF2 iterations accepted unless configured otherwise. PBKDF2 runs on the caller's
/// thread, so while it runs a single-threaded reactor runs nothing else: at 150-260 ns per iteration
/// here (4096 take about 0.6 ms: `docs/protocol.md`), a hostile server asking for 10 million froze
/// every task for 2.6 s, and `i=2^31` would pin a core for minutes. One million (0.15-0.26 s by
/// that rate: arithmetic, not a measurement) is
/// 244 times PostgreSQL's default and above the 600,000 OWASP recommended in 2023 for
/// PBKDF2-HMAC-SHA-256; a server configured beyond it needs the ceiling raised.
pub const DEFAULT_MAX_ITERATIONS: u32 = 1_000_000;

/// The key length: SHA-256's output.
const KEY_LEN: usize = 32;

/// Where the exchange is.
enum State {
    /// client-first built, waiting for server-first.
    ClientFirstSent,
    /// client-final sent, waiting for server-final; holds what the server's signature must equal.
    ClientFinalSent {
        server_key: [u8; KEY_LEN],
        auth_message: String,
    },
    /// The server proved itself.
    Verified,
    /// An error happened; every later step fails.
    Failed,
}

/// A SCRAM-SHA-256 client exchange. Build it with [`new`](Self::new), send
/// [`client_first`](Self::client_first), feed the server's two messages to
/// [`server_first`](Self::server_first) and [`server_final`](Self::server_final).
pub struct ScramSha256 {
    /// The password after SASLprep (or as given, if SASLprep refused it).
    password: Vec<u8>,
    client_nonce: String,
    /// `n=<user>,r=<nonce>`: part of the AuthMessage both proofs sign.
    client_first_bare: String,
    /// The GS2 header + client_first_bare.
    client_first: String,
    /// What the GS2 header said, and the TLS binding data if any.
    binding: Binding,
    /// The PBKDF2 iteration counts we agree to run.
    iterations: RangeInclusive<u32>,
    state: State,
}

impl std::fmt::Debug for ScramSha256 {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password, nor keys derived from it.
        f.debug_struct("ScramSha256")
            .field("client_first", &self.client_first)
            .finish_non_exhaustive()
    }
}

impl ScramSha256 {
    /// Start an exchange with a fresh random nonce from the kernel's CSPRNG (`getrandom(2)`).
    ///
    /// The user name in `n=` is left empty, as libpq does: PostgreSQL ignores it and uses the user of
    /// the StartupMessage.
    pub fn new(password: &str) -> Result<ScramSha256, AuthError> {
        let mut raw = [0u8; NONCE_BYTES];
        getrandom::fill(&mut raw).map_err(|e| AuthError::Random(e.to_string()))?;
        Ok(ScramSha256::with_nonce("", password, &Base64::encode_string(&raw)))
    }

    /// Start an exchange with a given user name and nonce. For test vectors (RFC 7677 uses `user` and
    /// a published nonce); a real client must use [`new`](Self::new): a predictable nonce lets a
    /// recorded exchange be replayed.
    pub fn with_nonce(user: &str, password: &str, nonce: &str) -> ScramSha256 {
        // ANCHOR: saslprep
        // RFC 5802 §2.2 asks for SASLprep (RFC 4013) of the password. PostgreSQL applies it when it
        // can and otherwise uses the raw bytes (a password that is not valid UTF-8, or holds characters
        // SASLprep prohibits, was stored that way too), so we do the same or we could never log in.
        let password = match stringprep::saslprep(password) {
            Ok(prepped) => prepped.as_bytes().to_vec(),
            Err(_) => password.as_bytes().to_vec(),
        };
        // ANCHOR_END: saslprep
        let client_first_bare = format!("n={},r={nonce}", escape_username(user));
        let client_first = format!("{GS2_HEADER}{client_first_bare}");
        ScramSha256 {
            password,
            client_nonce: nonce.to_owned(),
            client_first_bare,
            client_first,
            binding: Binding::None,
            iterations: DEFAULT_MIN_ITERATIONS..=DEFAULT_MAX_ITERATIONS,
            state: State::ClientFirstSent,
        }
    }

    /// Accept a server's iteration count only within `range` (by default
    /// [`DEFAULT_MIN_ITERATIONS`]`..=`[`DEFAULT_MAX_ITERATIONS`]; see there for why each end).
    pub fn accept_iterations(mut self, range: RangeInclusive<u32>) -> ScramSha256 {
        self.iterations = range;
        self
    }

    /// Bind the exchange to TLS (or say why not): sets the GS2 header of
    /// [`client_first`](Self::client_first) and the `c=` of client-final. Call it before sending.
    pub fn with_binding(mut self, binding: Binding) -> ScramSha256 {
        self.client_first = format!("{}{}", binding.gs2_header(), self.client_first_bare);
        self.binding = binding;
        self
    }

    /// The client-first-message, for SASLInitialResponse.
    pub fn client_first(&self) -> &[u8] {
        self.client_first.as_bytes()
    }

    /// Read server-first (from AuthenticationSASLContinue) and return client-final (for SASLResponse).
    ///
    /// Checks: the server's nonce extends ours, the salt is base64, the iteration count is within the
    /// accepted range ([`accept_iterations`](Self::accept_iterations)). This is where PBKDF2 runs:
    /// the expensive step.
    pub fn server_first(&mut self, data: &[u8]) -> Result<Vec<u8>, AuthError> {
        if !matches!(self.state, State::ClientFirstSent) {
            return Err(self.fail(AuthError::Unexpected("a second SCRAM server-first-message")));
        }
        match self.compute_client_final(data) {
            Ok((client_final, server_key, auth_message)) => {
                self.state = State::ClientFinalSent {
                    server_key,
                    auth_message,
                };
                Ok(client_final)
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    fn compute_client_final(&self, data: &[u8]) -> Result<(Vec<u8>, [u8; KEY_LEN], String), AuthError> {
        let server_first = std::str::from_utf8(data).map_err(|_| malformed("server-first-message is not UTF-8"))?;
        let mut parts = server_first.split(',');
        if server_first.starts_with("m=") {
            // RFC 5802 §5.1: a mandatory extension we do not know means we must fail.
            return Err(malformed("server-first-message has a mandatory extension (m=)"));
        }
        let nonce = attribute(parts.next(), 'r').ok_or(malformed("server-first-message has no nonce (r=)"))?;
        let salt = attribute(parts.next(), 's').ok_or(malformed("server-first-message has no salt (s=)"))?;
        let iterations =
            attribute(parts.next(), 'i').ok_or(malformed("server-first-message has no iterations (i=)"))?;
        // Anything after i= is an optional extension (RFC 5802 §5.1): ignored.

        // ANCHOR: nonce_check
        // The server appends its own random part to ours. If the nonce does not start with ours this
        // is not an answer to *this* exchange (a replay, or a confused server); if it adds nothing the
        // server contributed no freshness.
        if !nonce.starts_with(&self.client_nonce) || nonce.len() == self.client_nonce.len() {
            return Err(AuthError::NonceMismatch);
        }
        // ANCHOR_END: nonce_check
        if !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b',') {
            return Err(malformed("server nonce has characters outside printable ASCII"));
        }
        let salt = Base64::decode_vec(salt).map_err(|_| malformed("salt (s=) is not valid base64"))?;
        if salt.is_empty() {
            return Err(malformed("salt (s=) is empty"));
        }
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| malformed("iteration count (i=) is not a number"))?;
        if !self.iterations.contains(&iterations) {
            return Err(AuthError::IterationsOutOfRange {
                asked: iterations,
                min: *self.iterations.start(),
                max: *self.iterations.end(),
            });
        }

        // ANCHOR: proof
        // SaltedPassword := PBKDF2-HMAC-SHA-256(password, salt, i)   (the only expensive line)
        let mut salted_password = [0u8; KEY_LEN];
        pbkdf2::pbkdf2_hmac::<Sha256>(&self.password, &salt, iterations, &mut salted_password);
        // ClientKey := HMAC(SaltedPassword, "Client Key");  StoredKey := SHA-256(ClientKey)
        let client_key = hmac(&salted_password, b"Client Key");
        let stored_key: [u8; KEY_LEN] = Sha256::digest(client_key).into();
        // AuthMessage := client-first-bare "," server-first "," client-final-without-proof
        let client_final_without_proof = format!("c={},r={nonce}", self.binding.c_attribute());
        let auth_message = format!("{},{server_first},{client_final_without_proof}", self.client_first_bare);
        // ClientProof := ClientKey XOR HMAC(StoredKey, AuthMessage)
        let client_signature = hmac(&stored_key, auth_message.as_bytes());
        let mut proof = client_key;
        for (p, s) in proof.iter_mut().zip(client_signature) {
            *p ^= s;
        }
        // ServerKey := HMAC(SaltedPassword, "Server Key"), kept to check the server's answer.
        let server_key = hmac(&salted_password, b"Server Key");
        // ANCHOR_END: proof

        let client_final = format!("{client_final_without_proof},p={}", Base64::encode_string(&proof));
        Ok((client_final.into_bytes(), server_key, auth_message))
    }

    /// Read server-final (from AuthenticationSASLFinal) and check the server's signature.
    ///
    /// Refuses `e=` (the server's own SCRAM error) and a signature that does not match: a server that
    /// cannot produce it does not know the password's verifier, whatever it says next.
    pub fn server_final(&mut self, data: &[u8]) -> Result<(), AuthError> {
        let State::ClientFinalSent {
            server_key,
            auth_message,
        } = &self.state
        else {
            return Err(self.fail(AuthError::Unexpected(
                "a SCRAM server-final-message before server-first",
            )));
        };
        let result = verify_server_final(server_key, auth_message, data);
        match result {
            Ok(()) => {
                self.state = State::Verified;
                Ok(())
            }
            Err(e) => Err(self.fail(e)),
        }
    }

    /// Did the server prove it knows the password?
    pub fn is_verified(&self) -> bool {
        matches!(self.state, State::Verified)
    }

    fn fail(&mut self, e: AuthError) -> AuthError {
        self.state = State::Failed;
        e
    }
}

fn verify_server_final(server_key: &[u8; KEY_LEN], auth_message: &str, data: &[u8]) -> Result<(), AuthError> {
    let text = std::str::from_utf8(data).map_err(|_| malformed("server-final-message is not UTF-8"))?;
    if let Some(error) = text.strip_prefix("e=") {
        return Err(AuthError::ServerError(error.to_owned()));
    }
    let verifier = attribute(text.split(',').next(), 'v').ok_or(malformed("server-final-message has no v="))?;
    let signature = Base64::decode_vec(verifier).map_err(|_| malformed("server signature (v=) is not base64"))?;
    // ANCHOR: verify
    // ServerSignature := HMAC(ServerKey, AuthMessage). `verify_slice` compares in constant time, so
    // a fake server cannot learn the right signature byte by byte from how long we take to refuse.
    let mut mac = HmacSha256::new_from_slice(server_key).map_err(|_| malformed("server key"))?;
    mac.update(auth_message.as_bytes());
    mac.verify_slice(&signature).map_err(|_| AuthError::BadServerSignature)
    // ANCHOR_END: verify
}

fn hmac(key: &[u8], data: &[u8]) -> [u8; KEY_LEN] {
    // HMAC accepts keys of any length (long ones are hashed first), so this cannot fail.
    let mut mac =
        <HmacSha256 as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// `Some(value)` if `part` is `name=value`.
fn attribute(part: Option<&str>, name: char) -> Option<&str> {
    let part = part?;
    let rest = part.strip_prefix(name)?;
    rest.strip_prefix('=')
}

/// RFC 5802 §5.1: in a saslname, `=` is written `=3D` and `,` is written `=2C`.
fn escape_username(user: &str) -> String {
    user.replace('=', "=3D").replace(',', "=2C")
}

fn malformed(what: &'static str) -> AuthError {
    AuthError::Malformed(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 7677 §3: user "user", password "pencil".
    const CLIENT_NONCE: &str = "rOprNGfwEbeRWgbNEkqO";
    const SERVER_FIRST: &str = "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
    const CLIENT_FINAL: &str =
        "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=";
    const SERVER_FINAL: &str = "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=";

    #[test]
    fn rfc7677_test_vector() {
        let mut scram = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE);
        assert_eq!(scram.client_first(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let client_final = scram.server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&client_final).unwrap(), CLIENT_FINAL);
        scram.server_final(SERVER_FINAL.as_bytes()).unwrap();
        assert!(scram.is_verified());
    }

    #[test]
    fn saslprep_maps_the_password_before_hashing() {
        // U+00AD SOFT HYPHEN is "mapped to nothing" by SASLprep (RFC 4013 §2.1), so this password
        // must give exactly the RFC's proof for "pencil".
        let mut scram = ScramSha256::with_nonce("user", "pen\u{00AD}cil", CLIENT_NONCE);
        let client_final = scram.server_first(SERVER_FIRST.as_bytes()).unwrap();
        assert_eq!(std::str::from_utf8(&client_final).unwrap(), CLIENT_FINAL);
    }

    #[test]
    fn password_that_saslprep_refuses_is_used_as_raw_bytes() {
        // U+0007 BELL is prohibited by SASLprep; PostgreSQL then uses the bytes as they are, so do we.
        let raw = ScramSha256::with_nonce("user", "pencil\u{7}", CLIENT_NONCE);
        assert_eq!(raw.password, b"pencil\x07");
    }

    #[test]
    fn wrong_server_signature_is_refused() {
        let mut scram = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE);
        scram.server_first(SERVER_FIRST.as_bytes()).unwrap();
        let err = scram
            .server_final(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(matches!(err, AuthError::BadServerSignature));
        assert!(!scram.is_verified());
    }

    #[test]
    fn nonce_that_does_not_extend_ours_is_refused() {
        let mut scram = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE);
        let err = scram
            .server_first(b"r=somebodyElse123,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap_err();
        assert!(matches!(err, AuthError::NonceMismatch));
    }

    #[test]
    fn iteration_count_is_bounded_both_ways() {
        for i in [1, DEFAULT_MIN_ITERATIONS - 1, DEFAULT_MAX_ITERATIONS + 1, 10_000_000] {
            let mut scram = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE);
            let msg = format!("r={CLIENT_NONCE}xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i={i}");
            let err = scram.server_first(msg.as_bytes()).unwrap_err();
            assert!(
                matches!(err, AuthError::IterationsOutOfRange { asked, .. } if asked == i),
                "{err:?}"
            );
        }
    }

    #[test]
    fn iteration_bounds_are_a_choice_the_caller_can_change() {
        // A server with `scram_iterations = 1000` (allowed since PostgreSQL 16): refused by default,
        // accepted once the floor is lowered.
        let msg = format!("r={CLIENT_NONCE}xyz,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=1000");
        let mut strict = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE);
        let err = strict.server_first(msg.as_bytes()).unwrap_err();
        assert!(
            err.to_string().contains("1000") && err.to_string().contains("4096"),
            "{err}"
        );
        let mut lowered = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE).accept_iterations(1000..=1000);
        assert!(lowered.server_first(msg.as_bytes()).is_ok());
    }

    #[test]
    fn server_error_attribute_is_reported() {
        let mut scram = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE);
        scram.server_first(SERVER_FIRST.as_bytes()).unwrap();
        let err = scram.server_final(b"e=invalid-proof").unwrap_err();
        assert!(matches!(err, AuthError::ServerError(ref e) if e == "invalid-proof"));
    }

    #[test]
    fn unbound_c_attribute_is_the_rfcs_biws() {
        assert_eq!(Binding::None.c_attribute(), "biws");
        assert_eq!(Binding::NotOffered.c_attribute(), "eSws");
    }

    #[test]
    fn tls_binding_changes_the_header_and_the_proof() {
        let binding = Binding::TlsServerEndPoint(vec![0xab; 32]);
        let mut bound = ScramSha256::with_nonce("user", "pencil", CLIENT_NONCE).with_binding(binding);
        assert!(bound.client_first().starts_with(b"p=tls-server-end-point,,n=user,r="));
        let client_final = String::from_utf8(bound.server_first(SERVER_FIRST.as_bytes()).unwrap()).unwrap();
        let c = client_final.strip_prefix("c=").unwrap().split(',').next().unwrap();
        let decoded = Base64::decode_vec(c).unwrap();
        assert_eq!(&decoded[..24], b"p=tls-server-end-point,,");
        assert_eq!(&decoded[24..], &[0xab; 32]);
        assert_ne!(client_final, CLIENT_FINAL, "the proof signs the binding too");
    }

    #[test]
    fn random_nonce_is_24_base64_chars() {
        let scram = ScramSha256::new("pw").unwrap();
        let first = std::str::from_utf8(scram.client_first()).unwrap();
        let nonce = first.strip_prefix("n,,n=,r=").unwrap();
        assert_eq!(nonce.len(), 24);
    }
}
