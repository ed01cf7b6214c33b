//! The host's side of ABI v1: find candidate libraries, refuse unsafe ones, load and check
//! them, and call them off the async runtime with a timeout.
//!
//! One bad candidate never affects the others: each is loaded on its own and a failure
//! becomes a [`Rejected`] entry with a reason. Libraries are never unloaded (a handle or a
//! buffer may outlive any scope we could pick), so every loaded [`Library`] is leaked on
//! purpose.

use std::collections::BTreeMap;
use std::ffi::c_void;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use libloading::Library;

use super::abi::{
    EntryFn, PfBuf, PluginHeader, PluginV1, ABI_VERSION, ENTRY_SYMBOL, ENTRY_SYMBOL_NUL, MAGIC,
    STATUS_OK,
};
use super::export::{OpenReply, OpenRequest};
use super::manifest::{Manifest, TransportSpec};
use crate::email::{Email, Receipt};
use crate::error::{DeliveryError, ErrorKind};

/// One directory searched for plugins, and why it is on the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchDir {
    /// The directory.
    pub path: PathBuf,
    /// Where it came from (`POSTFLIGHT_PLUGIN_PATH`, `plugin_path`, ...).
    pub origin: &'static str,
    /// Only files named `libpostflight_*`/`postflight_*` are candidates here (a directory
    /// shared with other programs, such as the executable's own).
    pub postflight_names_only: bool,
}

/// A plugin that loaded and passed every check.
#[derive(Debug, Clone)]
pub struct LoadedPlugin {
    /// The library file.
    pub path: PathBuf,
    /// What it said about itself.
    pub manifest: Manifest,
    table: PluginTable,
}

/// A candidate file that was refused, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// The file (or directory) refused.
    pub path: PathBuf,
    /// Why, in a sentence that says how to fix it.
    pub reason: String,
}

/// Two plugins that both provide one transport name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The transport name.
    pub transport: String,
    /// The libraries claiming it, in search order.
    pub paths: Vec<PathBuf>,
}

/// Everything discovery found.
#[derive(Debug, Default)]
pub struct Registry {
    /// The directories searched, in order.
    pub searched: Vec<SearchDir>,
    /// Plugins loaded, in search order.
    pub plugins: Vec<LoadedPlugin>,
    /// Candidates refused.
    pub rejected: Vec<Rejected>,
    /// Transport names provided by more than one plugin and not settled by `prefer`.
    pub conflicts: Vec<Conflict>,
    /// transport name -> index into `plugins`.
    chosen: BTreeMap<String, usize>,
}

/// Why a transport could not be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// No plugin provides it.
    NotFound {
        /// The name asked for.
        transport: String,
        /// Transports that are available.
        available: Vec<String>,
        /// The closest available name.
        suggestion: Option<String>,
    },
    /// More than one plugin provides it.
    Conflict(Conflict),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound {
                transport,
                available,
                suggestion,
            } => {
                write!(f, "no plugin provides the transport '{transport}'")?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean '{s}'?")?;
                }
                if available.is_empty() {
                    write!(f, " (no plugin was found at all: run `postflight plugins` to see where postflight looked and why candidates were rejected)")
                } else {
                    write!(
                        f,
                        " (available: {}; `postflight plugins` lists them)",
                        available.join(", ")
                    )
                }
            }
            LookupError::Conflict(c) => {
                let paths: Vec<String> = c.paths.iter().map(|p| p.display().to_string()).collect();
                write!(
                    f,
                    "the transport '{}' is provided by more than one plugin: {}; remove one, or choose with `[plugins] prefer = {{ {} = \"PATH\" }}` in the config",
                    c.transport,
                    paths.join(" and "),
                    c.transport
                )
            }
        }
    }
}

impl std::error::Error for LookupError {}

impl Registry {
    /// Searches `dirs` in order and loads every candidate. `prefer` maps a transport name to
    /// the plugin (by name or library path) that wins when several provide it.
    pub fn discover(dirs: Vec<SearchDir>, prefer: &BTreeMap<String, String>) -> Registry {
        let mut registry = Registry {
            searched: dirs.clone(),
            ..Registry::default()
        };
        let mut seen = std::collections::HashSet::new();
        for dir in &dirs {
            for candidate in candidates(dir, &mut registry.rejected) {
                let canonical = candidate
                    .canonicalize()
                    .unwrap_or_else(|_| candidate.clone());
                if !seen.insert(canonical.clone()) {
                    continue; // the same file reached through two search entries
                }
                match load(&canonical) {
                    Ok(plugin) => registry.plugins.push(plugin),
                    Err(reason) => registry.rejected.push(Rejected {
                        path: candidate,
                        reason,
                    }),
                }
            }
        }
        registry.choose_transports(prefer);
        registry
    }

    fn choose_transports(&mut self, prefer: &BTreeMap<String, String>) {
        let mut providers: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            for transport in &plugin.manifest.transports {
                providers
                    .entry(transport.name.clone())
                    .or_default()
                    .push(index);
            }
        }
        for (transport, indexes) in providers {
            if indexes.len() == 1 {
                self.chosen.insert(transport, indexes[0]);
                continue;
            }
            let preferred = prefer.get(&transport).and_then(|wanted| {
                indexes.iter().copied().find(|&i| {
                    let plugin = &self.plugins[i];
                    plugin.manifest.name == *wanted || plugin.path == Path::new(wanted)
                })
            });
            match preferred {
                Some(index) => {
                    self.chosen.insert(transport, index);
                }
                None => self.conflicts.push(Conflict {
                    transport,
                    paths: indexes
                        .iter()
                        .map(|&i| self.plugins[i].path.clone())
                        .collect(),
                }),
            }
        }
    }

    /// The plugin and spec for a transport name.
    pub fn transport(&self, name: &str) -> Result<(&LoadedPlugin, &TransportSpec), LookupError> {
        if let Some(conflict) = self.conflicts.iter().find(|c| c.transport == name) {
            return Err(LookupError::Conflict(conflict.clone()));
        }
        if let Some(&index) = self.chosen.get(name) {
            let plugin = &self.plugins[index];
            let spec = plugin
                .manifest
                .transports
                .iter()
                .find(|t| t.name == name)
                .expect("chosen transports come from the manifest");
            return Ok((plugin, spec));
        }
        let available = self.transport_names();
        let suggestion = crate::suggest::closest(name, available.iter().map(String::as_str));
        Err(LookupError::NotFound {
            transport: name.to_string(),
            available,
            suggestion,
        })
    }

    /// Every transport name some plugin provides, sorted.
    pub fn transport_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .plugins
            .iter()
            .flat_map(|p| p.manifest.transports.iter().map(|t| t.name.clone()))
            .collect();
        names.sort();
        names.dedup();
        names
    }
}

fn candidates(dir: &SearchDir, rejected: &mut Vec<Rejected>) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(&dir.path) else {
        return Vec::new(); // a missing directory is normal: most of the default places are
    };
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| is_library_name(p, dir.postflight_names_only))
        .collect();
    files.sort();
    if !files.is_empty() {
        if let Err(reason) = check_ownership(&dir.path, "directory") {
            rejected.push(Rejected {
                path: dir.path.clone(),
                reason: format!(
                    "{reason}; none of the {} plugin file(s) in it were loaded",
                    files.len()
                ),
            });
            return Vec::new();
        }
    }
    files
}

fn is_library_name(path: &Path, postflight_names_only: bool) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    let is_library =
        path.extension().and_then(|e| e.to_str()) == Some(std::env::consts::DLL_EXTENSION);
    let postflight_name = name.starts_with("libpostflight_") || name.starts_with("postflight_");
    is_library && (!postflight_names_only || postflight_name)
}

/// Refuses what another user could have replaced: like ssh and sudo, a plugin file or its
/// directory must be owned by us or root and not writable by group or others.
fn check_ownership(path: &Path, what: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the {what}'s permissions: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me && meta.uid() != 0 {
        return Err(format!(
            "unsafe permissions: the {what} is owned by uid {} (neither you nor root); fix with `chown` or move it",
            meta.uid()
        ));
    }
    if meta.mode() & 0o022 != 0 {
        return Err(format!(
            "unsafe permissions: the {what} is writable by group or others (mode {:o}); fix with `chmod go-w {}`",
            meta.mode() & 0o7777,
            path.display()
        ));
    }
    Ok(())
}

fn load(path: &Path) -> Result<LoadedPlugin, String> {
    check_ownership(path, "file")?;
    // SAFETY: loading a library runs its initialisers. We only load files that passed the
    // ownership checks, from directories the operator configured or postflight installs to.
    let library =
        unsafe { Library::new(path) }.map_err(|e| format!("not a loadable library: {e}"))?;
    // SAFETY: the symbol's type is fixed by the ABI; we check the header before trusting more.
    let entry: EntryFn = unsafe {
        *library.get::<EntryFn>(ENTRY_SYMBOL_NUL).map_err(|_| {
            format!("not a postflight plugin: the library does not export `{ENTRY_SYMBOL}`")
        })?
    };
    // Keep the library mapped forever: function pointers and buffers outlive any scope.
    std::mem::forget(library);
    // SAFETY: calling the entry function is what the ABI asks for; it takes no arguments.
    let header: *const PluginHeader = unsafe { entry() };
    if header.is_null() {
        return Err(format!("`{ENTRY_SYMBOL}` returned a null table"));
    }
    // SAFETY: a non-null entry result points to at least a header per the ABI.
    let header_value = unsafe { *header };
    if header_value.magic != MAGIC {
        return Err(format!(
            "`{ENTRY_SYMBOL}` returned a table without the postflight magic value (found {:#x})",
            header_value.magic
        ));
    }
    if header_value.abi_version != ABI_VERSION {
        return Err(format!(
            "plugin ABI version {} is not supported by this postflight (it speaks version {ABI_VERSION}); install a plugin built for ABI {ABI_VERSION}",
            header_value.abi_version
        ));
    }
    // SAFETY: magic and version say the table is a PluginV1; it is static in the library.
    let table = PluginTable(unsafe { &*header.cast::<PluginV1>() });
    // SAFETY: describe takes nothing and returns a plugin buffer.
    let raw = table.take(unsafe { (table.0.describe)() });
    let manifest: Manifest = serde_json::from_slice(&raw)
        .map_err(|e| format!("its manifest is not valid JSON of the expected shape: {e}"))?;
    if manifest.abi_version != ABI_VERSION {
        return Err(format!(
            "its manifest says ABI version {} but its table says {ABI_VERSION}",
            manifest.abi_version
        ));
    }
    if manifest.transports.is_empty() {
        return Err("its manifest lists no transports".to_string());
    }
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        manifest,
        table,
    })
}

/// The static function table of a loaded plugin.
#[derive(Clone, Copy)]
struct PluginTable(&'static PluginV1);

impl fmt::Debug for PluginTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PluginTable")
    }
}

impl PluginTable {
    /// Copies a plugin buffer into our memory and gives it back to the plugin.
    fn take(self, buf: PfBuf) -> Vec<u8> {
        if buf.ptr.is_null() || buf.len == 0 {
            // SAFETY: returning an empty buffer to its owner is always allowed.
            unsafe { (self.0.free_buf)(buf) };
            return Vec::new();
        }
        // SAFETY: the plugin promises `len` readable bytes at `ptr` until `free_buf`.
        let bytes = unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec();
        // SAFETY: the buffer came from this plugin and is released once.
        unsafe { (self.0.free_buf)(buf) };
        bytes
    }
}

fn plugin_error(what: &str, detail: impl fmt::Display) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::Plugin,
        format!("the plugin returned {what}: {detail}"),
    )
    .with_hint("this is a bug in the plugin; report it to the plugin's author")
}

fn parse_error(raw: &[u8]) -> DeliveryError {
    serde_json::from_slice::<DeliveryError>(raw)
        .unwrap_or_else(|e| plugin_error("an error that is not valid JSON", e))
}

impl LoadedPlugin {
    /// Opens a transport (validates settings; never touches the network). Blocking: call it
    /// through [`open_timed`](Self::open_timed) from async code.
    pub fn open(&self, request: &OpenRequest) -> Result<(Session, Vec<String>), DeliveryError> {
        open_with(self.table, request)
    }

    /// [`open`](Self::open) on a blocking thread, abandoned after `timeout`.
    pub async fn open_timed(
        &self,
        request: OpenRequest,
        timeout: Duration,
    ) -> Result<(Session, Vec<String>), DeliveryError> {
        let table = self.table;
        let task = tokio::task::spawn_blocking(move || open_with(table, &request));
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(plugin_error("nothing (its thread died)", join)),
            Err(_) => Err(hung("open", timeout)),
        }
    }
}

fn hung(what: &str, timeout: Duration) -> DeliveryError {
    DeliveryError::transient(
        ErrorKind::Timeout,
        format!(
            "the transport did not finish {what} within {}",
            humantime::format_duration(timeout)
        ),
    )
    .with_hint("the server may be slow or unreachable; the notification stays queued (raise `send_timeout` if the server is just slow)")
}

fn open_with(
    table: PluginTable,
    request: &OpenRequest,
) -> Result<(Session, Vec<String>), DeliveryError> {
    let json = serde_json::to_vec(request).expect("an open request always serializes");
    let mut handle: *mut c_void = std::ptr::null_mut();
    let mut out = PfBuf::EMPTY;
    // SAFETY: the pointers are valid for the call; the ABI defines what the plugin writes.
    let status = unsafe { (table.0.open)(json.as_ptr(), json.len(), &mut handle, &mut out) };
    let raw = table.take(out);
    if status != STATUS_OK {
        return Err(parse_error(&raw));
    }
    if handle.is_null() {
        return Err(plugin_error("success from open but no handle", "null"));
    }
    let session = Session { handle, table };
    if raw.is_empty() {
        return Ok((session, Vec::new()));
    }
    match serde_json::from_slice::<OpenReply>(&raw) {
        Ok(reply) => Ok((session, reply.warnings)),
        Err(e) => Err(plugin_error("an open reply that is not valid JSON", e)),
    }
}

/// An open transport handle. Closed when dropped.
#[derive(Debug)]
pub struct Session {
    handle: *mut c_void,
    table: PluginTable,
}

// SAFETY: the ABI requires handles to be usable from any thread, one thread at a time; a
// Session is only ever used through `&mut self` or by value.
unsafe impl Send for Session {}

impl Session {
    /// Sends one email. Blocking: call [`send_timed`](Self::send_timed) from async code.
    pub fn send(&mut self, email: &Email) -> Result<Receipt, DeliveryError> {
        let json = serde_json::to_vec(email).expect("an email always serializes");
        let mut out = PfBuf::EMPTY;
        // SAFETY: the handle is live (we own it) and the pointers are valid for the call.
        let status =
            unsafe { (self.table.0.send)(self.handle, json.as_ptr(), json.len(), &mut out) };
        let raw = self.table.take(out);
        if status != STATUS_OK {
            return Err(parse_error(&raw));
        }
        serde_json::from_slice::<Receipt>(&raw)
            .map_err(|e| plugin_error("a receipt that is not valid JSON", e))
    }

    /// Sends on a blocking thread and gives up after `timeout`. The session comes back when
    /// the call finished; after a timeout it is abandoned to the stuck thread (which closes it
    /// if the call ever returns), and the caller must open a new one.
    pub async fn send_timed(
        mut self,
        email: Email,
        timeout: Duration,
    ) -> (Option<Session>, Result<Receipt, DeliveryError>) {
        let task = tokio::task::spawn_blocking(move || {
            let result = self.send(&email);
            (self, result)
        });
        match tokio::time::timeout(timeout, task).await {
            Ok(Ok((session, result))) => (Some(session), result),
            Ok(Err(join)) => (None, Err(plugin_error("nothing (its thread died)", join))),
            Err(_) => (None, Err(hung("sending", timeout))),
        }
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        // SAFETY: the handle came from this plugin's open and is closed exactly once.
        unsafe { (self.table.0.close)(self.handle) };
    }
}
