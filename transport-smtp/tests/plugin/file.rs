//! The `file` transport writes one .eml file per message.

use postflight_core::ErrorKind;
use serde_json::json;

use crate::support::{email, open_with_timeout};

#[test]
fn writes_an_eml_file() {
    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    let (mut session, _) =
        open_with_timeout("file", json!({"dir": mail_dir.display().to_string()}), 5000).unwrap();
    let receipt = session
        .send(&email(&["ops@example.com"], "Backup: ok", "done\n"))
        .unwrap();
    let path = receipt.location.expect("location");
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("Subject: Backup: ok\r\n"), "{text}");
    assert!(path.starts_with(&mail_dir.display().to_string()));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&mail_dir).unwrap().permissions().mode() & 0o777;
    assert_eq!(
        mode, 0o700,
        "a mail directory we create is the owner's only"
    );

    let err = open_with_timeout("file", json!({}), 5000).err().unwrap();
    assert_eq!(err.kind, ErrorKind::Config);
}
