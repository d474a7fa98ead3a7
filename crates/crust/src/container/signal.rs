//! Stop signals: the CRI `Signal` enum (ContainerConfig.stop_signal, reported in ContainerStatus)
//! and the image config's `StopSignal` (a name such as `SIGQUIT` or `QUIT`, or a number), as Linux
//! signal numbers. Real-time signals use the kernel's numbering (SIGRTMIN = 34, SIGRTMAX = 64),
//! as runc and Go do.

use cri_api::v1::Signal;

/// The kernel's first and last real-time signal.
const RTMIN: i32 = 34;
const RTMAX: i32 = 64;

/// Named signals in the CRI enum's order (values 1..=34), with their numbers.
const NAMED: [(&str, i32); 34] = [
    ("ABRT", libc::SIGABRT),
    ("ALRM", libc::SIGALRM),
    ("BUS", libc::SIGBUS),
    ("CHLD", libc::SIGCHLD),
    ("CLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("FPE", libc::SIGFPE),
    ("HUP", libc::SIGHUP),
    ("ILL", libc::SIGILL),
    ("INT", libc::SIGINT),
    ("IO", libc::SIGIO),
    ("IOT", libc::SIGIOT),
    ("KILL", libc::SIGKILL),
    ("PIPE", libc::SIGPIPE),
    ("POLL", libc::SIGPOLL),
    ("PROF", libc::SIGPROF),
    ("PWR", libc::SIGPWR),
    ("QUIT", libc::SIGQUIT),
    ("SEGV", libc::SIGSEGV),
    ("STKFLT", libc::SIGSTKFLT),
    ("STOP", libc::SIGSTOP),
    ("SYS", libc::SIGSYS),
    ("TERM", libc::SIGTERM),
    ("TRAP", libc::SIGTRAP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("USR1", libc::SIGUSR1),
    ("USR2", libc::SIGUSR2),
    ("VTALRM", libc::SIGVTALRM),
    ("WINCH", libc::SIGWINCH),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
];

/// The signal number of a CRI `Signal` value; `None` for RUNTIME_DEFAULT or a value outside
/// the enum.
pub fn from_cri(value: i32) -> Option<i32> {
    match value {
        1..=34 => Some(NAMED[value as usize - 1].1),
        35..=50 => Some(RTMIN + value - 35),
        51..=65 => Some(RTMAX - (65 - value)),
        _ => None,
    }
}

/// The CRI `Signal` of a signal number (RUNTIME_DEFAULT when it has none).
pub fn to_cri(number: i32) -> Signal {
    let value = match number {
        n if (RTMIN..=RTMIN + 15).contains(&n) => 35 + n - RTMIN,
        n if (RTMAX - 14..=RTMAX).contains(&n) => 65 - (RTMAX - n),
        n => NAMED
            .iter()
            .position(|(_, s)| *s == n)
            .map_or(0, |i| i as i32 + 1),
    };
    Signal::try_from(value).unwrap_or(Signal::RuntimeDefault)
}

/// A signal given by name (`SIGQUIT`, `QUIT`, `SIGRTMIN+3`) or number, as image configs have it.
pub fn by_name(name: &str) -> Option<i32> {
    if let Ok(n) = name.parse::<i32>() {
        return (1..=RTMAX).contains(&n).then_some(n);
    }
    let bare = name.trim_start_matches("SIG");
    if let Some(rest) = bare.strip_prefix("RTMIN") {
        return offset(rest).map(|o| RTMIN + o).filter(|n| *n <= RTMAX);
    }
    if let Some(rest) = bare.strip_prefix("RTMAX") {
        return offset(rest).map(|o| RTMAX + o).filter(|n| *n >= RTMIN);
    }
    NAMED.iter().find(|(n, _)| *n == bare).map(|(_, s)| *s)
}

fn offset(rest: &str) -> Option<i32> {
    if rest.is_empty() {
        Some(0)
    } else {
        rest.parse::<i32>().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_enum_round_trips() {
        assert_eq!(from_cri(Signal::Sigquit as i32), Some(libc::SIGQUIT));
        assert_eq!(from_cri(Signal::Sigterm as i32), Some(libc::SIGTERM));
        assert_eq!(from_cri(Signal::Sigrtmin as i32), Some(34));
        assert_eq!(from_cri(Signal::Sigrtminplus3 as i32), Some(37));
        assert_eq!(from_cri(Signal::Sigrtmaxminus1 as i32), Some(63));
        assert_eq!(from_cri(Signal::Sigrtmax as i32), Some(64));
        assert_eq!(from_cri(Signal::RuntimeDefault as i32), None);
        assert_eq!(from_cri(99), None);
        for v in 1..=65 {
            let n = from_cri(v).unwrap();
            // SIGCLD and SIGIOT are aliases: they come back as SIGCHLD and SIGABRT's twin.
            assert_eq!(from_cri(to_cri(n) as i32), Some(n), "{v}");
        }
        assert_eq!(to_cri(libc::SIGUSR1), Signal::Sigusr1);
    }

    #[test]
    fn names_from_image_configs() {
        assert_eq!(by_name("SIGQUIT"), Some(libc::SIGQUIT));
        assert_eq!(by_name("USR1"), Some(libc::SIGUSR1));
        assert_eq!(by_name("9"), Some(9));
        assert_eq!(by_name("SIGRTMIN+3"), Some(37));
        assert_eq!(by_name("SIGRTMAX-2"), Some(62));
        assert_eq!(by_name("SIGBOGUS"), None);
        assert_eq!(by_name("0"), None);
    }
}
