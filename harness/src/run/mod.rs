//! Running the selected tests: [`pool`] (the workers, in libtest's order) calls [`schedule`]
//! (slots, retries, final outcomes), which hands each attempt to [`execute`] (in this thread,
//! watched by the one [`watchdog`] when it has a timeout) or [`isolate`] (a child process);
//! [`signals`] turns Ctrl-C into a stop that still writes the reports.

pub(crate) mod capture;
pub(crate) mod execute;
pub(crate) mod isolate;
pub(crate) mod live;
pub(crate) mod pool;
pub(crate) mod schedule;
pub(crate) mod share;
pub(crate) mod signals;
pub(crate) mod watchdog;
