//! `detect --stats N`: one line of resident memory and live GPU memory, to check that long runs stay flat.

use sshface::Detector;

use super::worker::Stats;

/// `sshface: stats: images=… rss_bytes=… gpu_allocated_bytes=… gpu_reserved_bytes=… plans_compiled=…`
/// (`na` where the platform or backend has no figure).
pub fn line(det: &Detector, stats: &Stats) -> String {
    let na = |v: Option<u64>| v.map_or("na".to_string(), |v| v.to_string());
    let gpu = det.gpu_memory();
    format!(
        "sshface: stats: images={} rss_bytes={} gpu_allocated_bytes={} gpu_reserved_bytes={} plans_compiled={}",
        stats.images,
        na(rss_bytes()),
        na(gpu.map(|g| g.allocated)),
        na(gpu.map(|g| g.reserved)),
        det.plans_compiled()
    )
}

/// Resident set size of this process (Linux: `/proc/self/statm`).
#[cfg(target_os = "linux")]
fn rss_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().map(|p| p * pages)
}

#[cfg(not(target_os = "linux"))]
fn rss_bytes() -> Option<u64> {
    None
}
