//! Exit codes (documented in the README and `--help`) and the interruption flag of SIGINT/SIGTERM/SIGHUP.

use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

/// Every image processed.
pub const OK: u8 = 0;
/// Some images could not be read; results for all others were written. Not worth a retry.
pub const SOME_FAILED: u8 = 1;
/// Bad usage or configuration.
pub const USAGE: u8 = 2;
/// GPU or device failure: worth a retry on another node (complete units are kept and skipped then).
pub const DEVICE: u8 = 3;
/// Interrupted by a signal; the unit in progress was dropped, complete ones are kept.
pub const INTERRUPTED: u8 = 4;

pub const HELP: &str = "Exit status: 0 all images processed; 1 some images could not be read (results for all \
others written; not worth a retry); 2 bad usage or configuration; 3 GPU or device failure, or the output could not be \
written (worth a retry on another node); 4 interrupted (SIGINT, SIGTERM, SIGHUP).";

pub fn exit(code: u8) -> ExitCode {
    ExitCode::from(code)
}

/// A GPU-side failure (no adapter, device creation, validation, out of memory, lost device, GPU timeout) rather than
/// bad input or options.
pub fn is_device(e: &sshface::Error) -> bool {
    matches!(
        e,
        sshface::Error::NoAdapter { .. }
            | sshface::Error::Device { .. }
            | sshface::Error::Gpu { .. }
            | sshface::Error::DeviceLost { .. }
            | sshface::Error::Timeout { .. }
            | sshface::Error::OutOfMemory { .. }
    )
}

/// The exit code for an error that ended a command: a device failure, else bad usage or configuration.
/// A failure after which the device runs nothing more (lost, or given up after a timeout): retrying the batch's
/// images one by one would only fail again (or wait out the timeout once per image).
pub fn is_fatal(e: &sshface::Error) -> bool {
    matches!(
        e,
        sshface::Error::DeviceLost { .. } | sshface::Error::Timeout { .. }
    )
}

pub fn code_for(e: &anyhow::Error) -> u8 {
    let device = e
        .chain()
        .any(|c| c.downcast_ref::<sshface::Error>().is_some_and(is_device));
    if device {
        DEVICE
    } else {
        USAGE
    }
}

static STOP: AtomicBool = AtomicBool::new(false);

/// On the first signal the run finishes its batch in flight, drops the unfinished unit and exits 4; a second
/// signal exits 4 at once (a partial file then stays under its hidden temporary name only).
pub fn catch_signals() -> anyhow::Result<()> {
    ctrlc::set_handler(|| {
        if STOP.swap(true, Ordering::SeqCst) {
            eprintln!("sshface: second signal, exiting now");
            std::process::exit(INTERRUPTED as i32);
        }
        eprintln!("sshface: signal received: finishing the batch in flight, then stopping");
    })
    .map_err(|e| anyhow::anyhow!("cannot install the SIGINT/SIGTERM handler: {e}"))
}

pub fn interrupted() -> bool {
    STOP.load(Ordering::SeqCst)
}
