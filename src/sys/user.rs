//! Who we are and who else there is: `geteuid(2)` and `getpwnam_r(3)`.
//!
//! The throwaway servers refuse to run as root (`initdb`, `postgres` and
//! `pgbouncer` all check), so a harness started by root looks up an
//! unprivileged account to run them as. `getpwnam_r` asks the C library's
//! name service switch (`nsswitch.conf(5)`): `/etc/passwd` first on most
//! machines, then LDAP, sssd or systemd's dynamic users when configured.
//! Reading `/etc/passwd` by hand would see only the first of those.
//!
//! The `_r` ("re-entrant") form writes into a buffer we own instead of a
//! static one that the next call on any thread would overwrite.

use std::ffi::{CStr, CString};
use std::io;
use std::mem::MaybeUninit;

/// An account's numeric identity, as `setuid`/`setgid` want it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Account {
    /// The user id (`pw_uid`).
    pub uid: u32,
    /// The primary group id (`pw_gid`).
    pub gid: u32,
}

/// The effective user id of this process (`geteuid(2)`, which cannot fail).
pub fn geteuid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and always succeeds.
    unsafe { libc::geteuid() }
}

/// Look up an account by name with `getpwnam_r(3)`: `Ok(None)` when there
/// is no such account, an error naming the call when the lookup itself
/// failed (an unreachable LDAP server, say).
pub fn getpwnam(name: &str) -> io::Result<Option<Account>> {
    let c_name = CString::new(name).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("getpwnam_r({name:?}): name contains NUL"),
        )
    })?;
    // sysconf's suggestion is often 1024; grow on ERANGE up to a bound, so a
    // huge record cannot make us allocate without limit.
    const FIRST: usize = 1024;
    const LIMIT: usize = 1 << 20;
    let mut buf: Vec<libc::c_char> = vec![0; FIRST];
    loop {
        let mut record = MaybeUninit::<libc::passwd>::uninit();
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        // The strings the C library writes point into buf, which outlives the
        // reads of uid/gid below (the only fields we use).
        // SAFETY: c_name is NUL-terminated; record, buf (with its true length)
        // and found are valid for writes for the duration of the call.
        let ret = unsafe {
            libc::getpwnam_r(
                c_name.as_ptr(),
                record.as_mut_ptr(),
                buf.as_mut_ptr(),
                buf.len(),
                &mut found,
            )
        };
        // getpwnam_r returns the error number instead of setting errno.
        if ret == libc::ERANGE && buf.len() < LIMIT {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if ret != 0 {
            return Err(super::error_from_errno("getpwnam_r", quoted(&c_name), ret));
        }
        if found.is_null() {
            return Ok(None);
        }
        // SAFETY: a non-null `found` points at `record`, which the call filled.
        let record = unsafe { record.assume_init() };
        return Ok(Some(Account {
            uid: record.pw_uid,
            gid: record.pw_gid,
        }));
    }
}

fn quoted(name: &CStr) -> String {
    format!("{:?}", name.to_string_lossy())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_is_uid_zero_and_a_made_up_name_is_absent() {
        assert_eq!(getpwnam("root").unwrap(), Some(Account { uid: 0, gid: 0 }));
        assert_eq!(getpwnam("connlab-no-such-account").unwrap(), None);
    }

    #[test]
    fn a_name_with_nul_is_refused_not_truncated() {
        let err = getpwnam("root\0evil").unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }
}
