//! GPU faults: the device-lost state, the wait for a submit bounded by the GPU timeout, buffer creation that turns
//! out-of-memory into an error naming the size, live GPU memory, and the test-only fault injection.
//!
//! A device that is lost (driver reset, hang recovery, removal, [`wgpu::Device::destroy`]) or that did not finish a
//! submit within the timeout is given up for good: every later call on the context fails with
//! [`Error::DeviceLost`] naming the first failure, and dropping the context does not wait for work that may never
//! end. Recovery is a new context (a new [`Detector`](crate::Detector)).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::gpu::GpuContext;

/// Default GPU timeout on GPUs: no single submit of either network comes near it on a working GPU.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// Default GPU timeout on CPU adapters (lavapipe), where one large ssh-vgg16 batch can take minutes.
pub const DEFAULT_TIMEOUT_CPU: Duration = Duration::from_secs(3600);

/// A fault the tests inject to check that it ends in an error, never in a hang or a panic. Not for production use.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Destroys the device (as a driver reset would lose it) just before the `at`-th compute submit (1-based).
    LoseDevice { at: u64 },
    /// Queues a shader that spins for a long time (most of a minute on a large GPU, an hour on lavapipe) before the
    /// `at`-th compute submit, so that submit does not complete within a short GPU timeout.
    Stall { at: u64 },
    /// The arena allocation of the `at`-th plan built fails as a device out of memory would.
    OutOfMemory { at: u64 },
}

impl std::str::FromStr for Fault {
    type Err = Error;
    /// `lose-device`, `stall` or `oom`, optionally `@N` (default 1).
    fn from_str(s: &str) -> Result<Self> {
        let (kind, at) = s.split_once('@').unwrap_or((s, "1"));
        let at: u64 = at.parse().ok().filter(|&n| n >= 1).ok_or_else(|| {
            Error::Config(format!("fault '{s}': expected a count >= 1 after '@'"))
        })?;
        match kind {
            "lose-device" => Ok(Fault::LoseDevice { at }),
            "stall" => Ok(Fault::Stall { at }),
            "oom" => Ok(Fault::OutOfMemory { at }),
            _ => Err(Error::Config(format!(
                "fault '{s}': expected lose-device, stall or oom, optionally @N"
            ))),
        }
    }
}

/// Live GPU memory of a device, from its allocator (Vulkan, DX12); `None` where the backend keeps no report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GpuMemory {
    /// Bytes of every live allocation (buffers, including wgpu's own staging).
    pub allocated: u64,
    /// Bytes of the memory blocks the allocator holds (allocated plus free space inside them).
    pub reserved: u64,
}

/// The health of one device; lives in its [`GpuContext`].
#[derive(Debug)]
pub(crate) struct Health {
    /// Why the device is unusable, once it is.
    lost: Arc<Mutex<Option<String>>>,
    timeout_ms: AtomicU64,
    fault: Mutex<Option<Fault>>,
    submits: AtomicU64,
    plans: AtomicU64,
}

impl Health {
    pub(crate) fn new(device: &wgpu::Device, timeout: Duration) -> Health {
        let lost: Arc<Mutex<Option<String>>> = Arc::default();
        let flag = lost.clone();
        device.set_device_lost_callback(move |reason, msg| {
            let why = match (reason, msg.is_empty()) {
                (wgpu::DeviceLostReason::Destroyed, _) => "the device was destroyed".to_string(),
                (_, true) => "the driver reported the device lost".to_string(),
                (_, false) => format!("the driver reported the device lost: {msg}"),
            };
            let mut l = flag.lock().unwrap_or_else(|p| p.into_inner());
            l.get_or_insert(why);
        });
        Health {
            lost,
            timeout_ms: AtomicU64::new(timeout.as_millis() as u64),
            fault: Mutex::new(None),
            submits: AtomicU64::new(0),
            plans: AtomicU64::new(0),
        }
    }

    fn lost(&self) -> Option<String> {
        self.lost.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn give_up(&self, why: String) {
        self.lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get_or_insert(why);
    }
}

impl GpuContext {
    /// The longest a submit may take before the device is given up (default [`DEFAULT_TIMEOUT`], or
    /// [`DEFAULT_TIMEOUT_CPU`] on CPU adapters).
    pub fn gpu_timeout(&self) -> Duration {
        Duration::from_millis(self.health.timeout_ms.load(Ordering::Relaxed))
    }

    /// Sets the GPU timeout of this context (and so of every detector sharing it).
    pub fn set_gpu_timeout(&self, t: Duration) {
        let ms = t.as_millis().min(u64::MAX as u128) as u64;
        self.health.timeout_ms.store(ms, Ordering::Relaxed);
    }

    #[doc(hidden)]
    /// Arms a test fault (see [`Fault`]); counts start at the next submit or plan.
    pub fn inject_fault(&self, f: Fault) {
        self.health.submits.store(0, Ordering::SeqCst);
        self.health.plans.store(0, Ordering::SeqCst);
        *self.health.fault.lock().unwrap() = Some(f);
    }

    /// `Err(`[`Error::DeviceLost`]`)` once the device was lost or given up after a timeout.
    pub fn check_usable(&self) -> Result<()> {
        match self.health.lost() {
            None => Ok(()),
            Some(reason) => Err(Error::DeviceLost {
                adapter: self.info.name.clone(),
                reason,
            }),
        }
    }

    /// Whether the device was lost or given up.
    pub fn is_lost(&self) -> bool {
        self.health.lost().is_some()
    }

    /// Called just before each compute submit: applies an armed [`Fault::LoseDevice`] or [`Fault::Stall`].
    pub(crate) fn before_submit(&self) -> Result<()> {
        let n = self.health.submits.fetch_add(1, Ordering::SeqCst) + 1;
        match *self.health.fault.lock().unwrap() {
            Some(Fault::LoseDevice { at }) if at == n => self.device.destroy(),
            Some(Fault::Stall { at }) if at == n => crate::ops::spin::stall(self)?,
            _ => {}
        }
        Ok(())
    }

    /// Called before a plan's arena is allocated: applies an armed [`Fault::OutOfMemory`].
    pub(crate) fn oom_fault(&self) -> bool {
        let n = self.health.plans.fetch_add(1, Ordering::SeqCst) + 1;
        matches!(*self.health.fault.lock().unwrap(), Some(Fault::OutOfMemory { at }) if at == n)
    }

    /// Submits `cmd`, bounded by the GPU timeout: some drivers (lavapipe) block inside the submit while earlier work
    /// runs, so the submit runs on a helper thread and a timeout leaves it there. Returns the submission's index and
    /// when it was handed over, for [`wait`](Self::wait). `what` names the work in a timeout's message.
    pub(crate) fn submit(
        &self,
        what: &str,
        cmd: wgpu::CommandBuffer,
    ) -> Result<(wgpu::SubmissionIndex, Instant)> {
        self.check_usable()?;
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel();
        let queue = self.queue.clone();
        std::thread::Builder::new()
            .name("sshface-submit".into())
            .spawn(move || {
                let r = catch_unwind(AssertUnwindSafe(|| queue.submit([cmd])));
                let _ = tx.send(r);
            })
            .map_err(|e| Error::Gpu {
                what: what.to_string(),
                msg: format!("cannot start the submit thread: {e}"),
            })?;
        match rx.recv_timeout(self.gpu_timeout()) {
            Ok(Ok(index)) => Ok((index, started)),
            Ok(Err(panic)) => {
                self.health
                    .give_up(format!("submitting {what} failed: {}", panic_msg(panic)));
                Err(self.check_usable().unwrap_err())
            }
            Err(_) => Err(self.timed_out(what, started)),
        }
    }

    fn timed_out(&self, what: &str, started: Instant) -> Error {
        let timeout = self.gpu_timeout();
        self.health.give_up(format!(
            "{what} did not complete within the GPU timeout of {:.1} s",
            timeout.as_secs_f64()
        ));
        Error::Timeout {
            adapter: self.info.name.clone(),
            what: what.to_string(),
            secs: started.elapsed().as_secs_f64(),
        }
    }

    /// Waits for submit `index` until the GPU timeout after `started` (see [`submit`](Self::submit)). A timeout
    /// gives the device up ([`Error::Timeout`]); a device lost while waiting, or a submit the device rejected, is
    /// [`Error::DeviceLost`], also when wgpu panics over it.
    pub(crate) fn wait(
        &self,
        what: &str,
        index: wgpu::SubmissionIndex,
        started: Instant,
    ) -> Result<()> {
        self.check_usable()?;
        let left = self.gpu_timeout().saturating_sub(started.elapsed());
        let poll = |p| catch_unwind(AssertUnwindSafe(|| self.device.poll(p)));
        match poll(wgpu::PollType::Wait {
            submission_index: Some(index),
            timeout: Some(left),
        }) {
            Ok(Ok(_)) => self.check_usable(),
            Ok(Err(wgpu::PollError::Timeout)) => Err(self.timed_out(what, started)),
            Ok(Err(e)) => {
                // The submit never happened: a lost device rejects submits silently and reports the loss at the
                // next poll; give it up with that reason, or with this one.
                let _ = poll(wgpu::PollType::Poll);
                self.health
                    .give_up(format!("the device rejected the submit of {what} ({e})"));
                self.check_usable()
            }
            Err(panic) => {
                self.health
                    .give_up(format!("{what} failed: {}", panic_msg(panic)));
                self.check_usable()
            }
        }
    }

    /// Waits for the result of a buffer mapping whose submit [`wait`](Self::wait) has seen complete (another
    /// thread's poll may still be delivering it).
    pub(crate) fn mapped<T>(&self, what: &str, rx: &std::sync::mpsc::Receiver<T>) -> Result<T> {
        self.check_usable()?;
        rx.recv_timeout(self.gpu_timeout().max(Duration::from_secs(1)))
            .map_err(|e| {
                self.check_usable().err().unwrap_or_else(|| Error::Gpu {
                    what: what.to_string(),
                    msg: format!("the buffer mapping did not complete: {e}"),
                })
            })
    }

    /// A buffer of `size` bytes for `what` (a tensor, weight or plan), or [`Error::OutOfMemory`] naming both when it
    /// exceeds the device's largest buffer or the device cannot allocate it.
    pub fn create_buffer(
        &self,
        what: &str,
        size: u64,
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer> {
        self.check_usable()?;
        if size > self.limits.max_buffer_size {
            return Err(Error::OutOfMemory {
                what: what.to_string(),
                bytes: size,
                msg: format!(
                    "more than this device's largest buffer (max_buffer_size {} bytes)",
                    self.limits.max_buffer_size
                ),
            });
        }
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let buffer = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(what),
            size,
            usage,
            mapped_at_creation: false,
        });
        let invalid = pollster::block_on(val.pop());
        if let Some(e) = pollster::block_on(oom.pop()) {
            return Err(Error::OutOfMemory {
                what: what.to_string(),
                bytes: size,
                msg: format!("the device could not allocate it: {e}"),
            });
        }
        if let Some(e) = invalid {
            return Err(Error::Gpu {
                what: format!("creating a buffer of {size} bytes for {what}"),
                msg: e.to_string(),
            });
        }
        Ok(buffer)
    }

    /// Live GPU memory from the device's allocator, where the backend keeps a report (Vulkan, DX12).
    pub fn memory(&self) -> Option<GpuMemory> {
        self.device.generate_allocator_report().map(|r| GpuMemory {
            allocated: r.total_allocated_bytes,
            reserved: r.total_reserved_bytes,
        })
    }
}

fn panic_msg(panic: Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "wgpu panicked".into())
}

/// Dropping a context whose device was given up must not wait for work that may never finish: wgpu's queue waits
/// for the device to go idle when dropped, so a given-up context keeps one handle to it alive (the OS frees it at
/// exit).
impl Drop for GpuContext {
    fn drop(&mut self) {
        if self.is_lost() {
            std::mem::forget(self.queue.clone());
        }
    }
}
