//! Host CPU and memory plus this process's RSS, sampled with sysinfo.

use sockscope_wire::Host;
use sysinfo::{Pid, ProcessRefreshKind, ProcessesToUpdate, System};

/// Samples host CPU and memory and this process's RSS (also used by the observer for itself).
pub struct HostSampler {
    /// None when this platform gives no system information; no host events are sent then.
    sys: Option<System>,
    pid: Option<Pid>,
}

impl Default for HostSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl HostSampler {
    pub fn new() -> Self {
        let sys = match System::new() {
            Ok(mut sys) => {
                // CPU use is a difference between two refreshes: prime the first one.
                sys.refresh_cpu_usage();
                Some(sys)
            }
            Err(e) => {
                tracing::warn!(error = %e, "no host metrics on this system");
                None
            }
        };
        HostSampler {
            sys,
            pid: sysinfo::get_current_pid().ok(),
        }
    }

    pub fn sample(&mut self, ts: u64) -> Option<Host> {
        let sys = self.sys.as_mut()?;
        sys.refresh_cpu_usage();
        sys.refresh_memory();
        let mut rss = 0;
        if let Some(pid) = self.pid {
            sys.refresh_processes_specifics(
                ProcessesToUpdate::Some(&[pid]),
                true,
                ProcessRefreshKind::nothing().with_memory(),
            );
            rss = sys.process(pid).map(|p| p.memory()).unwrap_or(0);
        }
        let total = sys.total_memory();
        let cpu = sys.global_cpu_usage();
        Some(Host {
            ts: Some(ts),
            cpu_pct: if cpu.is_finite() {
                cpu.clamp(0.0, 100.0)
            } else {
                0.0
            },
            mem_used: sys.used_memory().min(total),
            mem_total: total,
            rss,
        })
    }
}
