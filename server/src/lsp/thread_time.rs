//! The CPU time the calling thread has used: tells the message loop's own work from its waiting
//! for a core on a busy machine.

use std::time::Duration;

/// CPU time used by this thread so far (zero where the platform cannot say).
#[cfg(unix)]
#[allow(unsafe_code)]
pub fn now() -> Duration {
    let mut time = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `clock_gettime` writes only into the timespec it is given, which outlives the call.
    let read = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    match (read, u64::try_from(time.tv_sec), u32::try_from(time.tv_nsec)) {
        (0, Ok(secs), Ok(nanos)) => Duration::new(secs, nanos),
        _ => Duration::ZERO,
    }
}

#[cfg(not(unix))]
pub fn now() -> Duration {
    Duration::ZERO
}

#[cfg(test)]
mod tests {
    #[test]
    fn work_on_this_thread_counts_and_sleep_does_not() {
        let start = super::now();
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        let worked = super::now();
        assert!(worked > start, "{x}");
        std::thread::sleep(std::time::Duration::from_millis(20));
        // Sleeping uses (almost) no CPU: far less than the 20 ms it took.
        assert!(super::now() - worked < std::time::Duration::from_millis(15));
    }
}
