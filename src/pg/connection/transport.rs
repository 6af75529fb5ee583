//! Beneath the framing: the bytes travel in clear, or through a TLS session.
//!
//! [`Wire`](super::wire::Wire) reads and writes through a [`Transport`] and
//! never asks which one it has. For TLS the session is rustls's
//! [`ClientConnection`], which does no I/O of its own (sans-IO, like our
//! `pg::protocol`): we hand it the ciphertext our socket read, it hands us
//! plaintext and the ciphertext to write. So the same reactor, the same
//! non-blocking socket and the same EAGAIN-then-wait loop carry TLS too,
//! with no second runtime underneath:
//!
//! ```text
//! read:  socket ──read(2)──▶ inbox ──read_tls──▶ rustls ──process_new_packets──▶ reader() ──▶ rbuf
//! write: wbuf ──writer()──▶ rustls ──write_tls──▶ outbox ──write(2)──▶ socket
//! ```
//!
//! Before any of it, the SSLRequest exchange ([`negotiate`]):
//!
//! ```text
//! → SSLRequest (8 bytes: length 8, code 80877103)
//! ← 'S'  then the TLS handshake, then the StartupMessage inside TLS
//! ← 'N'  plaintext (sslmode=prefer) or a refusal (require, verify-ca, verify-full)
//! ```
//!
//! The answer is ONE byte, read before anything is encrypted. A server (or
//! a machine in the middle) that sends more bytes behind it is refused:
//! those bytes were not protected by the TLS handshake that follows, yet a
//! careless client would read them later as if they had been (libpq's
//! CVE-2021-23222, and the server side's CVE-2021-23214).
//!
//! Spec: protocol §55.2.10 "SSL Session Encryption"; rustls's
//! `ConnectionCommon` docs for the read_tls/process_new_packets/write_tls
//! loop; RFC 8446 §5.1 for the record header the narrator reads.

use std::cell::{Cell, RefCell};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::net::Stream;
use crate::pg::protocol::frontend;
use crate::pg::tls::TlsConfig;

use super::Error;

/// One `read(2)` of ciphertext at most: a TLS record is at most 16 KiB of
/// payload plus its header and the AEAD tag.
const TLS_READ: usize = 16 * 1024 + 256;

/// The server's answer to an SSLRequest: TLS may begin.
pub const SSL_YES: u8 = b'S';
/// The server's answer to an SSLRequest: this server does not do TLS.
pub const SSL_NO: u8 = b'N';

/// The bytes beneath the framing.
pub(super) enum Transport {
    /// Straight onto the socket.
    Plain(Stream),
    /// Through a TLS session.
    Tls(Box<TlsStream>),
}

/// A socket and the rustls session that encrypts it.
pub(super) struct TlsStream {
    stream: Stream,
    /// Borrowed only between awaits, never across one: the futures that
    /// read and write share the connection through `&self`.
    session: RefCell<ClientConnection>,
    /// Ciphertext read but not yet taken by rustls (it takes no more while
    /// its plaintext buffer is full), and where it starts.
    inbox: RefCell<(Vec<u8>, usize)>,
    /// Ciphertext waiting for `write(2)`; kept to reuse its allocation.
    outbox: RefCell<Vec<u8>>,
    /// How long the handshake took, ClientHello to Finished.
    handshake: Cell<Duration>,
}

/// What the TLS leg cost and what it agreed on, for the narrator and the
/// connect timings.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// `TLSv1_3`, as rustls names it.
    pub protocol: String,
    /// The cipher suite, e.g. `TLS13_AES_256_GCM_SHA384`.
    pub cipher_suite: String,
    /// The server's certificate (DER), which channel binding hashes.
    pub server_certificate: Vec<u8>,
    /// The TLS handshake alone, ClientHello to Finished: the TLS leg of
    /// [`ConnectTimings`](super::ConnectTimings) less the SSLRequest's
    /// round trip (whose answer waits for the server to fork a backend).
    pub handshake: Duration,
}

impl std::fmt::Display for TlsInfo {
    /// `TLSv1_3 TLS13_AES_256_GCM_SHA384, server certificate 462 bytes`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}, server certificate {} bytes",
            self.protocol,
            self.cipher_suite,
            self.server_certificate.len()
        )
    }
}

impl Transport {
    pub(super) async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(stream) => stream.read(buf).await,
            Transport::Tls(tls) => tls.read(buf).await,
        }
    }

    pub(super) async fn write_all(&self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Plain(stream) => stream.write_all(buf).await,
            Transport::Tls(tls) => tls.write_all(buf).await,
        }
    }

    /// One non-blocking attempt to send `plain` (for Drop, which cannot
    /// wait): true if all of it, encrypted as needed, went out. Over TLS a
    /// close_notify alert follows, so the server sees a clean TLS shutdown.
    pub(super) fn send_now(&self, plain: &[u8]) -> bool {
        let fd = self.as_raw_fd();
        let bytes = match self {
            Transport::Plain(_) => plain.to_vec(),
            Transport::Tls(tls) => {
                let mut session = tls.session.borrow_mut();
                if session.writer().write_all(plain).is_err() {
                    return false;
                }
                session.send_close_notify();
                let mut out = Vec::new();
                while session.wants_write() {
                    if session.write_tls(&mut out).is_err() {
                        return false;
                    }
                }
                out
            }
        };
        matches!(crate::sys::socket::write(fd, &bytes), Ok(n) if n == bytes.len())
    }

    /// The TLS session's facts, if this is one.
    pub(super) fn tls_info(&self) -> Option<TlsInfo> {
        let Transport::Tls(tls) = self else { return None };
        let session = tls.session.borrow();
        Some(TlsInfo {
            protocol: session.protocol_version().map(|v| format!("{v:?}")).unwrap_or_default(),
            cipher_suite: session
                .negotiated_cipher_suite()
                .map(|s| format!("{:?}", s.suite()))
                .unwrap_or_default(),
            server_certificate: session
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|cert| cert.to_vec())
                .unwrap_or_default(),
            handshake: tls.handshake.get(),
        })
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        match self {
            Transport::Plain(stream) => stream.as_raw_fd(),
            Transport::Tls(tls) => tls.stream.as_raw_fd(),
        }
    }
}

// ANCHOR: negotiate
/// The SSLRequest exchange and, after `S`, the TLS handshake. Returns the
/// transport the StartupMessage will go through, and the server's answer
/// (`None` when no SSLRequest was sent). `host` is the name we dialled
/// (the one `verify-full` checks the certificate against).
pub(super) async fn negotiate(stream: Stream, host: &str, tls: &TlsConfig) -> Result<(Transport, Option<u8>), Error> {
    let mode = tls.effective_mode();
    if !mode.asks() || matches!(stream, Stream::Unix(_)) {
        return Ok((Transport::Plain(stream), None));
    }
    // Build the rustls configuration before writing a byte: a bad
    // sslrootcert is our mistake, not the server's.
    let config = tls.client_config().map_err(Error::Tls)?;
    let mut request = Vec::with_capacity(8);
    frontend::ssl_request(&mut request);
    crate::narrate!("→ SSLRequest (sslmode={mode})");
    stream.write_all(&request).await?;
    // Room for more than the one byte allowed, to see whether more came.
    let mut answer = [0u8; 64];
    let n = stream.read(&mut answer).await?;
    match answer[..n] {
        [] => Err(Error::Tls(
            "the server closed the connection instead of answering the SSLRequest".into(),
        )),
        [SSL_YES] => {
            crate::narrate!("← 'S': the server will speak TLS");
            let name = ServerName::try_from(host.to_string())
                .map_err(|e| Error::Tls(format!("{host:?} is not a valid TLS server name: {e}")))?;
            let session = ClientConnection::new(config, name).map_err(|e| Error::Tls(e.to_string()))?;
            let tls = TlsStream {
                stream,
                session: RefCell::new(session),
                inbox: RefCell::new((Vec::new(), 0)),
                outbox: RefCell::new(Vec::new()),
                handshake: Cell::new(Duration::ZERO),
            };
            tls.handshake().await?;
            Ok((Transport::Tls(Box::new(tls)), Some(SSL_YES)))
        }
        [SSL_YES, ..] => Err(Error::Tls(format!(
            "the server sent {} unencrypted bytes after its 'S' and before the TLS handshake; \
             refusing them (they could be injected: CVE-2021-23222)",
            n - 1
        ))),
        [SSL_NO] if mode.insists() => Err(Error::Tls(format!(
            "the server does not support TLS (it answered 'N' to the SSLRequest) and sslmode={mode} requires it"
        ))),
        [SSL_NO] => {
            crate::narrate!("← 'N': no TLS on this server; sslmode={mode} carries on in plaintext");
            Ok((Transport::Plain(stream), Some(SSL_NO)))
        }
        [other, ..] => Err(Error::Tls(format!(
            "the server answered the SSLRequest with {:?}, neither 'S' nor 'N'",
            char::from(other)
        ))),
    }
}
// ANCHOR_END: negotiate

impl TlsStream {
    // ANCHOR: handshake
    /// Drive the handshake: write what rustls has to send, read what it
    /// needs, until it is no longer handshaking. Every flight is narrated
    /// as the TLS records it is made of.
    async fn handshake(&self) -> Result<(), Error> {
        let started = Instant::now();
        loop {
            self.flush(true).await?;
            if !self.session.borrow().is_handshaking() {
                break;
            }
            if self.receive(true).await? == 0 {
                return Err(Error::Tls(
                    "the server closed the connection during the TLS handshake".into(),
                ));
            }
            if let Err(e) = self.feed() {
                // rustls queued an alert saying why; the server's log
                // shows it. Best effort: the error we return matters more.
                let _ = self.flush(true).await;
                return Err(Error::Tls(format!("handshake failed: {e}")));
            }
        }
        self.handshake.set(started.elapsed());
        let session = self.session.borrow();
        crate::narrate!(
            "TLS established in {:?}: {:?}, {:?}",
            self.handshake.get(),
            session.protocol_version(),
            session.negotiated_cipher_suite().map(|s| s.suite())
        );
        Ok(())
    }
    // ANCHOR_END: handshake

    /// Plaintext, as [`Stream::read`] gives bytes: at least one, or 0 at a
    /// clean end (the server's close_notify).
    async fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.session.borrow_mut().reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // EOF without close_notify: the stream may have been cut.
                Err(e) => return Err(e),
            }
            if self.unfed() {
                // Left over when rustls's plaintext buffer was full, and
                // now it is empty: no need to read the socket yet.
                if !self.feed()? {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "TLS: rustls takes no more ciphertext",
                    ));
                }
                continue;
            }
            // rustls may have something to say first (a KeyUpdate answer).
            self.flush(false).await?;
            if self.receive(false).await? == 0 {
                // Let rustls see the EOF: its reader then reports a clean
                // close (0) or a truncation (UnexpectedEof).
                self.session.borrow_mut().read_tls(&mut io::empty())?;
            }
            self.feed()?;
        }
    }

    /// Encrypt all of `buf` and send it. rustls refuses plaintext past its
    /// buffer limit, so large writes go out in turns.
    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            let n = self.session.borrow_mut().writer().write(buf)?;
            buf = &buf[n..];
            self.flush(false).await?;
        }
        Ok(())
    }

    /// Write every ciphertext byte rustls has queued.
    async fn flush(&self, narrate: bool) -> io::Result<()> {
        loop {
            let mut out = std::mem::take(&mut *self.outbox.borrow_mut());
            out.clear();
            {
                let mut session = self.session.borrow_mut();
                while session.wants_write() {
                    session.write_tls(&mut out)?;
                }
            }
            if out.is_empty() {
                *self.outbox.borrow_mut() = out;
                return Ok(());
            }
            if narrate {
                narrate_records("→", &out);
            }
            let sent = self.stream.write_all(&out).await;
            *self.outbox.borrow_mut() = out;
            sent?;
        }
    }

    /// One `read(2)` of ciphertext into the inbox (once rustls has taken
    /// what was there). Returns the bytes read; 0 is EOF.
    async fn receive(&self, narrate: bool) -> io::Result<usize> {
        let mut inbox = std::mem::take(&mut *self.inbox.borrow_mut());
        let (bytes, start) = &mut inbox;
        if *start == bytes.len() {
            bytes.clear();
            *start = 0;
        }
        let end = bytes.len();
        bytes.resize(end + TLS_READ, 0);
        let read = self.stream.read(&mut bytes[end..]).await;
        bytes.truncate(end + *read.as_ref().unwrap_or(&0));
        if narrate {
            narrate_records("←", &bytes[end..]);
        }
        *self.inbox.borrow_mut() = inbox;
        read
    }

    /// Is there ciphertext rustls has not taken yet?
    fn unfed(&self) -> bool {
        let inbox = self.inbox.borrow();
        inbox.1 < inbox.0.len()
    }

    /// Hand rustls the inbox's ciphertext and let it decrypt. Stops early
    /// when its plaintext buffer is full (the rest waits until the caller
    /// has read plaintext). Returns whether rustls took any.
    fn feed(&self) -> io::Result<bool> {
        let mut session = self.session.borrow_mut();
        let mut inbox = self.inbox.borrow_mut();
        let (bytes, start) = &mut *inbox;
        let mut took_any = false;
        while *start < bytes.len() {
            let taken = match session.read_tls(&mut &bytes[*start..]) {
                Ok(n) => n,
                // "received plaintext buffer full": plaintext must be read first.
                Err(e) if e.kind() == io::ErrorKind::Other && took_any => break,
                Err(e) => return Err(e),
            };
            *start += taken;
            took_any |= taken > 0;
            session
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, format!("TLS: {e}")))?;
            if taken == 0 {
                break;
            }
        }
        Ok(took_any)
    }
}

/// The `random` of a ServerHello that is really a HelloRetryRequest: the
/// SHA-256 of "HelloRetryRequest" (RFC 8446 §4.1.3).
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91, 0xc2, 0xa2, 0x11,
    0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// Is this handshake fragment a HelloRetryRequest? Its message type (1
/// byte) and length (3) come first, then the legacy version (2), then the
/// 32-byte random.
fn is_hello_retry(fragment: &[u8]) -> bool {
    fragment.get(6..38) == Some(&HELLO_RETRY_RANDOM[..])
}

/// Narrate the TLS records in `bytes` (see [`records`]).
fn narrate_records(direction: &str, bytes: &[u8]) {
    if !crate::trace::enabled() {
        return;
    }
    for (what, len, cut) in records(bytes) {
        let cut = if cut { " (continues in the next read)" } else { "" };
        crate::narrate!("{direction} TLS record {what}, {len} bytes{cut}");
    }
}

/// The TLS records in `bytes` (RFC 8446 §5.1: a content type, a legacy
/// version, a 16-bit length, then the fragment): what each is, its length,
/// and whether the read cut it short. Only handshake records sent before
/// encryption starts show which message they carry; in TLS 1.3 everything
/// after ServerHello is `application_data` to an onlooker, the certificate
/// included. Best effort, for the narrator: the bytes are the server's, so
/// nothing here indexes past what arrived.
fn records(mut bytes: &[u8]) -> Vec<(&'static str, usize, bool)> {
    let mut found = Vec::new();
    while let [kind, _, _, hi, lo, rest @ ..] = bytes {
        let len = usize::from(u16::from_be_bytes([*hi, *lo]));
        let what = match (kind, rest.first()) {
            (22, Some(1)) => "handshake: ClientHello",
            (22, Some(2)) if is_hello_retry(rest) => {
                "handshake: ServerHello (a HelloRetryRequest: another key share, please)"
            }
            (22, Some(2)) => "handshake: ServerHello",
            (22, Some(11)) => "handshake: Certificate",
            (22, Some(12)) => "handshake: ServerKeyExchange",
            (22, Some(14)) => "handshake: ServerHelloDone",
            (22, Some(16)) => "handshake: ClientKeyExchange",
            (22, _) => "handshake",
            (20, _) => "change_cipher_spec",
            (21, _) => "alert",
            (23, _) => "application_data (encrypted)",
            _ => "unknown record type",
        };
        found.push((what, len, rest.len() < len));
        bytes = rest.get(len..).unwrap_or_default();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_client_hello_then_a_cut_record_are_named() {
        let mut bytes = vec![22, 3, 1, 0, 2, 1, 0];
        bytes.extend([23, 3, 3, 0, 100, 0xaa]);
        assert_eq!(
            records(&bytes),
            [
                ("handshake: ClientHello", 2, false),
                ("application_data (encrypted)", 100, true)
            ]
        );
    }

    #[test]
    fn a_hello_retry_request_is_told_from_a_server_hello() {
        let mut fragment = vec![2, 0, 0, 0, 3, 3];
        fragment.extend(HELLO_RETRY_RANDOM);
        let mut bytes = vec![22, 3, 3, 0, fragment.len() as u8];
        bytes.extend(fragment);
        assert!(records(&bytes)[0].0.contains("HelloRetryRequest"));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let found = records(&bytes);
            prop_assert!(found.len() <= bytes.len() / 5 + 1);
        }
    }
}
