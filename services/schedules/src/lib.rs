//! Schedules as sluice reads them, shared by the scheduler role (which fires them), the CLI
//! (`sluice schedules`) and the api (the console): `schedule` parses `[[schedules]]` and
//! computes ticks, `fired` reads the fired-ticks topic, `list` joins the two into what is shown.

pub mod fired;
pub mod list;
pub mod schedule;
mod ticks;

pub use ticks::Ticks;
