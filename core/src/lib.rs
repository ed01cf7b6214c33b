//! postflight-core: the pieces every other postflight crate builds on.
//!
//! - [`config`]: the configuration model and its loading (figment: TOML file + environment).
//! - [`secret`]: `X_env` / `X_file` / `X_command` indirection, resolved only here, and the
//!   check of account settings against a transport's schema.
//! - [`model`], [`email`], [`error`]: plain domain types.
//! - [`outbox`]: the durable queue of notifications.
//! - [`plugin`]: the transport plugin ABI, host and export macro.
//! - [`paths`], [`fsutil`]: where things live, and writing files crash-safely.

pub mod config;
pub mod email;
pub mod error;
pub mod fsutil;
pub mod model;
pub mod outbox;
pub mod paths;
pub mod plugin;
pub mod secret;
pub mod settings;
pub mod suggest;

pub use email::{Email, EmailParts, Header, Receipt, RefusedRecipient};
pub use error::{DeliveryError, ErrorKind};
pub use model::{Level, Status};
