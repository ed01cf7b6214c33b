//! Integration tests: one test binary (as ripgrep does) that runs the real `postflight`
//! executable with the real plugins against real local servers. Each area has its module.

mod api;
mod foundation;
mod outbox;
mod plugins;
mod runner;
mod smtp;
mod util;
