//! The `file` transport: one `.eml` file per message in `dir` (lettre's file transport).
//! It is the default account's transport, so a fresh install delivers somewhere visible.

use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use lettre::{FileTransport, Transport};
use postflight_core::plugin::{
    Connection, OpenRequest, Opened, SettingSpec, SettingType, TransportSpec,
};
use postflight_core::{DeliveryError, Email, ErrorKind, Receipt};

use crate::message;

/// The manifest entry.
pub fn spec() -> TransportSpec {
    TransportSpec {
        name: "file".into(),
        description: "writes each message as an .eml file into a directory".into(),
        settings: vec![SettingSpec::new(
            "dir",
            SettingType::String,
            "directory that receives the .eml files (created if missing)",
        )
        .required()],
    }
}

/// Validates settings; creates nothing yet.
pub fn open(request: &OpenRequest) -> Result<Opened, DeliveryError> {
    let dir = request
        .settings
        .get("dir")
        .and_then(|v| v.as_str())
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| {
            DeliveryError::permanent(ErrorKind::Config, "the file transport needs `dir`")
                .with_hint("add `dir = \"/path/to/mail\"` to the account")
        })?;
    Ok(Opened::new(FileConnection {
        dir: PathBuf::from(dir),
    }))
}

struct FileConnection {
    dir: PathBuf,
}

impl Connection for FileConnection {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        // Notifications carry task output: a directory we create is for the owner only (an
        // existing one keeps the permissions its owner gave it).
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)
            .map_err(|e| {
                DeliveryError::permanent(
                    ErrorKind::Config,
                    format!("cannot create {}: {e}", self.dir.display()),
                )
                .with_hint("point `dir` at a directory you can write to")
            })?;
        let message = message::build(email)?;
        let id = FileTransport::new(&self.dir).send(&message).map_err(|e| {
            DeliveryError::transient(
                ErrorKind::Other,
                format!("cannot write into {}: {e}", self.dir.display()),
            )
            .with_hint("check free space and permissions of the directory")
        })?;
        let path = self.dir.join(format!("{id}.eml"));
        Ok(Receipt {
            message_id: email.message_id.clone(),
            server_id: Some(id),
            reply: None,
            location: Some(path.display().to_string()),
            refused: Vec::new(),
        })
    }
}
