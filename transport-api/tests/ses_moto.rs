//! The `ses` transport against moto's SES v2 emulator (moto[server]), checked through the
//! message moto stored, as listed at its `/moto-api/data.json` endpoint.

mod support;

use base64::Engine as _;
use postflight_core::ErrorKind;
use serde_json::{json, Value};
use support::*;

fn ses_settings(url: &str) -> Value {
    settings(&[
        ("region", "us-east-1"),
        ("access_key_id", "AKIDMOTOEXAMPLE"),
        ("secret_access_key", "moto/secret/example"),
        ("base_url", url),
    ])
}

/// Every message moto's SES backend keeps (id, source, subject, body, destinations).
fn stored_messages(server: &Emulator) -> Vec<Value> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let data: Value = runtime.block_on(async {
        reqwest::get(format!("{}/moto-api/data.json", server.url()))
            .await
            .expect("moto answers")
            .json()
            .await
            .expect("moto's data is JSON")
    });
    data["ses"]["Message"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn moto_stores_the_message_as_sent() {
    let server = Emulator::moto(&["example.com"]);
    let mut session = session("ses", &ses_settings(&server.url()));
    let email = email(
        "Sauvegardes Jörg <backups@example.com>",
        &["ops@example.org", "Zoë <zoe@example.net>"],
        "srv-01: Sauvegarde quotidienne: échouée ✗",
        "Sortie:\nrsync: échec — 接続できません\n",
    );
    let receipt = session
        .send(&email)
        .unwrap_or_else(|e| panic!("{e:?}\n{}", server.log()));
    let id = receipt.server_id.expect("SES returns a MessageId");
    let messages = stored_messages(&server);
    let stored = messages
        .iter()
        .find(|m| m["id"] == id.as_str())
        .unwrap_or_else(|| panic!("moto has no message {id}: {messages:#?}"));
    let encoded = |name: &str| base64::engine::general_purpose::STANDARD.encode(name);
    assert_eq!(
        stored["source"],
        format!(
            "=?utf-8?b?{}?= <backups@example.com>",
            encoded("Sauvegardes Jörg")
        )
    );
    assert_eq!(
        stored["destinations"],
        json!({"ToAddresses": [
            "ops@example.org",
            format!("=?utf-8?b?{}?= <zoe@example.net>", encoded("Zoë"))
        ]})
    );
    assert_eq!(stored["subject"], email.subject.as_str());
    assert_eq!(stored["body"], email.text.as_str());
}

#[test]
fn moto_refuses_an_unverified_sender_permanently() {
    let server = Emulator::moto(&["example.com"]);
    let mut session = session("ses", &ses_settings(&server.url()));
    let e = session
        .send(&email(
            "backups@unverified.example.org",
            &["ops@example.org"],
            "s",
            "t",
        ))
        .unwrap_err();
    assert!(e.permanent, "{e:?}");
    assert_eq!(e.kind, ErrorKind::SenderRejected, "{e:?}");
    assert!(e.hint.unwrap().contains("`from`"));
    assert!(stored_messages(&server).is_empty());
}
