//! Transport plugins: the C ABI ([`abi`]), the manifest and settings schema ([`manifest`]),
//! the author's side ([`export`], with the [`export_plugin!`](crate::export_plugin) macro) and
//! the host's side ([`host`]: discovery, safety checks, loading, timed calls).
//!
//! This is the only module that loads libraries.

pub mod abi;
pub mod export;
pub mod host;
pub mod manifest;

pub use export::{Connection, OpenReply, OpenRequest, Opened, Plugin};
pub use manifest::{Manifest, SettingSpec, SettingType, TransportSpec};
