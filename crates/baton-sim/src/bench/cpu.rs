//! CPU time of processes from `/proc/<pid>/stat` (utime + stime), for "CPU per request".
//!
//! The same source as getrusage(RUSAGE_SELF) for this process, read without `unsafe` (the
//! workspace forbids it). Resolution is one clock tick (USER_HZ, 100 on Linux).

use std::time::Instant;

/// Clock ticks per second of `/proc` CPU times (USER_HZ; 100 on every Linux architecture
/// Baton targets).
pub const CLOCK_TICKS_PER_S: f64 = 100.0;

/// CPU seconds (user + system) of process `pid`, or `None` when it cannot be read.
pub fn process_cpu_seconds(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / CLOCK_TICKS_PER_S)
}

/// CPU of the simulator and (optionally) the server at one instant.
#[derive(Debug, Clone)]
pub struct CpuSample {
    /// When taken.
    pub at: Instant,
    /// The simulator's CPU seconds.
    pub client_s: f64,
    /// The server's CPU seconds.
    pub server_s: Option<f64>,
}

impl CpuSample {
    /// Samples now; `server_pid` is the server's PID, if known.
    pub fn now(server_pid: Option<u32>) -> Self {
        Self {
            at: Instant::now(),
            client_s: process_cpu_seconds("self").unwrap_or(0.0),
            server_s: server_pid.and_then(|p| process_cpu_seconds(&p.to_string())),
        }
    }
}

/// `/proc/loadavg`'s three averages (zeros when unreadable).
pub fn load_average() -> [f64; 3] {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = [0.0; 3];
    for (slot, v) in out.iter_mut().zip(text.split_whitespace()) {
        *slot = v.parse().unwrap_or(0.0);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows_with_work() {
        let before = process_cpu_seconds("self").unwrap();
        let mut x: u64 = 1;
        let start = Instant::now();
        while start.elapsed().as_millis() < 300 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        }
        assert_ne!(x, 0);
        let after = process_cpu_seconds("self").unwrap();
        assert!(after > before, "{before} -> {after}");
        assert!(process_cpu_seconds("999999999").is_none());
    }
}
