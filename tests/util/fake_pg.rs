//! A fake PostgreSQL server on loopback, scripted per test.
//!
//! The real throwaway server (`Cluster`) shows what PostgreSQL does; this
//! one plays the parts no real server will: one that cannot prove it knows
//! the password, asks for the password in clear, says nothing after the
//! TCP handshake, announces a gigabyte, or floods rows. It runs on plain
//! blocking `std::net` in a thread, so it shares nothing with the code under
//! test, and each accepted socket is handed to the test's script.
//!
//! Messages are built by hand here (not with connlab's encoders), so a bug
//! in the library cannot hide behind the same bug in its test peer.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

/// How long the fake server waits on a read before giving up on the client.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Authentication codes (the `R` message's first `Int32`).
pub const AUTH_OK: i32 = 0;
/// AuthenticationCleartextPassword.
pub const AUTH_CLEARTEXT: i32 = 3;
/// AuthenticationMD5Password.
pub const AUTH_MD5: i32 = 5;
/// AuthenticationSASL.
pub const AUTH_SASL: i32 = 10;
/// AuthenticationSASLContinue.
pub const AUTH_SASL_CONTINUE: i32 = 11;
/// AuthenticationSASLFinal.
pub const AUTH_SASL_FINAL: i32 = 12;

/// Serve `connections` connections, one after another, each on its own
/// thread, handing the `n`-th accepted socket to `script(n, socket)`.
/// Returns the URL (user and password `connlab`, no query string).
pub fn serve(connections: usize, script: impl Fn(usize, TcpStream) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let script = std::sync::Arc::new(script);
    std::thread::spawn(move || {
        for n in 0..connections {
            let Ok((sock, _)) = listener.accept() else { return };
            sock.set_read_timeout(Some(PATIENCE)).unwrap();
            let script = script.clone();
            std::thread::spawn(move || script(n, sock));
        }
    });
    format!("postgres://connlab:connlab@127.0.0.1:{port}/postgres")
}

/// A fake server for one connection; returns its URL.
pub fn fake_server(script: impl FnOnce(TcpStream) + Send + 'static) -> String {
    let once = std::sync::Mutex::new(Some(script));
    serve(1, move |_, sock| {
        if let Some(script) = once.lock().unwrap().take() {
            script(sock);
        }
    })
}

/// Bytes of one backend message: tag, length, body.
pub fn message(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// An Authentication message with `code` and `data` after it.
pub fn auth(code: i32, data: &[u8]) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    body.extend_from_slice(data);
    message(b'R', &body)
}

/// ParameterStatus `name` = `value`.
pub fn parameter_status(name: &str, value: &str) -> Vec<u8> {
    message(b'S', format!("{name}\0{value}\0").as_bytes())
}

/// ReadyForQuery, idle.
pub fn ready() -> Vec<u8> {
    message(b'Z', b"I")
}

/// A RowDescription of one `text` column named `name`.
pub fn one_text_column(name: &str) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(name.as_bytes());
    body.push(0);
    body.extend_from_slice(&0u32.to_be_bytes()); // table oid
    body.extend_from_slice(&0u16.to_be_bytes()); // column number
    body.extend_from_slice(&25u32.to_be_bytes()); // type oid: text
    body.extend_from_slice(&(-1i16).to_be_bytes()); // type size: varlena
    body.extend_from_slice(&(-1i32).to_be_bytes()); // type modifier
    body.extend_from_slice(&0u16.to_be_bytes()); // format: text
    message(b'T', &body)
}

/// A DataRow with one text field.
pub fn data_row(field: &[u8]) -> Vec<u8> {
    let mut body = 1u16.to_be_bytes().to_vec();
    body.extend_from_slice(&(field.len() as i32).to_be_bytes());
    body.extend_from_slice(field);
    message(b'D', &body)
}

/// The SSLRequest's body: its code, `1234 << 16 | 5679`.
pub const SSL_REQUEST: [u8; 4] = 80877103i32.to_be_bytes();

/// Read one frontend message (tag + length + body) and return its tag (0
/// for the untagged StartupMessage) and body; `None` on EOF or error.
/// An SSLRequest (the client's default `sslmode=prefer` sends one first)
/// is answered `N`, as a server without TLS does, and the StartupMessage
/// behind it returned.
pub fn read_message(sock: &mut TcpStream, tagged: bool) -> Option<(u8, Vec<u8>)> {
    let message = read_one(sock, tagged)?;
    if !tagged && message.1 == SSL_REQUEST {
        sock.write_all(b"N").ok()?;
        return read_one(sock, tagged);
    }
    Some(message)
}

/// [`read_message`] without the SSLRequest answer: whatever comes first.
pub fn read_one(sock: &mut TcpStream, tagged: bool) -> Option<(u8, Vec<u8>)> {
    let mut head = vec![0u8; if tagged { 5 } else { 4 }];
    sock.read_exact(&mut head).ok()?;
    let len = i32::from_be_bytes(head[head.len() - 4..].try_into().unwrap());
    let mut body = vec![0u8; usize::try_from(len).ok()?.checked_sub(4)?];
    sock.read_exact(&mut body).ok()?;
    Some((if tagged { head[0] } else { 0 }, body))
}

/// AuthenticationOk and the first setting a server reports, `server_version`.
pub fn logged_in(version: &str) -> Vec<u8> {
    let mut out = auth(AUTH_OK, &[]);
    out.extend(parameter_status("server_version", version));
    out
}

/// Read the StartupMessage, let the client in without a password, and go
/// through startup to the first ReadyForQuery: what a `trust` server does.
pub fn trust_login(sock: &mut TcpStream) {
    read_message(sock, false).expect("a StartupMessage");
    let mut out = logged_in("15.0 (fake)");
    out.extend(message(b'K', &[0, 0, 0, 42, 0, 0, 0, 7]));
    out.extend(ready());
    sock.write_all(&out).unwrap();
}

/// Read frontend messages up to and including Sync (`S`) or a simple
/// Query (`Q`); returns their tags. `None` if the client went away first.
pub fn read_request(sock: &mut TcpStream) -> Option<Vec<u8>> {
    let mut tags = Vec::new();
    loop {
        let (tag, _) = read_message(sock, true)?;
        tags.push(tag);
        if tag == b'S' || tag == b'Q' {
            return Some(tags);
        }
    }
}

/// Log in (`trust`), read one request, and start its answer with a
/// RowDescription of one text column: what a test that sends rows needs first.
pub fn start_result(sock: &mut TcpStream, column: &str) {
    trust_login(sock);
    read_request(sock).expect("a query");
    sock.write_all(&one_text_column(column)).unwrap();
}

/// Read until EOF; the bytes that came first (a Terminate is `X 0 0 0 4`).
pub fn read_to_eof(sock: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    let _ = sock.read_to_end(&mut all);
    all
}
