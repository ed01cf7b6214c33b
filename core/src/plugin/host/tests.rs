//! The host's checks and timed calls against plugins built in this test binary: Rust plugins
//! exported through [`export::table`](crate::plugin::export::table) and hand-written raw
//! tables that misbehave on purpose. No `dlopen`: the integration tests do that with real
//! libraries.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::path::Path;
use std::time::{Duration, Instant};

use super::*;
use crate::plugin::abi::STATUS_ERROR;
use crate::plugin::export::{table, Connection, Opened, Plugin};
use crate::plugin::manifest::{SettingSpec, SettingType};
use crate::EmailParts;

fn manifest(name: &str, transports: &[&str]) -> Manifest {
    Manifest {
        name: name.into(),
        version: "1.2.3".into(),
        abi_version: ABI_VERSION,
        description: "a test plugin".into(),
        transports: transports
            .iter()
            .map(|t| TransportSpec {
                name: (*t).into(),
                description: String::new(),
                settings: vec![SettingSpec::new("dir", SettingType::String, "where").required()],
            })
            .collect(),
    }
}

fn email() -> Email {
    Email::new(EmailParts {
        from: "a@example.com".into(),
        to: vec!["b@example.com".into()],
        subject: "s".into(),
        text: "t".into(),
    })
}

fn request(transport: &str) -> OpenRequest {
    OpenRequest {
        transport: transport.into(),
        account: "test".into(),
        send_timeout_ms: 1000,
        settings: serde_json::Map::new(),
    }
}

/// Loads `P` the way `load` loads a library, from a static table.
fn loaded<P: Plugin>(path: &str) -> LoadedPlugin {
    try_loaded::<P>(path).unwrap()
}

fn try_loaded<P: Plugin>(path: &str) -> Result<LoadedPlugin, String> {
    // A `static` in a generic function is shared by every instantiation, so the table is
    // leaked once per call instead: tests load a handful.
    let table: &'static PluginV1 = Box::leak(Box::new(table::<P>()));
    // SAFETY: the table is 'static and built by the export code.
    unsafe { from_header(Path::new(path), &table.header) }
}

/// Loads `P` through the timed path discovery uses for every candidate ([`load_within`]).
fn try_loaded_within<P: Plugin>(path: &str, timeout: Duration) -> Result<LoadedPlugin, String> {
    let table: &'static PluginV1 = Box::leak(Box::new(table::<P>()));
    let path = std::path::PathBuf::from(path);
    // SAFETY: the table is 'static and built by the export code.
    load_within(timeout, move || unsafe {
        from_header(&path, &table.header)
    })
}

// --- well-behaved and panicking Rust plugins -------------------------------------------

struct Good;
struct GoodConnection;

impl Connection for GoodConnection {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        Ok(Receipt {
            message_id: email.message_id.clone(),
            ..Receipt::default()
        })
    }
}

impl Plugin for Good {
    fn manifest() -> Manifest {
        manifest("good", &["alpha", "beta"])
    }
    fn open(request: OpenRequest) -> Result<Opened, DeliveryError> {
        if request.transport == "beta" {
            return Err(DeliveryError::permanent(
                ErrorKind::Config,
                "beta needs `dir`",
            ));
        }
        let mut opened = Opened::new(GoodConnection);
        opened.warnings.push("careful".into());
        Ok(opened)
    }
}

struct Twin;

impl Plugin for Twin {
    fn manifest() -> Manifest {
        manifest("twin", &["alpha", "gamma"])
    }
    fn open(_: OpenRequest) -> Result<Opened, DeliveryError> {
        Ok(Opened::new(GoodConnection))
    }
}

struct PanicsInOpen;

impl Plugin for PanicsInOpen {
    fn manifest() -> Manifest {
        manifest("panics-in-open", &["p"])
    }
    fn open(_: OpenRequest) -> Result<Opened, DeliveryError> {
        panic!("open exploded")
    }
}

struct PanicsInSend;
struct PanickingConnection;

impl Connection for PanickingConnection {
    fn send(&mut self, _: &Email) -> Result<Receipt, DeliveryError> {
        panic!("send exploded")
    }
}

impl Plugin for PanicsInSend {
    fn manifest() -> Manifest {
        manifest("panics-in-send", &["p"])
    }
    fn open(_: OpenRequest) -> Result<Opened, DeliveryError> {
        Ok(Opened::new(PanickingConnection))
    }
}

struct PanicsInDescribe;

impl Plugin for PanicsInDescribe {
    fn manifest() -> Manifest {
        panic!("no manifest today")
    }
    fn open(_: OpenRequest) -> Result<Opened, DeliveryError> {
        unreachable!()
    }
}

struct HangsInDescribe;

impl Plugin for HangsInDescribe {
    fn manifest() -> Manifest {
        // Like a C plugin calling pause(): long enough to outlive the test's timeout.
        std::thread::sleep(Duration::from_secs(120));
        manifest("hangs-in-describe", &["never"])
    }
    fn open(_: OpenRequest) -> Result<Opened, DeliveryError> {
        unreachable!()
    }
}

#[test]
fn a_describe_that_never_answers_rejects_that_candidate_after_the_timeout() {
    let started = Instant::now();
    let reason =
        try_loaded_within::<HangsInDescribe>("/x.so", Duration::from_millis(300)).unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "gave up after {:?}",
        started.elapsed()
    );
    assert!(
        reason.starts_with("did not answer describe within 300ms"),
        "{reason}"
    );
    // The same path loads a good plugin and reports a bad one's own reason.
    let plugin = try_loaded_within::<Good>("/good.so", Duration::from_secs(5)).unwrap();
    assert_eq!(plugin.manifest.name, "good");
    let reason =
        try_loaded_within::<PanicsInDescribe>("/x.so", Duration::from_secs(5)).unwrap_err();
    assert!(reason.contains("no manifest today"), "{reason}");
    assert_eq!(DESCRIBE_TIMEOUT, Duration::from_secs(5));
}

struct Hangs;
struct HangingConnection;

impl Connection for HangingConnection {
    fn send(&mut self, _: &Email) -> Result<Receipt, DeliveryError> {
        // Long enough to outlive the test's timeout; the test binary exits without waiting.
        std::thread::sleep(Duration::from_secs(120));
        Ok(Receipt::default())
    }
}

impl Plugin for Hangs {
    fn manifest() -> Manifest {
        manifest("hangs", &["slow"])
    }
    fn open(request: OpenRequest) -> Result<Opened, DeliveryError> {
        if request.account == "hang-in-open" {
            std::thread::sleep(Duration::from_secs(120));
        }
        Ok(Opened::new(HangingConnection))
    }
}

#[test]
fn a_good_plugin_opens_sends_and_reports_warnings_and_classified_errors() {
    let plugin = loaded::<Good>("/plugins/libgood.so");
    assert_eq!(plugin.manifest.name, "good");
    let (mut session, warnings) = plugin.open(&request("alpha")).unwrap();
    assert_eq!(warnings, ["careful"]);
    let email = email();
    let receipt = session.send(&email).unwrap();
    assert_eq!(receipt.message_id, email.message_id);
    drop(session);
    let error = plugin.open(&request("beta")).err().unwrap();
    assert_eq!(error.kind, ErrorKind::Config);
    assert!(error.permanent);
    assert_eq!(error.message, "beta needs `dir`");
}

#[test]
fn panics_in_open_and_send_become_classified_errors() {
    let error = loaded::<PanicsInOpen>("/x.so")
        .open(&request("p"))
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Plugin);
    assert!(
        !error.permanent,
        "a plugin bug is worth a retry after an upgrade"
    );
    assert!(
        error.message.contains("panicked in open: open exploded"),
        "{error:?}"
    );
    assert!(error.hint.unwrap().contains("bug in the plugin"));

    let (mut session, _) = loaded::<PanicsInSend>("/x.so").open(&request("p")).unwrap();
    let error = session.send(&email()).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Plugin);
    assert!(
        error.message.contains("panicked in send: send exploded"),
        "{error:?}"
    );
    // The handle survives a panic in send and is still closed normally.
    assert!(session.send(&email()).is_err());
}

#[test]
fn a_panicking_describe_rejects_the_plugin_with_the_panic_message() {
    let reason = try_loaded::<PanicsInDescribe>("/x.so").unwrap_err();
    assert!(
        reason.contains("describe function failed") && reason.contains("no manifest today"),
        "{reason}"
    );
}

/// Calls the exported functions directly, as a host written in another language would.
#[test]
fn the_exported_table_never_unwinds_and_returns_error_json() {
    let send_table = table::<PanicsInSend>();
    assert_eq!(send_table.header.magic, MAGIC);
    assert_eq!(send_table.header.abi_version, ABI_VERSION);
    let take = |buf: PfBuf| -> serde_json::Value {
        // SAFETY: the buffer came from this table and is freed once.
        let bytes = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
        unsafe { (send_table.free_buf)(buf) };
        serde_json::from_slice(&bytes).unwrap()
    };
    // SAFETY: the calls follow the ABI: valid input ranges and writable out pointers.
    unsafe {
        let manifest = take((send_table.describe)());
        assert_eq!(manifest["name"], "panics-in-send");
        assert_eq!(manifest["abi_version"], ABI_VERSION);

        let request = br#"{"transport":"p","settings":{}}"#;
        let mut handle: *mut c_void = std::ptr::null_mut();
        let mut out = PfBuf::EMPTY;
        let status = (send_table.open)(request.as_ptr(), request.len(), &mut handle, &mut out);
        assert_eq!(status, STATUS_OK);
        assert!(!handle.is_null());
        assert_eq!(take(out)["warnings"], serde_json::json!([]));

        let email = serde_json::to_vec(&email()).unwrap();
        let mut out = PfBuf::EMPTY;
        let status = (send_table.send)(handle, email.as_ptr(), email.len(), &mut out);
        assert_eq!(status, STATUS_ERROR);
        let error = take(out);
        assert_eq!(error["kind"], "plugin");
        assert_eq!(error["permanent"], false);
        assert!(error["message"].as_str().unwrap().contains("send exploded"));

        let mut out = PfBuf::EMPTY;
        let status = (send_table.send)(handle, b"{not json".as_ptr(), 9, &mut out);
        assert_eq!(status, STATUS_ERROR);
        assert!(take(out)["message"]
            .as_str()
            .unwrap()
            .contains("malformed email object"));
        (send_table.close)(handle);

        let mut out = PfBuf::EMPTY;
        let status = (send_table.send)(std::ptr::null_mut(), email.as_ptr(), email.len(), &mut out);
        assert_eq!(
            status, STATUS_ERROR,
            "a null handle is an error, not a crash"
        );
        take(out);
    }
    let open_table = table::<PanicsInOpen>();
    let request = br#"{"transport":"p"}"#;
    let mut handle: *mut c_void = std::ptr::null_mut();
    let mut out = PfBuf::EMPTY;
    // SAFETY: as above.
    let status =
        unsafe { (open_table.open)(request.as_ptr(), request.len(), &mut handle, &mut out) };
    assert_eq!(status, STATUS_ERROR);
    assert!(handle.is_null());
    // SAFETY: as above.
    let bytes = unsafe { std::slice::from_raw_parts(out.ptr, out.len) }.to_vec();
    unsafe { (open_table.free_buf)(out) };
    let error: DeliveryError = serde_json::from_slice(&bytes).unwrap();
    assert!(error.message.contains("open exploded"), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_hanging_send_or_open_is_abandoned_after_the_timeout() {
    let plugin = loaded::<Hangs>("/x.so");
    let (session, _) = plugin
        .open_timed(request("slow"), Duration::from_secs(5))
        .await
        .unwrap();
    let started = Instant::now();
    let (session, result) = session
        .send_timed(email(), Duration::from_millis(200))
        .await;
    let error = result.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(session.is_none(), "the stuck session is abandoned");
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(!error.permanent, "a timeout keeps the item queued");

    let mut hang = request("slow");
    hang.account = "hang-in-open".into();
    let started = Instant::now();
    let error = plugin
        .open_timed(hang.clone(), Duration::from_millis(200))
        .await
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Timeout);
    let error = plugin
        .open_blocking(hang, Duration::from_millis(200))
        .err()
        .unwrap();
    assert_eq!(error.kind, ErrorKind::Timeout);
    assert!(started.elapsed() < Duration::from_secs(5));
}

struct SlowToClose;
struct SlowToCloseConnection;

/// Where the last `close` ran, and whether it finished.
static CLOSED_ON: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

impl Connection for SlowToCloseConnection {
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        Ok(Receipt {
            message_id: email.message_id.clone(),
            ..Receipt::default()
        })
    }
}

impl Drop for SlowToCloseConnection {
    fn drop(&mut self) {
        let thread = std::thread::current()
            .name()
            .unwrap_or("unnamed")
            .to_string();
        *CLOSED_ON.lock().unwrap() = Some(thread);
        std::thread::sleep(Duration::from_secs(120));
    }
}

impl Plugin for SlowToClose {
    fn manifest() -> Manifest {
        manifest("slow-close", &["slow-close"])
    }
    fn open(_: OpenRequest) -> Result<Opened, DeliveryError> {
        Ok(Opened::new(SlowToCloseConnection))
    }
}

#[test]
fn close_runs_off_the_callers_thread_and_a_hanging_close_is_abandoned() {
    let plugin = loaded::<SlowToClose>("/slow-close.so");
    let (session, _) = plugin.open(&request("slow-close")).unwrap();
    let started = Instant::now();
    drop(session);
    assert!(
        started.elapsed() < CLOSE_TIMEOUT + Duration::from_secs(5),
        "dropping waited {:?}",
        started.elapsed()
    );
    assert_eq!(
        CLOSED_ON.lock().unwrap().as_deref(),
        Some("postflight-plugin-close"),
        "close ran on its own thread"
    );
}

// --- conflicts and `[plugins] prefer` ---------------------------------------------------

fn prefer(entries: &[(&str, &str)]) -> BTreeMap<String, String> {
    entries
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn two_providers() -> Vec<LoadedPlugin> {
    vec![
        loaded::<Good>("/first/libgood.so"),
        loaded::<Twin>("/second/libtwin.so"),
    ]
}

#[test]
fn a_transport_claimed_twice_is_an_error_naming_both_paths() {
    let registry = Registry::from_plugins(two_providers(), &BTreeMap::new());
    let error = registry.transport("alpha").err().unwrap().to_string();
    assert!(
        error.contains("/first/libgood.so and /second/libtwin.so"),
        "{error}"
    );
    assert!(error.contains("[plugins] prefer"), "{error}");
    // The other transports of both plugins are unaffected.
    assert_eq!(registry.transport("beta").unwrap().0.manifest.name, "good");
    assert_eq!(registry.transport("gamma").unwrap().0.manifest.name, "twin");
    assert_eq!(registry.conflicts.len(), 1);
}

#[test]
fn prefer_settles_a_conflict_by_plugin_name_or_path() {
    for (wanted, winner) in [
        ("twin", "twin"),
        ("good", "good"),
        ("/second/libtwin.so", "twin"),
        ("/first/libgood.so", "good"),
    ] {
        let registry = Registry::from_plugins(two_providers(), &prefer(&[("alpha", wanted)]));
        let (plugin, spec) = registry.transport("alpha").unwrap();
        assert_eq!(plugin.manifest.name, winner, "prefer {wanted}");
        assert_eq!(spec.name, "alpha");
        assert!(registry.conflicts.is_empty() && registry.warnings.is_empty());
    }
}

#[test]
fn the_same_plugin_found_twice_needs_prefer_and_then_the_first_in_search_order_wins() {
    let plugins = vec![
        loaded::<Good>("/usr/lib/postflight/plugins/libgood.so"),
        loaded::<Good>("/home/me/.local/share/postflight/plugins/libgood.so"),
    ];
    let registry = Registry::from_plugins(plugins.clone(), &BTreeMap::new());
    assert!(matches!(
        registry.transport("alpha"),
        Err(LookupError::Conflict(_))
    ));
    let registry = Registry::from_plugins(plugins, &prefer(&[("alpha", "good")]));
    assert_eq!(
        registry.transport("alpha").unwrap().0.path,
        Path::new("/usr/lib/postflight/plugins/libgood.so")
    );
    // `beta` was not preferred: still a conflict.
    assert!(registry.transport("beta").is_err());
}

#[test]
fn a_preference_that_names_no_provider_is_reported() {
    let registry = Registry::from_plugins(two_providers(), &prefer(&[("alpha", "nobody")]));
    let error = registry.transport("alpha").err().unwrap().to_string();
    assert!(error.contains("names 'nobody'"), "{error}");

    let registry = Registry::from_plugins(
        two_providers(),
        &prefer(&[("gamma", "good"), ("omega", "good")]),
    );
    assert_eq!(registry.transport("gamma").unwrap().0.manifest.name, "twin");
    assert_eq!(registry.warnings.len(), 2, "{:?}", registry.warnings);
    assert!(registry.warnings.iter().any(|w| w.contains("'omega'")));
}

// --- raw tables that break the rules -----------------------------------------------------

fn leak_buf(bytes: &[u8]) -> PfBuf {
    let mut bytes = std::mem::ManuallyDrop::new(bytes.to_vec());
    PfBuf {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

unsafe extern "C" fn raw_free(buf: PfBuf) {
    if !buf.ptr.is_null() {
        // SAFETY: every buffer of these tables comes from `leak_buf`.
        drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
    }
}

unsafe extern "C" fn raw_close(_: *mut c_void) {}

unsafe extern "C" fn raw_open(
    _: *const u8,
    _: usize,
    handle: *mut *mut c_void,
    _: *mut PfBuf,
) -> i32 {
    // SAFETY: the host passes a writable handle pointer. Any non-null value will do here.
    unsafe { *handle = std::ptr::NonNull::<u8>::dangling().as_ptr().cast() };
    STATUS_OK
}

/// A raw table whose `describe` returns `$manifest` and whose `send` answers `$status` with
/// `$reply` as the out buffer.
macro_rules! raw_table {
    ($magic:expr, $version:expr, $manifest:expr, $status:expr, $reply:expr) => {{
        unsafe extern "C" fn describe() -> PfBuf {
            leak_buf($manifest.as_bytes())
        }
        unsafe extern "C" fn send(_: *mut c_void, _: *const u8, _: usize, out: *mut PfBuf) -> i32 {
            // SAFETY: the host passes a writable out pointer.
            unsafe { *out = leak_buf($reply) };
            $status
        }
        static TABLE: PluginV1 = PluginV1 {
            header: PluginHeader {
                magic: $magic,
                abi_version: $version,
            },
            describe,
            open: raw_open,
            send,
            close: raw_close,
            free_buf: raw_free,
        };
        &TABLE
    }};
}

const RAW_MANIFEST: &str =
    r#"{"name":"raw","version":"0.1.0","abi_version":1,"transports":[{"name":"raw"}]}"#;

fn raw_send(table: &'static PluginV1) -> Result<Receipt, DeliveryError> {
    // SAFETY: the raw tables are 'static and honour the calling convention.
    let plugin = unsafe { from_header(Path::new("/raw.so"), &table.header) }.unwrap();
    let (mut session, _) = plugin.open(&request("raw")).unwrap();
    session.send(&email())
}

#[test]
fn malformed_json_from_send_is_a_classified_plugin_error() {
    for (table, expected) in [
        (
            raw_table!(MAGIC, 1, RAW_MANIFEST, STATUS_OK, b"this is not json"),
            "a receipt that is not valid JSON",
        ),
        (
            raw_table!(MAGIC, 1, RAW_MANIFEST, STATUS_ERROR, b"{\"kind\":"),
            "an error that is not valid JSON",
        ),
        (
            raw_table!(MAGIC, 1, RAW_MANIFEST, STATUS_ERROR, b""),
            "a failure without an error object",
        ),
        (
            raw_table!(MAGIC, 1, RAW_MANIFEST, 7, b"[1,2]"),
            "an error that is not a JSON object",
        ),
        (
            raw_table!(MAGIC, 1, RAW_MANIFEST, STATUS_ERROR, b"{\"kind\":\"dns\"}"),
            "an error object without a `message`",
        ),
    ] {
        let error = raw_send(table).unwrap_err();
        assert_eq!(error.kind, ErrorKind::Plugin, "{error:?}");
        assert!(!error.permanent);
        assert!(error.message.contains(expected), "{error:?}");
    }
}

#[test]
fn an_error_with_a_kind_from_a_newer_plugin_keeps_its_message() {
    let table = raw_table!(
        MAGIC,
        1,
        RAW_MANIFEST,
        STATUS_ERROR,
        br#"{"kind":"quota_exceeded","permanent":true,"message":"over quota","hint":"buy more","future_field":1}"#
    );
    let error = raw_send(table).unwrap_err();
    assert_eq!(error.kind, ErrorKind::Other);
    assert!(error.permanent);
    assert_eq!(error.message, "over quota");
    assert_eq!(error.hint.as_deref(), Some("buy more"));

    let table = raw_table!(
        MAGIC,
        1,
        RAW_MANIFEST,
        STATUS_OK,
        br#"{"message_id":"<x@y>","server_id":"42","new_field":true}"#
    );
    assert_eq!(raw_send(table).unwrap().server_id.as_deref(), Some("42"));
}

#[test]
fn bad_headers_and_manifests_are_rejected_with_a_reason() {
    let check = |table: &'static PluginV1, expected: &str| {
        // SAFETY: the raw tables are 'static and honour the calling convention.
        let reason = unsafe { from_header(Path::new("/raw.so"), &table.header) }.unwrap_err();
        assert!(reason.contains(expected), "{reason}");
    };
    check(
        raw_table!(0xdead_beef, 1, RAW_MANIFEST, STATUS_OK, b"{}"),
        "without the postflight magic value (found 0xdeadbeef",
    );
    check(
        raw_table!(MAGIC, 2, RAW_MANIFEST, STATUS_OK, b"{}"),
        "plugin ABI version 2 is not supported by this postflight (it loads version 1); upgrade postflight",
    );
    check(
        raw_table!(MAGIC, 0, RAW_MANIFEST, STATUS_OK, b"{}"),
        "rebuild the plugin",
    );
    check(
        raw_table!(MAGIC, 1, "{\"name\":", STATUS_OK, b"{}"),
        "manifest is not valid JSON",
    );
    check(
        raw_table!(
            MAGIC,
            1,
            r#"{"name":"raw","version":"1","abi_version":2,"transports":[{"name":"raw"}]}"#,
            STATUS_OK,
            b"{}"
        ),
        "manifest says ABI version 2 but its table says 1",
    );
    check(
        raw_table!(
            MAGIC,
            1,
            r#"{"name":"raw","version":"1","abi_version":1,"transports":[]}"#,
            STATUS_OK,
            b"{}"
        ),
        "lists no transports",
    );
    check(
        raw_table!(
            MAGIC,
            1,
            r#"{"name":"raw","version":"1","abi_version":1,"transports":[{"name":"a"},{"name":"a"}]}"#,
            STATUS_OK,
            b"{}"
        ),
        "the transport 'a' twice",
    );
    check(
        raw_table!(
            MAGIC,
            1,
            r#"{"name":"raw","version":"1","abi_version":1,"transports":[{"name":"a","settings":[{"name":"from","type":"string"}]}]}"#,
            STATUS_OK,
            b"{}"
        ),
        "reserved",
    );
    check(
        raw_table!(
            MAGIC,
            1,
            r#"{"name":"raw","version":"1","abi_version":1,"transports":[{"name":"a b"}]}"#,
            STATUS_OK,
            b"{}"
        ),
        "invalid transport name",
    );
    check(
        raw_table!(
            MAGIC,
            1,
            r#"{"name":"raw","version":"1","abi_version":1,"transports":[{"name":"a","settings":[{"name":"x","type":"float"}]}]}"#,
            STATUS_OK,
            b"{}"
        ),
        "unknown variant `float`",
    );
    // SAFETY: a null header is checked before it is read.
    let reason = unsafe { from_header(Path::new("/raw.so"), std::ptr::null()) }.unwrap_err();
    assert!(reason.contains("null table"), "{reason}");
}

// --- ownership and permissions -------------------------------------------------------------

#[test]
fn ownership_rules_follow_ssh_and_sudo() {
    let path = Path::new("/p/lib.so");
    let me = 1000;
    assert_eq!(ownership_problem(me, 0o100755, me, "file", path), None);
    assert_eq!(ownership_problem(0, 0o100644, me, "file", path), None);
    assert_eq!(ownership_problem(0, 0o041755, me, "directory", path), None);
    let other = ownership_problem(1001, 0o100755, me, "file", path).unwrap();
    assert!(
        other.contains("owned by uid 1001 (neither you nor root)"),
        "{other}"
    );
    for mode in [0o100775, 0o100757, 0o040777, 0o041777] {
        let problem = ownership_problem(me, mode, me, "directory", path).unwrap();
        assert!(
            problem.contains("writable by group or others")
                && problem.contains("chmod go-w /p/lib.so"),
            "{problem}"
        );
    }
}

#[test]
fn load_file_refuses_unsafe_files_and_directories_and_non_libraries() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("libpostflight_text.so");
    std::fs::write(&file, "just text\n").unwrap();
    let set_mode = |path: &Path, mode: u32| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    set_mode(dir.path(), 0o755);
    set_mode(&file, 0o644);
    let reason = load_file(&file).unwrap_err().reason;
    assert!(reason.starts_with("not a loadable library"), "{reason}");

    set_mode(&file, 0o666);
    let reason = load_file(&file).unwrap_err().reason;
    assert!(
        reason.contains("the file is writable by group or others"),
        "{reason}"
    );

    set_mode(&file, 0o644);
    set_mode(dir.path(), 0o775);
    let reason = load_file(&file).unwrap_err().reason;
    assert!(
        reason.contains("the directory is writable by group or others"),
        "{reason}"
    );

    set_mode(dir.path(), 0o755);
    let sub = dir.path().join("libpostflight_dir.so");
    std::fs::create_dir(&sub).unwrap();
    assert_eq!(load_file(&sub).unwrap_err().reason, "not a regular file");
    let reason = load_file(&dir.path().join("missing.so"))
        .unwrap_err()
        .reason;
    assert!(reason.contains("cannot resolve"), "{reason}");
}

#[test]
fn discovery_reports_a_rejected_directory_once_and_keeps_searching() {
    use std::os::unix::fs::PermissionsExt;
    let unsafe_dir = tempfile::tempdir().unwrap();
    std::fs::write(unsafe_dir.path().join("a.so"), "x").unwrap();
    std::fs::write(unsafe_dir.path().join("b.so"), "x").unwrap();
    std::fs::set_permissions(unsafe_dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let other = tempfile::tempdir().unwrap();
    std::fs::set_permissions(other.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(other.path().join("libpostflight_x.so"), "x").unwrap();
    std::fs::write(other.path().join("notes.txt"), "not a candidate").unwrap();
    std::fs::set_permissions(
        other.path().join("libpostflight_x.so"),
        std::fs::Permissions::from_mode(0o644),
    )
    .unwrap();
    let dirs = vec![
        SearchDir {
            path: unsafe_dir.path().to_path_buf(),
            origin: "test",
            postflight_names_only: false,
        },
        SearchDir {
            path: other.path().to_path_buf(),
            origin: "test",
            postflight_names_only: false,
        },
        SearchDir {
            path: other.path().join("absent"),
            origin: "test",
            postflight_names_only: false,
        },
    ];
    let registry = Registry::discover(dirs, &BTreeMap::new());
    assert!(registry.plugins.is_empty());
    assert_eq!(registry.rejected.len(), 2, "{:?}", registry.rejected);
    assert_eq!(registry.rejected[0].path, unsafe_dir.path());
    assert!(registry.rejected[0]
        .reason
        .contains("none of the 2 plugin file(s)"));
    assert!(registry.rejected[1]
        .reason
        .starts_with("not a loadable library"));
}
