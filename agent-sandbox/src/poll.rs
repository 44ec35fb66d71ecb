//! Blocking waits on descriptors, for the supervisor's own threads (the gate, the fanotify
//! answerer) and the watchdog, which each wait on the descriptor they serve plus one that
//! tells them to stop.

use std::io;
use std::os::fd::{AsRawFd as _, BorrowedFd};

/// Waits until `a` or `b` has something (readable, hung up or in error) and returns the
/// `revents` of each. Interrupted waits are retried.
pub fn either(a: BorrowedFd<'_>, b: BorrowedFd<'_>) -> io::Result<[libc::c_short; 2]> {
    loop {
        let mut fds = [a, b].map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: poll on two open descriptors (borrowed for the call), into our own array.
        let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) };
        if r >= 0 {
            return Ok([fds[0].revents, fds[1].revents]);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;
    use std::os::fd::AsFd as _;

    #[test]
    fn reports_which_side_is_ready() {
        let (a_rd, mut a_wr) = std::io::pipe().unwrap();
        let (b_rd, _b_wr) = std::io::pipe().unwrap();
        a_wr.write_all(b"x").unwrap();
        let [ra, rb] = either(a_rd.as_fd(), b_rd.as_fd()).unwrap();
        assert!(ra & libc::POLLIN != 0);
        assert_eq!(rb, 0);
    }
}
