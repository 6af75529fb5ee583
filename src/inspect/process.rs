//! This process's fd table: every open fd with its report (an `lsof -p $$`
//! of our own), and how full the table is against `RLIMIT_NOFILE`.
//!
//! The table is listed with `readdir` on `/proc/self/fd` (`proc(5)`): one
//! entry per open fd, named by its number. Listing it opens one more fd,
//! the directory itself, which shows up in its own listing; we recognise it
//! by its link (`/proc/<pid>/fd`) and leave it out.
//!
//! The listing is not atomic. Another thread may close an fd between the
//! `readdir` and our `readlink`/`fstat`; such an entry is skipped and
//! counted, not reported as an error.

use std::fmt;
use std::io;
use std::os::fd::RawFd;

use super::fd_report::{report, FdReport, Tables};
use super::Parsed;
use crate::sys::fd::nofile_limit;

const PROC_SELF_FD: &str = "/proc/self/fd";

/// The fd numbers in `/proc/self/fd`, ascending, minus the directory's own
/// fd. Names that are not numbers are counted as skipped.
pub fn open_fds() -> io::Result<Parsed<RawFd>> {
    let own_dir = format!("/proc/{}/fd", std::process::id());
    let mut parsed = Parsed::default();
    let dir = std::fs::read_dir(PROC_SELF_FD)
        .map_err(|e| io::Error::new(e.kind(), format!("opendir {PROC_SELF_FD}: {e}")))?;
    for entry in dir {
        let entry = entry.map_err(|e| io::Error::new(e.kind(), format!("readdir {PROC_SELF_FD}: {e}")))?;
        let Some(fd) = entry.file_name().to_str().and_then(|s| s.parse::<RawFd>().ok()) else {
            parsed.skipped += 1;
            continue;
        };
        let is_own_dir = std::fs::read_link(entry.path()).is_ok_and(|target| target.as_os_str() == own_dir.as_str());
        if !is_own_dir {
            parsed.rows.push(fd);
        }
    }
    parsed.rows.sort_unstable();
    Ok(parsed)
}

/// A report for every fd of this process. An fd that vanished mid-walk
/// (closed by another thread) is counted in `skipped`.
pub fn process_fds() -> io::Result<Parsed<FdReport>> {
    let fds = open_fds()?;
    let mut tables = Tables::default();
    let mut parsed = Parsed {
        rows: Vec::with_capacity(fds.rows.len()),
        skipped: fds.skipped,
    };
    for fd in fds.rows {
        match report(fd, &mut tables) {
            Ok(r) => parsed.rows.push(r),
            Err(e) if matches!(e.kind(), io::ErrorKind::NotFound) || crate::sys::errno_of(&e) == Some(libc::EBADF) => {
                parsed.skipped += 1
            }
            Err(e) => return Err(e),
        }
    }
    Ok(parsed)
}

/// How full the fd table is. At `soft_limit` open fds, the next `socket`,
/// `accept` or `open` fails with `EMFILE` ("Too many open files").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FdUsage {
    /// Open fds now.
    pub open: usize,
    /// The highest open fd number (the kernel hands out the lowest free
    /// number, so gaps below it are closed slots).
    pub highest: Option<RawFd>,
    /// `RLIMIT_NOFILE` soft limit: where `EMFILE` starts.
    pub soft_limit: u64,
    /// `RLIMIT_NOFILE` hard limit: how far the soft one may be raised
    /// without privilege.
    pub hard_limit: u64,
}

impl FdUsage {
    /// Fds that may still be opened before `EMFILE`.
    pub fn headroom(&self) -> u64 {
        self.soft_limit.saturating_sub(self.open as u64)
    }
}

impl fmt::Display for FdUsage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let percent = if self.soft_limit == 0 {
            100.0
        } else {
            self.open as f64 * 100.0 / self.soft_limit as f64
        };
        write!(
            f,
            "{} fds open of RLIMIT_NOFILE {} ({percent:.1}%), {} more before EMFILE; hard limit {}",
            self.open,
            self.soft_limit,
            self.headroom(),
            self.hard_limit
        )
    }
}

/// The fd table's use against `RLIMIT_NOFILE`: the code form of the
/// story's `ls /proc/<pid>/fd | wc -l`.
pub fn fd_usage() -> io::Result<FdUsage> {
    let fds = open_fds()?;
    let (soft_limit, hard_limit) = nofile_limit()?;
    Ok(FdUsage {
        open: fds.rows.len(),
        highest: fds.rows.last().copied(),
        soft_limit,
        hard_limit,
    })
}
