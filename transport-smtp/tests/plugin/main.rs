//! Plugin-level integration tests: the built `smtp` plugin loaded through postflight's own
//! host, delivering to real servers on 127.0.0.1 (aiosmtpd, see test-support/smtp_server.py)
//! and to stand-in sendmail scripts.

mod file;
mod sendmail;
mod smtp;
mod support;
