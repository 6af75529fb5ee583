//! `require_auth`: which authentication methods the client lets the server choose. The rules
//! are on [`RequireAuth`]'s page, where a user of the type looks first.
//!
//! Spec: <https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-REQUIRE-AUTH>.

use std::fmt;

/// One authentication method as `require_auth` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `none`: the server sends AuthenticationOk without asking for anything (`trust`).
    None,
    /// `password`: the password in clear (AuthenticationCleartextPassword).
    Password,
    /// `md5`: the salted MD5 hash (AuthenticationMD5Password).
    Md5,
    /// `gss`: GSSAPI (connlab does not speak it, but it can be named).
    Gss,
    /// `sspi`: Windows SSPI (likewise).
    Sspi,
    /// `scram-sha-256`: SASL with SCRAM-SHA-256.
    ScramSha256,
}

impl AuthMethod {
    /// Every method, in libpq's order.
    pub const ALL: [AuthMethod; 6] = [
        AuthMethod::Password,
        AuthMethod::Md5,
        AuthMethod::Gss,
        AuthMethod::Sspi,
        AuthMethod::ScramSha256,
        AuthMethod::None,
    ];

    /// The keyword: `password`, `md5`, `gss`, `sspi`, `scram-sha-256` or `none`.
    pub fn keyword(self) -> &'static str {
        match self {
            AuthMethod::None => "none",
            AuthMethod::Password => "password",
            AuthMethod::Md5 => "md5",
            AuthMethod::Gss => "gss",
            AuthMethod::Sspi => "sspi",
            AuthMethod::ScramSha256 => "scram-sha-256",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// The set of methods the server may choose.
///
/// The server picks the method (from `pg_hba.conf`), and a client that answers whatever it is asked
/// can be talked down: with no TLS, anyone who can answer our SYN can ask for the *cleartext*
/// password, or say AuthenticationOk without asking anything (so we run queries on a server that
/// never proved it knew our password). libpq 16 added `require_auth` for this; connlab reads it the
/// same way:
///
/// | `require_auth=` | the server may |
/// |---|---|
/// | (not set) | use any method connlab speaks |
/// | `scram-sha-256` | only run SCRAM-SHA-256, to the end (its signature checked) |
/// | `scram-sha-256,md5` | run SCRAM or MD5 |
/// | `!password` | use anything but the cleartext password |
/// | `!password,!md5,!none` | use anything but cleartext, MD5, or no authentication at all |
/// | `none` | only let us in without authentication (trust) |
///
/// Method names: `password` (cleartext), `md5`, `scram-sha-256`, `gss`, `sspi`, and `none` (the
/// server asks for nothing). A list is either all positive (the allowed set) or all negated with `!`
/// (the refused set); mixing the two, an unknown name or a name given twice is a configuration error,
/// as in libpq. The check runs when the server *asks*, before anything is sent, so a refused
/// cleartext request never sees the password.
///
/// Spec: <https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-REQUIRE-AUTH>.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequireAuth {
    /// One bit per [`AuthMethod`].
    allowed: u8,
}

impl Default for RequireAuth {
    /// Every method: libpq's behaviour when `require_auth` is not set.
    fn default() -> Self {
        RequireAuth::any()
    }
}

impl RequireAuth {
    /// Let the server choose any method.
    pub fn any() -> RequireAuth {
        RequireAuth::only(&AuthMethod::ALL)
    }

    /// Allow exactly these methods.
    pub fn only(methods: &[AuthMethod]) -> RequireAuth {
        RequireAuth {
            allowed: methods.iter().fold(0, |set, m| set | m.bit()),
        }
    }

    /// Does this policy let the server use `method`?
    pub fn allows(&self, method: AuthMethod) -> bool {
        self.allowed & method.bit() != 0
    }

    /// Parse libpq's syntax: `scram-sha-256,md5` or `!password,!none`. The error says what is wrong.
    pub fn parse(text: &str) -> Result<RequireAuth, String> {
        let mut named = 0u8;
        let mut negated = None;
        for item in text.split(',') {
            let (negate, name) = match item.strip_prefix('!') {
                Some(name) => (true, name),
                None => (false, item),
            };
            if *negated.get_or_insert(negate) != negate {
                return Err(format!(
                    "require_auth {text:?} mixes methods with and without '!': list the allowed methods, or the refused ones"
                ));
            }
            let method = AuthMethod::ALL
                .into_iter()
                .find(|m| m.keyword() == name)
                .ok_or_else(|| {
                    format!("require_auth method {name:?} is not one of password, md5, gss, sspi, scram-sha-256, none")
                })?;
            if named & method.bit() != 0 {
                return Err(format!("require_auth method {name:?} is given more than once"));
            }
            named |= method.bit();
        }
        let allowed = match negated {
            Some(true) => RequireAuth::any().allowed & !named,
            _ => named,
        };
        Ok(RequireAuth { allowed })
    }
}

impl fmt::Display for RequireAuth {
    /// The allowed methods as a positive list, `scram-sha-256,none`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = AuthMethod::ALL
            .into_iter()
            .filter(|m| self.allows(*m))
            .map(AuthMethod::keyword)
            .collect();
        f.write_str(&names.join(","))
    }
}

impl fmt::Debug for RequireAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RequireAuth({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use AuthMethod::*;

    #[test]
    fn positive_list_allows_only_its_methods() {
        let r = RequireAuth::parse("scram-sha-256").unwrap();
        assert!(r.allows(ScramSha256));
        for m in [None, Password, Md5, Gss, Sspi] {
            assert!(!r.allows(m), "{m:?}");
        }
        assert_eq!(
            RequireAuth::parse("md5,scram-sha-256").unwrap().to_string(),
            "md5,scram-sha-256"
        );
    }

    #[test]
    fn negated_list_refuses_only_its_methods() {
        let r = RequireAuth::parse("!password,!none").unwrap();
        assert!(!r.allows(Password) && !r.allows(None));
        assert!(r.allows(Md5) && r.allows(ScramSha256));
    }

    #[test]
    fn malformed_lists_are_refused_with_a_reason() {
        for (text, why) in [
            ("scram-sha-256,!md5", "mixes"),
            ("kerberos", "not one of"),
            ("md5,md5", "more than once"),
            ("", "not one of"),
            ("md5,", "not one of"),
        ] {
            let e = RequireAuth::parse(text).unwrap_err();
            assert!(e.contains(why), "{text:?}: {e}");
        }
    }
}
