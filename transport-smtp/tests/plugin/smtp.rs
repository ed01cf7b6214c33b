//! The `smtp` transport against real aiosmtpd servers: each case asserts what the server
//! actually received (or that it received nothing).

use std::time::{Duration, Instant};

use postflight_core::{DeliveryError, Email, ErrorKind};
use serde_json::{json, Value};

use crate::support::{email, headers, open_smtp, open_with_timeout, Cert, InjectingServer, Server};

const USER: &str = "alice@example.com";
const PASSWORD: &str = "correct horse battery";

fn login() -> Value {
    json!({"username": USER, "password": PASSWORD})
}

fn auth_args() -> Vec<&'static str> {
    vec!["--auth-user", USER, "--auth-password", PASSWORD]
}

fn merge(a: Value, b: Value) -> Value {
    let mut out = a;
    for (k, v) in b.as_object().unwrap() {
        out[k] = v.clone();
    }
    out
}

fn send_one(settings: Value, email: &Email) -> Result<postflight_core::Receipt, DeliveryError> {
    let (mut session, _) = open_smtp(settings);
    session.send(email)
}

fn assert_no_secret(error: &DeliveryError) {
    let text = serde_json::to_string(error).unwrap();
    assert!(!text.contains(PASSWORD), "password leaked: {text}");
    assert!(
        !text.contains("abcdefghijklmnop"),
        "password leaked: {text}"
    );
}

#[test]
fn plain_without_auth() {
    let server = Server::start(&[]);
    let mail = email(&["ops@example.com"], "Backup: ok", "All good.\n");
    let receipt = send_one(server.settings("none", json!({})), &mail).unwrap();

    assert_eq!(receipt.message_id, mail.message_id);
    assert_eq!(receipt.server_id.as_deref(), Some("PF00001"));
    assert!(receipt.reply.unwrap().starts_with("250"));
    let got = server.only_message();
    assert_eq!(got["mail_from"], "sender@example.com");
    assert_eq!(got["rcpt_tos"], json!(["ops@example.com"]));
    assert_eq!(got["auth_user"], Value::Null);
    assert_eq!(got["tls"], false);
    assert_eq!(got["parsed"]["subject"], "Backup: ok");
    assert_eq!(got["parsed"]["body"], "All good.\n");
    assert_eq!(headers(&got, "Message-ID"), [mail.message_id.as_str()]);
    assert_eq!(headers(&got, "Auto-Submitted"), ["auto-generated"]);
    assert_eq!(headers(&got, "Date").len(), 1);
    let raw = got["data"].as_str().unwrap();
    assert!(
        raw.contains("\r\nContent-Type: text/plain; charset=utf-8\r\n"),
        "{raw}"
    );
    assert!(raw.ends_with("\r\n\r\nAll good.\r\n"), "{raw:?}");
}

#[test]
fn starttls_with_auth_plain_and_login() {
    let cert = Cert::self_signed();
    for mechanism in ["PLAIN", "LOGIN"] {
        let mut args = cert.server_args("starttls");
        args.extend(auth_args());
        args.extend([
            "--auth-mechanisms",
            mechanism,
            "--auth-required",
            "--require-starttls",
        ]);
        let server = Server::start(&args);
        let settings = server.settings(
            "starttls",
            merge(login(), json!({"ca_file": cert.ca_file()})),
        );
        send_one(settings, &email(&["ops@example.com"], "s", "b")).unwrap();
        let got = server.only_message();
        assert_eq!(got["auth_user"], USER);
        assert_eq!(got["auth_mechanism"], mechanism);
        assert_eq!(got["tls"], true);
    }
}

#[test]
fn implicit_tls_with_auth() {
    let cert = Cert::self_signed();
    let mut args = cert.server_args("tls");
    args.extend(auth_args());
    args.push("--auth-required");
    let server = Server::start(&args);
    let settings = server.settings("tls", merge(login(), json!({"ca_file": cert.ca_file()})));
    send_one(settings, &email(&["ops@example.com"], "s", "b")).unwrap();
    let got = server.only_message();
    assert_eq!(got["auth_user"], USER);
    assert_eq!(got["tls"], true);
}

#[test]
fn self_signed_certificate_is_refused_by_default_with_a_diagnosis() {
    let cert = Cert::self_signed();
    for mode in ["starttls", "tls"] {
        let mut args = cert.server_args(mode);
        args.extend(auth_args());
        let server = Server::start(&args);
        let err = send_one(
            server.settings(mode, login()),
            &email(&["ops@example.com"], "s", "b"),
        )
        .unwrap_err();
        assert_eq!(err.kind, ErrorKind::Certificate, "{mode}: {err:?}");
        assert!(!err.permanent);
        assert!(err.message.contains("self-signed"), "{}", err.message);
        let hint = err.hint.clone().unwrap();
        for setting in ["ca_file", "tls_fingerprint", "accept_invalid_certs"] {
            assert!(hint.contains(setting), "hint lacks {setting}: {hint}");
        }
        let details = err.details.clone().unwrap();
        for part in [
            "subject:",
            "issuer:",
            "(self-signed)",
            "valid:",
            "127.0.0.1",
            "sha256:",
        ] {
            assert!(details.contains(part), "details lack {part}:\n{details}");
        }
        let pin_line = format!("tls_fingerprint = \"{}\"", cert.fingerprint);
        assert!(
            details.contains(&pin_line),
            "details lack {pin_line}:\n{details}"
        );
        assert_no_secret(&err);
        assert!(server.received().is_empty());
    }
}

#[test]
fn self_signed_certificate_is_accepted_with_ca_file() {
    let cert = Cert::self_signed();
    let server = Server::start(&cert.server_args("tls"));
    let (mut session, warnings) =
        open_smtp(server.settings("tls", json!({"ca_file": cert.ca_file()})));
    assert!(warnings.is_empty(), "{warnings:?}");
    session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap();
    assert_eq!(server.only_message()["tls"], true);
}

#[test]
fn a_ca_flagged_self_signed_certificate_is_accepted_with_ca_file() {
    // `openssl req -x509` (OpenSSL 3) marks the certificate CA:TRUE; webpki alone refuses it
    // as a server's certificate (CaUsedAsEndEntity).
    let cert = Cert::self_signed_ca();
    for mode in ["tls", "starttls"] {
        let server = Server::start(&cert.server_args(mode));
        let receipt = send_one(
            server.settings(mode, json!({"ca_file": cert.ca_file()})),
            &email(&["ops@example.com"], "s", "b"),
        )
        .unwrap_or_else(|e| panic!("{mode}: {e:?}"));
        assert_eq!(receipt.server_id.as_deref(), Some("PF00001"));
        assert_eq!(server.only_message()["tls"], true);
    }
    // Without ca_file it is still refused, and the refusal says why in plain words.
    let server = Server::start(&cert.server_args("tls"));
    let err = send_one(
        server.settings("tls", json!({})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Certificate);
    assert!(
        err.message.contains("certificate authority") && !err.message.contains("OtherError"),
        "{}",
        err.message
    );
    assert!(server.received().is_empty());
}

#[test]
fn a_ca_file_without_the_servers_certificate_is_named_in_the_hint() {
    let cert = Cert::self_signed();
    let other = Cert::self_signed();
    let server = Server::start(&cert.server_args("tls"));
    let err = send_one(
        server.settings("tls", json!({"ca_file": other.ca_file()})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Certificate);
    let hint = err.hint.unwrap();
    assert!(hint.contains("ca_file is set"), "{hint}");
    assert!(server.received().is_empty());
}

#[test]
fn replies_injected_before_the_starttls_handshake_are_refused() {
    // A man-in-the-middle appends fake replies to the server's 220 for STARTTLS: to EHLO,
    // AUTH, MAIL, RCPT, DATA and the message. Read after the handshake, they would report a
    // delivery ("queued as INJECTED") while the real server refuses the login.
    let cert = Cert::self_signed();
    let server = InjectingServer::start(
        &cert,
        b"250-evil.test\r\n250 AUTH PLAIN\r\n235 2.7.0 Authentication successful\r\n250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok: queued as INJECTED\r\n",
    );
    let settings = merge(
        json!({"host": "127.0.0.1", "port": server.port, "security": "starttls", "ca_file": cert.ca_file()}),
        login(),
    );
    let err = send_one(settings, &email(&["ops@example.com"], "s", "b"))
        .expect_err("injected replies must not count as a delivery");
    assert_eq!(
        (err.kind, err.permanent),
        (ErrorKind::Tls, false),
        "{err:?}"
    );
    assert!(
        err.message.contains("before the TLS handshake"),
        "{}",
        err.message
    );
    assert!(
        err.hint.as_deref().unwrap().contains("injecting"),
        "{err:?}"
    );
    assert!(
        err.details
            .as_deref()
            .unwrap()
            .contains("queued as INJECTED"),
        "{err:?}"
    );
    assert_no_secret(&err);
    // The client stopped before the handshake: nothing, not even EHLO, went over TLS.
    assert_eq!(server.commands_over_tls(), Vec::<String>::new());
}

#[test]
fn accept_invalid_certs_delivers_and_warns() {
    let cert = Cert::self_signed();
    let server = Server::start(&cert.server_args("starttls"));
    let (mut session, warnings) =
        open_smtp(server.settings("starttls", json!({"accept_invalid_certs": true})));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(warnings[0].contains("accept_invalid_certs"));
    session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap();
    server.only_message();
}

#[test]
fn pinned_certificate_is_accepted_and_a_changed_one_refused() {
    let cert = Cert::self_signed();
    let server = Server::start(&cert.server_args("starttls"));
    let settings = server.settings("starttls", json!({"tls_fingerprint": cert.fingerprint}));
    send_one(settings, &email(&["ops@example.com"], "s", "b")).unwrap();
    server.only_message();

    let other = Cert::self_signed();
    let settings = server.settings("starttls", json!({"tls_fingerprint": other.fingerprint}));
    let err = send_one(settings, &email(&["ops@example.com"], "s", "b")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Certificate);
    assert!(
        err.message.contains("does not match tls_fingerprint"),
        "{}",
        err.message
    );
    assert!(err.hint.unwrap().contains("renewed"));
    assert!(err.details.unwrap().contains(&cert.fingerprint));
    assert_eq!(server.received().len(), 1, "nothing more was delivered");
}

#[test]
fn wrong_password_for_gmail_explains_app_passwords() {
    let cert = Cert::self_signed();
    let mut args = cert.server_args("starttls");
    args.extend([
        "--auth-user",
        "someone@gmail.com",
        "--auth-password",
        "abcdefghijklmnop",
    ]);
    let server = Server::start(&args);
    let settings = server.settings(
        "starttls",
        json!({"provider": "gmail", "username": "someone@gmail.com", "password": "my account password", "ca_file": cert.ca_file()}),
    );
    let (mut session, warnings) = open_smtp(settings);
    assert!(
        warnings.iter().any(|w| w.contains("16 letters")),
        "{warnings:?}"
    );
    let err = session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth);
    assert!(err.permanent);
    assert!(
        err.message
            .contains("Gmail rejected the login for 'someone@gmail.com'"),
        "{}",
        err.message
    );
    assert!(
        err.reply.as_deref().unwrap().starts_with("535"),
        "{:?}",
        err.reply
    );
    let hint = err.hint.clone().unwrap();
    assert!(
        hint.contains("App Password") && hint.contains("@gmail.com"),
        "{hint}"
    );
    let text = serde_json::to_string(&err).unwrap();
    assert!(
        !text.contains("my account password") && !text.contains("myaccountpassword"),
        "{text}"
    );
    assert!(server.received().is_empty());
}

#[test]
fn app_password_typed_with_spaces_authenticates() {
    let cert = Cert::self_signed();
    let mut args = cert.server_args("tls");
    args.extend([
        "--auth-user",
        "someone@gmail.com",
        "--auth-password",
        "abcdefghijklmnop",
    ]);
    let server = Server::start(&args);
    let settings = server.settings(
        "tls",
        json!({"provider": "gmail", "username": "someone@gmail.com", "password": "abcd efgh ijkl mnop", "ca_file": cert.ca_file()}),
    );
    let (mut session, warnings) = open_smtp(settings);
    assert!(warnings.is_empty(), "{warnings:?}");
    session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap();
    assert_eq!(server.only_message()["auth_user"], "someone@gmail.com");
}

#[test]
fn starttls_required_but_not_offered_is_an_error() {
    let server = Server::start(&[
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--auth-over-plaintext",
    ]);
    let err = send_one(
        server.settings("starttls", login()),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::StarttlsUnavailable);
    assert!(
        err.message.contains("does not offer STARTTLS"),
        "{}",
        err.message
    );
    assert!(err.hint.unwrap().contains("security = \"tls\""));
    assert!(server.received().is_empty());
}

#[test]
fn auth_over_plaintext_is_refused_unless_allowed() {
    let server = Server::start(&[
        "--auth-user",
        USER,
        "--auth-password",
        PASSWORD,
        "--auth-over-plaintext",
    ]);
    let err = open_with_timeout("smtp", server.settings("none", login()), 5000)
        .expect_err("open must refuse");
    assert_eq!(err.kind, ErrorKind::InsecureAuth);
    assert!(err.hint.as_deref().unwrap().contains("allow_insecure_auth"));
    assert_no_secret(&err);

    let (mut session, warnings) =
        open_smtp(server.settings("none", merge(login(), json!({"allow_insecure_auth": true}))));
    assert!(warnings[0].contains("unencrypted"), "{warnings:?}");
    session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap();
    assert_eq!(server.only_message()["auth_user"], USER);
}

#[test]
fn a_silent_server_times_out_within_send_timeout() {
    let server = Server::start(&["--silent"]);
    let (mut session, _) =
        open_with_timeout("smtp", server.settings("starttls", json!({})), 1500).expect("open");
    let started = Instant::now();
    let err = session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(!err.permanent);
    assert!(err.message.contains("no SMTP greeting"), "{}", err.message);
    assert!(elapsed >= Duration::from_millis(1400), "{elapsed:?}");
    assert!(elapsed < Duration::from_millis(1500 + 2000), "{elapsed:?}");
}

#[test]
fn three_recipients_one_refused() {
    let server = Server::start(&["--reject", "bob@example.com"]);
    let (mut session, _) = open_smtp(server.settings("none", json!({})));
    let to = [
        "alice@example.com",
        "Bob <bob@example.com>",
        "carol@example.com",
    ];
    // The others still get the message; the refused one comes back in the receipt.
    let receipt = session.send(&email(&to, "s", "b")).unwrap();
    assert_eq!(receipt.refused.len(), 1, "{receipt:?}");
    assert_eq!(receipt.refused[0].address, "bob@example.com");
    assert!(
        receipt.refused[0].reply.starts_with("550 5.1.1"),
        "{receipt:?}"
    );
    let got = server.only_message();
    assert_eq!(
        got["rcpt_tos"],
        json!(["alice@example.com", "carol@example.com"])
    );

    // Everyone refused: nothing is sent, and the error names them.
    let err = session
        .send(&email(&["Bob <bob@example.com>"], "s", "b"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RecipientRejected);
    assert!(err.permanent);
    assert!(err.message.contains("bob@example.com"), "{}", err.message);
    assert!(err.reply.unwrap().contains("<bob@example.com>: 550 5.1.1"));
    // The same connection goes on with the next message; envelope and To: agree.
    let to = ["alice@example.com", "Carol <carol@example.com>"];
    session.send(&email(&to, "s", "b")).unwrap();
    let all = server.received();
    assert_eq!(all.len(), 2, "nothing sent for the all-refused message");
    let got = &all[1];
    assert_eq!(
        got["rcpt_tos"],
        json!(["alice@example.com", "carol@example.com"])
    );
    assert_eq!(
        headers(got, "To"),
        ["alice@example.com, Carol <carol@example.com>"]
    );
}

#[test]
fn a_deferred_recipient_is_transient() {
    let server = Server::start(&["--defer", "bob@example.com"]);
    let err = send_one(
        server.settings("none", json!({})),
        &email(&["bob@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::RecipientRejected);
    assert!(!err.permanent);
}

#[test]
fn a_deferred_recipient_among_others_defers_the_whole_message() {
    // Greylisting one recipient must not send the message to the others only: the item
    // would leave the outbox and the deferred recipient would never get it.
    let server = Server::start(&[
        "--defer",
        "bob@example.com",
        "--reject",
        "carol@example.com",
    ]);
    let (mut session, _) = open_smtp(server.settings("none", json!({})));
    let err = session
        .send(&email(
            &["alice@example.com", "Bob <bob@example.com>"],
            "s",
            "b",
        ))
        .unwrap_err();
    assert_eq!(
        (err.kind, err.permanent),
        (ErrorKind::RecipientRejected, false),
        "{err:?}"
    );
    assert!(err.message.contains("bob@example.com"), "{}", err.message);
    assert!(!err.message.contains("alice"), "{}", err.message);
    assert!(
        err.reply
            .as_deref()
            .unwrap()
            .contains("<bob@example.com>: 450 4.2.0"),
        "{err:?}"
    );
    assert!(server.received().is_empty(), "nothing may be sent");

    // One refused for good as well: still nothing sent, and a retry later.
    let err = session
        .send(&email(
            &["alice@example.com", "bob@example.com", "carol@example.com"],
            "s",
            "b",
        ))
        .unwrap_err();
    assert_eq!(
        (err.kind, err.permanent),
        (ErrorKind::RecipientRejected, false)
    );
    assert!(err.message.contains("carol@example.com"), "{}", err.message);
    assert!(server.received().is_empty(), "nothing may be sent");

    // The transaction was reset; the same connection delivers the next message.
    session
        .send(&email(&["alice@example.com"], "s", "b"))
        .unwrap();
    assert_eq!(
        server.only_message()["rcpt_tos"],
        json!(["alice@example.com"])
    );
}

#[test]
fn non_ascii_subject_and_body_arrive_intact() {
    let server = Server::start(&[]);
    let subject = "Sauvegarde terminée ✓ — 備份完了";
    let body = "Größe: 12 MB\nÉtat: réussi ✓\n日本語のテキスト\n.\n..leading dots\n";
    send_one(
        server.settings("none", json!({})),
        &email(&["ops@example.com"], subject, body),
    )
    .unwrap();
    let got = server.only_message();
    assert_eq!(got["parsed"]["subject"], subject);
    assert_eq!(got["parsed"]["body"], body);
    let raw = got["data"].as_str().unwrap();
    assert!(raw.is_ascii(), "the message is 7-bit on the wire");
}

#[test]
fn a_subject_with_line_breaks_adds_no_header() {
    let server = Server::start(&[]);
    // Email::new folds line breaks; a host that skipped it must not get a header in either.
    let mut mail = email(&["ops@example.com"], "Backup\r\nBcc: evil@example.com", "b");
    assert!(!mail.subject.contains('\n'));
    mail.subject = "Backup\r\nBcc: evil@example.com\nX-Evil: 1".into();
    send_one(server.settings("none", json!({})), &mail).unwrap();
    let got = server.only_message();
    assert!(headers(&got, "Bcc").is_empty(), "{got}");
    assert!(headers(&got, "X-Evil").is_empty(), "{got}");
    assert_eq!(got["rcpt_tos"], json!(["ops@example.com"]));
    let subject = got["parsed"]["subject"].as_str().unwrap();
    assert!(subject.contains("Bcc: evil@example.com"), "{subject}");
}

#[test]
fn one_connection_serves_many_messages_and_reconnects_when_closed() {
    // Generous margins: the machine may be busy with parallel builds and tests.
    let server = Server::start(&["--idle-timeout", "1"]);
    let (mut session, _) = open_smtp(server.settings("none", json!({})));
    for i in 0..3 {
        session
            .send(&email(&["ops@example.com"], &format!("m{i}"), "b"))
            .unwrap();
    }
    // The server closes the idle connection; the next send reconnects by itself.
    std::thread::sleep(Duration::from_millis(2500));
    session
        .send(&email(&["ops@example.com"], "m3", "b"))
        .unwrap();
    let got = server.received();
    assert_eq!(got.len(), 4);
    let ports: Vec<&Value> = got.iter().map(|m| &m["peer_port"]).collect();
    assert!(ports[0] == ports[1] && ports[1] == ports[2], "{ports:?}");
    assert_ne!(ports[2], ports[3], "{ports:?}");
}

#[test]
fn hello_name_is_sent() {
    let server = Server::start(&[]);
    send_one(
        server.settings("none", json!({"hello_name": "backup-host.example.com"})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap();
    assert_eq!(server.only_message()["ehlo"], "backup-host.example.com");
}

#[test]
fn a_refused_connection_is_transient() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let settings = json!({"host": "127.0.0.1", "port": port, "security": "none"});
    let err = send_one(settings, &email(&["ops@example.com"], "s", "b")).unwrap_err();
    assert_eq!(err.kind, ErrorKind::Connect);
    assert!(!err.permanent);
    assert!(err.hint.unwrap().contains(&port.to_string()));
}

#[test]
fn mismatched_security_modes_are_explained() {
    // Implicit TLS against a plain SMTP port: the server greets in clear text.
    let server = Server::start(&[]);
    let err = send_one(
        server.settings("tls", json!({})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Tls, "{err:?}");
    assert!(err.hint.unwrap().contains("security = \"starttls\""));

    // STARTTLS against an implicit-TLS port: the server waits for a TLS hello.
    let cert = Cert::self_signed();
    let server = Server::start(&cert.server_args("tls"));
    let (mut session, _) =
        open_with_timeout("smtp", server.settings("starttls", json!({})), 1000).unwrap();
    let err = session
        .send(&email(&["ops@example.com"], "s", "b"))
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Timeout, "{err:?}");
    assert!(err.hint.unwrap().contains("security = \"tls\""));
}

#[test]
fn refusals_of_sender_message_and_missing_login_are_classified() {
    let server = Server::start(&["--reject-sender", "sender@example.com"]);
    let err = send_one(
        server.settings("none", json!({})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!((err.kind, err.permanent), (ErrorKind::SenderRejected, true));
    assert!(err.reply.unwrap().starts_with("553"));

    let server = Server::start(&["--reject-data", "554 5.7.1 Message refused as spam"]);
    let err = send_one(
        server.settings("none", json!({})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(
        (err.kind, err.permanent),
        (ErrorKind::MessageRejected, true)
    );
    assert_eq!(
        err.reply.as_deref(),
        Some("554 5.7.1 Message refused as spam")
    );

    let cert = Cert::self_signed();
    let mut args = cert.server_args("starttls");
    args.extend(auth_args());
    args.push("--auth-required");
    let server = Server::start(&args);
    let err = send_one(
        server.settings("starttls", json!({"ca_file": cert.ca_file()})),
        &email(&["ops@example.com"], "s", "b"),
    )
    .unwrap_err();
    assert_eq!(err.kind, ErrorKind::Auth, "{err:?}");
    assert!(err.hint.unwrap().contains("username"));
}

#[test]
fn open_validates_without_touching_the_network() {
    // A name under .invalid never resolves; open must not try.
    let started = Instant::now();
    let (_session, warnings) = open_smtp(json!({
        "host": "smtp.postflight.invalid", "username": "u@example.com", "password": "pw"
    }));
    assert!(warnings.is_empty());
    assert!(started.elapsed() < Duration::from_secs(1));

    let err = open_with_timeout("smtp", json!({"provider": "gmail"}), 1000)
        .err()
        .unwrap();
    assert_eq!(err.kind, ErrorKind::Config);
    assert!(err.hint.unwrap().contains("@gmail.com"));
}

#[test]
fn the_manifest_declares_every_setting() {
    let plugin = crate::support::plugin();
    let smtp = plugin
        .manifest
        .transports
        .iter()
        .find(|t| t.name == "smtp")
        .unwrap();
    let names: Vec<&str> = smtp.settings.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "host",
            "port",
            "security",
            "provider",
            "username",
            "password",
            "accept_invalid_certs",
            "ca_file",
            "tls_fingerprint",
            "hello_name",
            "allow_insecure_auth"
        ]
    );
    let secret: Vec<&str> = smtp
        .settings
        .iter()
        .filter(|s| s.secret)
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(secret, ["password"]);
    let transports: Vec<&str> = plugin
        .manifest
        .transports
        .iter()
        .map(|t| t.name.as_str())
        .collect();
    assert_eq!(transports, ["smtp", "sendmail", "file"]);
}
