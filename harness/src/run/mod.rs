//! Running the selected tests: [`schedule`] (slots, retries, final outcomes) hands each
//! attempt to [`execute`] (in this thread) or [`isolate`] (a child process); [`signals`]
//! turns Ctrl-C into a stop that still writes the reports.

pub(crate) mod capture;
pub(crate) mod execute;
pub(crate) mod isolate;
pub(crate) mod live;
pub(crate) mod schedule;
pub(crate) mod share;
pub(crate) mod signals;
