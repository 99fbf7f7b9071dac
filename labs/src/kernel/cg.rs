//! Requests specific to the cgroups lab that the general file calls do not cover.

use std::time::Duration;

use super::{Call, Effect, Kernel, Kind, SysError};

impl Kernel {
    /// `clock_nanosleep(2)` on `CLOCK_MONOTONIC` — sleep for `d`. The cgroups lab
    /// sleeps between two samples of a group's counters (`cg-limit top`) and while it
    /// waits for killed processes to leave a group before `rmdir(2)`. A sleep changes
    /// nothing, so a dry run sleeps too.
    /// <https://man7.org/linux/man-pages/man2/clock_nanosleep.2.html>
    #[doc(alias = "clock_nanosleep")]
    #[doc(alias = "nanosleep")]
    pub fn sleep(&self, d: Duration) -> Result<(), SysError> {
        const C: Call = Call {
            kind: Kind::Syscall,
            name: "clock_nanosleep",
            man: "clock_nanosleep(2)",
            what: "suspend this process for a while, by the monotonic clock",
            effect: Effect::Query,
        };
        let args = vec![
            "CLOCK_MONOTONIC".into(),
            "0".into(),
            format!("{{tv_sec={}, tv_nsec={}}}", d.as_secs(), d.subsec_nanos()),
            "NULL".into(),
        ];
        self.perform(
            &C,
            args,
            || (),
            || {
                // std's sleep restarts after EINTR with the time left, as a caller of
                // clock_nanosleep(2) must.
                std::thread::sleep(d);
                Ok(())
            },
            |_| "0".into(),
        )
    }
}
