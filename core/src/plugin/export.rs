//! The plugin author's side of ABI v1: implement [`Plugin`] and [`Connection`], then call
//! [`export_plugin!`](crate::export_plugin) once. The generated functions catch every panic
//! and turn it into an error value, so nothing unwinds across `extern "C"`.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use serde::{Deserialize, Serialize};

use super::abi::{PfBuf, PluginHeader, PluginV1, ABI_VERSION, MAGIC, STATUS_ERROR, STATUS_OK};
use super::manifest::Manifest;
use crate::email::{Email, Receipt};
use crate::error::{DeliveryError, ErrorKind};

/// What the host passes to `open` (plugin ABI v1 "open request" object).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct OpenRequest {
    /// The transport to open, one of those in the manifest.
    pub transport: String,
    /// The account's name, for messages.
    #[serde(default)]
    pub account: String,
    /// How long one attempt may take, connection included; plugins should bound their own
    /// network waits by it (the host abandons a call that overruns it).
    #[serde(default = "default_send_timeout_ms")]
    pub send_timeout_ms: u64,
    /// The account's settings with secrets resolved and `transport`/`from` removed.
    #[serde(default)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

fn default_send_timeout_ms() -> u64 {
    30_000
}

/// The `open` result (plugin ABI v1: `{"warnings": [...]}` on success).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct OpenReply {
    /// Things the operator should hear about every time (e.g. certificate checks disabled).
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// A successfully opened transport.
pub struct Opened {
    /// The connection that sends.
    pub connection: Box<dyn Connection>,
    /// Warnings the host prints on every use.
    pub warnings: Vec<String>,
}

impl Opened {
    /// An opened connection without warnings.
    pub fn new(connection: impl Connection + 'static) -> Self {
        Opened {
            connection: Box::new(connection),
            warnings: Vec::new(),
        }
    }
}

/// A transport plugin written in Rust.
pub trait Plugin: 'static {
    /// The manifest; `abi_version` is filled in by the macro.
    fn manifest() -> Manifest;
    /// Validates settings and prepares a connection. Must not touch the network: `postflight
    /// check` calls it to validate accounts.
    fn open(request: OpenRequest) -> Result<Opened, DeliveryError>;
}

/// An open transport. One connection may send many emails (the outbox flush reuses it).
pub trait Connection: Send {
    /// Delivers one email.
    fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError>;
}

/// Builds the static function table for `P`; used by [`export_plugin!`](crate::export_plugin).
pub const fn table<P: Plugin>() -> PluginV1 {
    PluginV1 {
        header: PluginHeader {
            magic: MAGIC,
            abi_version: ABI_VERSION,
        },
        describe: describe::<P>,
        open: open::<P>,
        send,
        close,
        free_buf,
    }
}

/// Exports `$plugin` (a type implementing [`Plugin`]) as a postflight plugin.
///
/// ```ignore
/// struct MyPlugin;
/// impl postflight_core::plugin::Plugin for MyPlugin { /* ... */ }
/// postflight_core::export_plugin!(MyPlugin);
/// ```
#[macro_export]
macro_rules! export_plugin {
    ($plugin:ty) => {
        /// The postflight plugin entry point (ABI v1).
        #[no_mangle]
        pub extern "C" fn postflight_plugin_entry() -> *const $crate::plugin::abi::PluginHeader {
            static TABLE: $crate::plugin::abi::PluginV1 =
                $crate::plugin::export::table::<$plugin>();
            &TABLE.header
        }
    };
}

struct Handle {
    connection: Box<dyn Connection>,
}

fn into_buf(bytes: Vec<u8>) -> PfBuf {
    let mut bytes = std::mem::ManuallyDrop::new(bytes);
    PfBuf {
        ptr: bytes.as_mut_ptr(),
        len: bytes.len(),
        cap: bytes.capacity(),
    }
}

fn json_buf<T: Serialize>(value: &T) -> PfBuf {
    into_buf(serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec()))
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

fn panicked(what: &str, payload: &(dyn std::any::Any + Send)) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::Plugin,
        format!("the plugin panicked in {what}: {}", panic_message(payload)),
    )
    .with_hint("this is a bug in the plugin; report it to the plugin's author")
}

/// # Safety
/// `ptr..ptr+len` must be readable, or `len` 0.
unsafe fn input<'a>(ptr: *const u8, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        &[]
    } else {
        // SAFETY: the host guarantees the range is readable for the call's duration.
        unsafe { std::slice::from_raw_parts(ptr, len) }
    }
}

unsafe extern "C" fn describe<P: Plugin>() -> PfBuf {
    match catch_unwind(|| {
        let mut manifest = P::manifest();
        manifest.abi_version = ABI_VERSION;
        manifest
    }) {
        Ok(manifest) => json_buf(&manifest),
        // A manifest that is not an object makes the host reject the plugin with a reason.
        Err(payload) => json_buf(&format!("describe panicked: {}", panic_message(&*payload))),
    }
}

unsafe extern "C" fn open<P: Plugin>(
    request: *const u8,
    request_len: usize,
    handle: *mut *mut c_void,
    out: *mut PfBuf,
) -> i32 {
    // SAFETY: per the ABI the host passes a readable request and writable out pointers.
    let bytes = unsafe { input(request, request_len) };
    let result = catch_unwind(AssertUnwindSafe(|| {
        let request: OpenRequest = serde_json::from_slice(bytes).map_err(|e| {
            DeliveryError::permanent(ErrorKind::Plugin, format!("malformed open request: {e}"))
        })?;
        P::open(request)
    }))
    .unwrap_or_else(|payload| Err(panicked("open", &*payload)));
    let (status, buf) = match result {
        Ok(opened) => {
            let boxed = Box::new(Handle {
                connection: opened.connection,
            });
            // SAFETY: `handle` is writable per the ABI.
            unsafe { *handle = Box::into_raw(boxed).cast() };
            (
                STATUS_OK,
                json_buf(&OpenReply {
                    warnings: opened.warnings,
                }),
            )
        }
        Err(error) => (STATUS_ERROR, json_buf(&error)),
    };
    // SAFETY: `out` is writable per the ABI.
    unsafe { *out = buf };
    status
}

unsafe extern "C" fn send(
    handle: *mut c_void,
    email: *const u8,
    email_len: usize,
    out: *mut PfBuf,
) -> i32 {
    // SAFETY: per the ABI the host passes a readable email and writable out pointer.
    let bytes = unsafe { input(email, email_len) };
    let handle = handle.cast::<Handle>();
    let result = catch_unwind(AssertUnwindSafe(|| {
        if handle.is_null() {
            return Err(DeliveryError::permanent(
                ErrorKind::Plugin,
                "send called with a null handle",
            ));
        }
        let email: Email = serde_json::from_slice(bytes).map_err(|e| {
            DeliveryError::permanent(ErrorKind::Plugin, format!("malformed email object: {e}"))
        })?;
        // SAFETY: a non-null handle came from `open` and is used by one thread at a time.
        let handle = unsafe { &mut *handle };
        handle.connection.send(&email)
    }))
    .unwrap_or_else(|payload| Err(panicked("send", &*payload)));
    let (status, buf) = match result {
        Ok(receipt) => (STATUS_OK, json_buf(&receipt)),
        Err(error) => (STATUS_ERROR, json_buf(&error)),
    };
    // SAFETY: `out` is writable per the ABI.
    unsafe { *out = buf };
    status
}

unsafe extern "C" fn close(handle: *mut c_void) {
    if handle.is_null() {
        return;
    }
    // A panic in a connection's Drop must not unwind into the host; the handle is gone anyway.
    let _ = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: the handle came from `open` and is closed exactly once.
        drop(unsafe { Box::from_raw(handle.cast::<Handle>()) });
    }));
}

unsafe extern "C" fn free_buf(buf: PfBuf) {
    if buf.ptr.is_null() {
        return;
    }
    // SAFETY: every non-empty buffer we hand out comes from `into_buf`.
    drop(unsafe { Vec::from_raw_parts(buf.ptr, buf.len, buf.cap) });
}
