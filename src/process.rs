//! Which process a run belongs to, in a form that survives pid reuse: the
//! pid, and the boot and start time of the process that had it. A run's
//! row records this process when it starts; a later command asks whether
//! the process that wrote a `running` row is still there.
//!
//! Linux only, through `/proc`; elsewhere no identity is recorded and no
//! process is ever judged gone.
//!
//! Also the OS user this process runs as, which admins' changes made
//! without another name are recorded under.

use std::sync::OnceLock;

/// A process, told apart from any later one that reuses its pid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: u32,
    /// `BOOT_ID/START_TICKS`: the kernel's boot id and the process's start
    /// time in clock ticks since that boot.
    pub started: String,
}

/// This process, read once.
pub fn current() -> Option<&'static ProcessIdentity> {
    static CURRENT: OnceLock<Option<ProcessIdentity>> = OnceLock::new();
    CURRENT
        .get_or_init(|| identity(std::process::id()))
        .as_ref()
}

/// Whether the process `pid` that started as `started` still runs. `None`
/// for `started` (a row written without one) can only be judged by the
/// pid's presence. When nothing can be read, the process counts as alive:
/// a run is marked interrupted only when its process is known to be gone.
pub fn is_alive(pid: u32, started: Option<&str>) -> bool {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    match identity(pid) {
        Some(now) => started.is_none_or(|started| now.started == started),
        None => pid_exists(pid),
    }
}

/// Whether a process with `pid` exists, for one whose `/proc` entry is
/// hidden (`ProtectProc=`, another user's process).
fn pid_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 sends nothing; it only checks that the
    // pid exists and may be signalled.
    let done = unsafe { libc::kill(pid, 0) };
    done == 0 || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

fn identity(pid: u32) -> Option<ProcessIdentity> {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    Some(ProcessIdentity {
        pid,
        started: format!("{}/{}", boot.trim(), start_ticks(&stat)?),
    })
}

/// Field 22 of `/proc/PID/stat`, the start time. The command name (field
/// 2) is in parentheses and may hold spaces or parentheses itself, so the
/// fields are counted from after its last `)`.
fn start_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(19)?.parse().ok()
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive() {
        let me = current().expect("linux has /proc");
        assert_eq!(me.pid, std::process::id());
        assert!(is_alive(me.pid, Some(&me.started)));
    }

    #[test]
    fn a_process_that_exited_is_gone() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        let started = identity(pid).map(|id| id.started);
        child.wait().unwrap();
        assert!(!is_alive(pid, started.as_deref()));
    }

    #[test]
    fn a_live_pid_that_started_at_another_time_is_another_process() {
        let me = current().unwrap();
        assert!(!is_alive(me.pid, Some("another-boot/12")));
    }

    #[test]
    fn the_start_time_is_read_after_a_command_name_with_parentheses() {
        let stat = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 98765 1000 10";
        assert_eq!(start_ticks(stat), Some(98765));
    }
}

/// The OS user running this process, as its environment names them
/// (`USER`, `LOGNAME`, `USERNAME`); `"unknown"` where none does. What an
/// admin's change is recorded as made by, when no other name is given.
pub fn os_user() -> String {
    ["USER", "LOGNAME", "USERNAME"]
        .iter()
        .filter_map(|name| std::env::var(name).ok())
        .find(|user| !user.trim().is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}
