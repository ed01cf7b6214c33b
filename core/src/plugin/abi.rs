//! Plugin ABI v1: the C-level types shared by the host and every plugin (see PLUGINS.md).
//!
//! A plugin exports one symbol, [`ENTRY_SYMBOL`], a function taking nothing and returning a
//! pointer to a static table whose first fields are [`PluginHeader`]. The host checks the magic
//! value and the ABI version before it reads anything else, then treats the table as
//! [`PluginV1`]. Every string crosses the boundary as UTF-8 JSON in a byte buffer; a buffer the
//! plugin returns is handed back to the plugin's `free_buf`, never freed by the host.

use std::ffi::c_void;

/// The exported symbol's name (without the NUL terminator, see [`ENTRY_SYMBOL_NUL`]).
pub const ENTRY_SYMBOL: &str = "postflight_plugin_entry";
/// [`ENTRY_SYMBOL`] NUL-terminated, as `dlsym` wants it.
pub const ENTRY_SYMBOL_NUL: &[u8] = b"postflight_plugin_entry\0";
/// `"PFLT"` read as a little-endian `u32`: tells a postflight table from random memory.
pub const MAGIC: u32 = u32::from_le_bytes(*b"PFLT");
/// The ABI version this host and the export macro speak.
pub const ABI_VERSION: u32 = 1;

/// Status returned by `open` and `send`: success, `out` holds the result JSON.
pub const STATUS_OK: i32 = 0;
/// Status returned by `open` and `send`: failure, `out` holds an error JSON object. The host
/// treats every status other than [`STATUS_OK`] as a failure.
pub const STATUS_ERROR: i32 = 1;

/// The first fields of every plugin table, whatever its version.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct PluginHeader {
    /// Must be [`MAGIC`].
    pub magic: u32,
    /// The ABI version of the table that follows (1 for [`PluginV1`]).
    pub abi_version: u32,
}

/// A byte buffer allocated by the plugin. `ptr` may be null when `len` is 0. `cap` is the
/// plugin's own bookkeeping (the Rust macro stores the `Vec` capacity there); the host never
/// reads it, it only passes the buffer back unchanged to `free_buf`, exactly once per buffer
/// the plugin returned, empty ones included.
#[repr(C)]
#[derive(Debug)]
pub struct PfBuf {
    /// Start of the bytes.
    pub ptr: *mut u8,
    /// Number of bytes.
    pub len: usize,
    /// Plugin-private.
    pub cap: usize,
}

impl PfBuf {
    /// The empty buffer.
    pub const EMPTY: PfBuf = PfBuf {
        ptr: std::ptr::null_mut(),
        len: 0,
        cap: 0,
    };
}

/// The `describe` entry: returns the manifest JSON. Must not fail; must be callable any time.
pub type DescribeFn = unsafe extern "C" fn() -> PfBuf;
/// The `open` entry: `request` is `{"transport": NAME, "settings": {...}}` as JSON, valid for
/// the call only and not NUL-terminated. On [`STATUS_OK`] `*handle` is set and `*out` holds
/// `{"warnings": [...]}` (or is empty); on [`STATUS_ERROR`] `*out` holds an error object and
/// the host ignores `*handle` (it is never closed). Must not touch the network. The host sets
/// `*handle` to null and `*out` to [`PfBuf::EMPTY`] before the call.
pub type OpenFn = unsafe extern "C" fn(
    request: *const u8,
    request_len: usize,
    handle: *mut *mut c_void,
    out: *mut PfBuf,
) -> i32;
/// The `send` entry: `email` is the email JSON (valid for the call only). `*out` holds a
/// receipt ([`STATUS_OK`]) or an error object ([`STATUS_ERROR`]). Calls on one handle may come
/// from different threads but never overlap; calls on different handles may.
pub type SendFn = unsafe extern "C" fn(
    handle: *mut c_void,
    email: *const u8,
    email_len: usize,
    out: *mut PfBuf,
) -> i32;
/// The `close` entry: releases a handle from a successful `open`. Called exactly once per
/// handle, from any thread (possibly one whose `send` the host stopped waiting for).
pub type CloseFn = unsafe extern "C" fn(handle: *mut c_void);
/// The `free_buf` entry: releases a buffer the plugin returned. Must accept a null `ptr`.
pub type FreeBufFn = unsafe extern "C" fn(buf: PfBuf);

/// The version 1 function table.
#[repr(C)]
#[derive(Debug)]
pub struct PluginV1 {
    /// `magic` = [`MAGIC`], `abi_version` = 1.
    pub header: PluginHeader,
    /// See [`DescribeFn`].
    pub describe: DescribeFn,
    /// See [`OpenFn`].
    pub open: OpenFn,
    /// See [`SendFn`].
    pub send: SendFn,
    /// See [`CloseFn`].
    pub close: CloseFn,
    /// See [`FreeBufFn`].
    pub free_buf: FreeBufFn,
}

/// The type of the exported entry function: returns a pointer to a static table (never null),
/// called once right after the library is loaded.
pub type EntryFn = unsafe extern "C" fn() -> *const PluginHeader;
