//! The kernel's clock-synchronisation status (adjtimex in read-only mode). Staleness and bar closes
//! are judged on this clock, so an unsynchronised clock is logged loudly at startup.

/// What the kernel says about NTP discipline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NtpStatus {
    /// The kernel clock is disciplined; estimated and maximum error in microseconds.
    Synchronized {
        est_error_us: i64,
        max_error_us: i64,
    },
    /// The kernel reports the clock as not synchronised (`TIME_ERROR` / `STA_UNSYNC`).
    Unsynchronized { max_error_us: i64 },
    /// adjtimex could not be called (e.g. a sandbox refusing it): unknown.
    Unavailable(String),
}

/// Reads the kernel's NTP status without changing anything (`modes = 0`).
#[allow(unsafe_code)]
pub fn kernel_ntp_status() -> NtpStatus {
    // SAFETY: `timex` is a plain C struct for which all-zero is a valid value; with `modes = 0`
    // adjtimex only reads the kernel's state into it, and the pointer is valid for the call.
    let (rc, tx) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        tx.modes = 0;
        let rc = libc::adjtimex(&mut tx);
        (rc, tx)
    };
    if rc < 0 {
        return NtpStatus::Unavailable(std::io::Error::last_os_error().to_string());
    }
    let unsync = rc == libc::TIME_ERROR || (tx.status & libc::STA_UNSYNC) != 0;
    if unsync {
        NtpStatus::Unsynchronized {
            max_error_us: tx.maxerror,
        }
    } else {
        NtpStatus::Synchronized {
            est_error_us: tx.esterror,
            max_error_us: tx.maxerror,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_readable_on_linux() {
        // Whatever the machine's state, the call itself must not fail on Linux.
        let s = kernel_ntp_status();
        assert!(!matches!(s, NtpStatus::Unavailable(_)), "{s:?}");
    }
}
