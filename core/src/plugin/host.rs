//! The host's side of ABI v1: find candidate libraries, refuse unsafe ones, load and check
//! them, and call them off the async runtime with a timeout.
//!
//! One bad candidate never affects the others: each is loaded on its own and a failure
//! becomes a [`Rejected`] entry with a reason. Libraries are never unloaded (a handle or a
//! buffer may outlive any scope we could pick), so every loaded library is leaked on purpose.
//!
//! Every call into a plugin that may block (loading a candidate and its `describe`, `open`,
//! `send`, and the `close` that follows an abandoned call) runs on a thread of its own, not on
//! a runtime worker and not on tokio's blocking pool: a plugin that never returns is abandoned
//! after the timeout, and because the thread is detached it cannot keep the process from
//! exiting either.

use std::collections::{BTreeMap, HashSet};
use std::ffi::c_void;
use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::abi::{
    EntryFn, PfBuf, PluginHeader, PluginV1, ABI_VERSION, ENTRY_SYMBOL, ENTRY_SYMBOL_NUL, MAGIC,
    STATUS_OK,
};
use super::export::{OpenReply, OpenRequest};
use super::manifest::{Manifest, TransportSpec};
use crate::email::{Email, Receipt};
use crate::error::{DeliveryError, ErrorKind};

/// The ABI versions this host can load. A future host that adds version 2 keeps 1 here for
/// as long as it promises to (see PLUGINS.md, "Versions").
pub const SUPPORTED_ABI_VERSIONS: &[u32] = &[ABI_VERSION];

/// Settings keys that belong to postflight, not to the transport; no plugin may declare them.
const RESERVED_SETTINGS: [&str; 2] = ["transport", "from"];

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
    /// The library file (its canonical path).
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

/// Two or more plugins that provide one transport name, with no `[plugins] prefer` entry
/// that settles it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The transport name.
    pub transport: String,
    /// The libraries claiming it, in search order.
    pub paths: Vec<PathBuf>,
    /// The `prefer` entry for this transport, when there is one that names none of them.
    pub unmatched_preference: Option<String>,
}

impl fmt::Display for Conflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let paths: Vec<String> = self.paths.iter().map(|p| p.display().to_string()).collect();
        write!(
            f,
            "the transport '{}' is provided by more than one plugin: {}",
            self.transport,
            paths.join(" and ")
        )?;
        if let Some(wanted) = &self.unmatched_preference {
            write!(
                f,
                "; `[plugins] prefer` names '{wanted}' for it, which is none of them (give a plugin name or one of these paths)"
            )
        } else {
            write!(
                f,
                "; remove one, or choose with `[plugins] prefer = {{ {} = \"PLUGIN NAME or PATH\" }}` in the config",
                self.transport
            )
        }
    }
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
    /// `prefer` entries that did not apply as written (worth a warning, not an error).
    pub warnings: Vec<String>,
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
            LookupError::Conflict(c) => c.fmt(f),
        }
    }
}

impl std::error::Error for LookupError {}

impl Registry {
    /// Searches `dirs` in order and loads every candidate. `prefer` maps a transport name to
    /// the plugin (by name or library path) that wins when several provide it; when that
    /// names a plugin found more than once, the first in search order wins.
    pub fn discover(dirs: Vec<SearchDir>, prefer: &BTreeMap<String, String>) -> Registry {
        let mut registry = Registry {
            searched: dirs.clone(),
            ..Registry::default()
        };
        let mut seen = HashSet::new();
        for dir in &dirs {
            for candidate in candidates(dir, &mut registry.rejected) {
                let canonical = match candidate.canonicalize() {
                    Ok(canonical) => canonical,
                    Err(e) => {
                        registry.rejected.push(Rejected {
                            path: candidate,
                            reason: format!("cannot resolve the path: {e}"),
                        });
                        continue;
                    }
                };
                if !seen.insert(canonical.clone()) {
                    continue; // the same file reached through two search entries
                }
                match load_checked(&candidate, &canonical, Some(&dir.path)) {
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

    /// A registry of already loaded plugins (in "search order"), with `prefer` applied.
    pub fn from_plugins(plugins: Vec<LoadedPlugin>, prefer: &BTreeMap<String, String>) -> Registry {
        let mut registry = Registry {
            plugins,
            ..Registry::default()
        };
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
        for transport in prefer.keys() {
            if !providers.contains_key(transport) {
                self.warnings.push(format!(
                    "`[plugins] prefer` has an entry for the transport '{transport}', which no plugin provides"
                ));
            }
        }
        for (transport, indexes) in providers {
            let wanted = prefer.get(&transport);
            let preferred = wanted.and_then(|wanted| {
                indexes
                    .iter()
                    .copied()
                    .find(|&i| self.plugins[i].answers_to(wanted))
            });
            match (indexes.as_slice(), preferred) {
                (_, Some(index)) => {
                    self.chosen.insert(transport, index);
                }
                (&[only], None) => {
                    if let Some(wanted) = wanted {
                        self.warnings.push(format!(
                            "`[plugins] prefer` wants '{wanted}' for the transport '{transport}', but only {} provides it; that one is used",
                            self.plugins[only].path.display()
                        ));
                    }
                    self.chosen.insert(transport, only);
                }
                (_, None) => self.conflicts.push(Conflict {
                    transport,
                    paths: indexes
                        .iter()
                        .map(|&i| self.plugins[i].path.clone())
                        .collect(),
                    unmatched_preference: wanted.cloned(),
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

/// Why a file or directory with this owner and mode must not be trusted, if it must not:
/// like ssh and sudo, it must be owned by `me` or root and not writable by group or others.
fn ownership_problem(owner: u32, mode: u32, me: u32, what: &str, path: &Path) -> Option<String> {
    if owner != me && owner != 0 {
        return Some(format!(
            "unsafe permissions: the {what} is owned by uid {owner} (neither you nor root); fix with `chown` or move it"
        ));
    }
    if mode & 0o022 != 0 {
        return Some(format!(
            "unsafe permissions: the {what} is writable by group or others (mode {:o}); fix with `chmod go-w {}`",
            mode & 0o7777,
            path.display()
        ));
    }
    None
}

/// Refuses what another user could have replaced (see [`ownership_problem`]).
fn check_ownership(path: &Path, what: &str) -> Result<(), String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| format!("cannot read the {what}'s permissions: {e}"))?;
    // SAFETY: geteuid has no preconditions.
    let me = unsafe { libc::geteuid() };
    match ownership_problem(meta.uid(), meta.mode(), me, what, path) {
        Some(problem) => Err(problem),
        None => Ok(()),
    }
}

/// Loads one library file outside discovery (a driver, a test, an explicit path), with the
/// same checks: the file and its directory must be safe, and the table and manifest valid.
pub fn load_file(path: &Path) -> Result<LoadedPlugin, Rejected> {
    let rejected = |reason: String| Rejected {
        path: path.to_path_buf(),
        reason,
    };
    let canonical = path
        .canonicalize()
        .map_err(|e| rejected(format!("cannot resolve the path: {e}")))?;
    load_checked(path, &canonical, None).map_err(rejected)
}

/// The safety checks, then [`load`]. `searched` is the directory discovery already checked.
fn load_checked(
    path: &Path,
    canonical: &Path,
    searched: Option<&Path>,
) -> Result<LoadedPlugin, String> {
    let meta = std::fs::metadata(canonical)
        .map_err(|e| format!("cannot read the file's metadata: {e}"))?;
    if !meta.is_file() {
        return Err("not a regular file".to_string());
    }
    // A symlink may lead out of the searched directory: the directory that really holds the
    // file must be just as safe.
    if let Some(real_dir) = canonical.parent() {
        let already_checked = searched
            .and_then(|d| d.canonicalize().ok())
            .is_some_and(|d| d == real_dir);
        if !already_checked {
            check_ownership(real_dir, "directory").map_err(|reason| {
                if path == canonical {
                    format!("{reason} ({})", real_dir.display())
                } else {
                    format!("{reason} ({}, where the link leads)", real_dir.display())
                }
            })?;
        }
    }
    check_ownership(canonical, "file")?;
    let owned = canonical.to_path_buf();
    load_within(DESCRIBE_TIMEOUT, move || load(&owned))
}

/// How long loading one candidate may take: `dlopen` (its initialisers), the entry function
/// and `describe`. A candidate that takes longer is rejected and the others still load.
pub const DESCRIBE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs `load` (which loads one candidate and calls its `describe`) on a detached thread of
/// its own and waits at most `timeout`: a plugin that never answers is rejected with a reason
/// and abandoned to that thread, which cannot keep postflight from exiting.
fn load_within(
    timeout: Duration,
    load: impl FnOnce() -> Result<LoadedPlugin, String> + Send + 'static,
) -> Result<LoadedPlugin, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name("postflight-plugin-describe".into())
        .spawn(move || {
            let _ = tx.send(load());
        })
        .map_err(|e| format!("cannot start a thread to load the plugin: {e}"))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(format!(
            "did not answer describe within {}; the plugin is stuck while loading or describing itself (report it to its author, or remove it from the plugin path)",
            humantime::format_duration(timeout)
        )),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err("its loading thread died before describe answered".to_string())
        }
    }
}

fn load(path: &Path) -> Result<LoadedPlugin, String> {
    use libloading::os::unix::{Library, RTLD_LOCAL, RTLD_NOW};
    // SAFETY: loading a library runs its initialisers. We only load files that passed the
    // ownership checks, from directories the operator configured or postflight installs to.
    // RTLD_NOW: an unresolved symbol is a clear error now, not a crash in the middle of a send.
    let library = unsafe { Library::open(Some(path), RTLD_NOW | RTLD_LOCAL) }
        .map_err(|e| format!("not a loadable library: {e}"))?;
    // SAFETY: the symbol's type is fixed by the ABI; we check the header before trusting more.
    let entry: EntryFn = unsafe {
        *library.get::<EntryFn>(ENTRY_SYMBOL_NUL).map_err(|_| {
            format!("not a postflight plugin: the library does not export `{ENTRY_SYMBOL}`")
        })?
    };
    // Keep the library mapped forever: function pointers and buffers outlive any scope.
    std::mem::forget(library);
    // SAFETY: calling the entry function is what the ABI asks for; it takes no arguments.
    let header = unsafe { entry() };
    // SAFETY: the entry function returned it, and the library stays loaded forever.
    unsafe { from_header(path, header) }
}

/// Checks a table the way loading a library does, for a table that did not come from
/// `dlopen` (tests, a plugin linked into the binary).
///
/// # Safety
/// `header` must be null or point to a `'static` [`PluginHeader`]; when its magic and version
/// say ABI v1, it must be the start of a `'static` [`PluginV1`] whose functions honour the ABI.
pub unsafe fn from_header(
    path: &Path,
    header: *const PluginHeader,
) -> Result<LoadedPlugin, String> {
    if header.is_null() {
        return Err(format!("`{ENTRY_SYMBOL}` returned a null table"));
    }
    // SAFETY: a non-null entry result points to at least a header per the ABI.
    let header_value = unsafe { *header };
    if header_value.magic != MAGIC {
        return Err(format!(
            "`{ENTRY_SYMBOL}` returned a table without the postflight magic value (found {:#010x}, expected {MAGIC:#010x}); the library is not a postflight plugin or is corrupt",
            header_value.magic
        ));
    }
    if !SUPPORTED_ABI_VERSIONS.contains(&header_value.abi_version) {
        let advice = if header_value.abi_version > ABI_VERSION {
            "upgrade postflight, or install a build of the plugin for this ABI"
        } else {
            "rebuild the plugin against the current postflight-core"
        };
        return Err(format!(
            "plugin ABI version {} is not supported by this postflight (it loads version {}); {advice}",
            header_value.abi_version,
            SUPPORTED_ABI_VERSIONS
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    // SAFETY: magic and version say the table is a PluginV1; it is static in the library.
    let table = PluginTable(unsafe { &*header.cast::<PluginV1>() });
    // SAFETY: describe takes nothing and returns a plugin buffer.
    let raw = table.take(unsafe { (table.0.describe)() });
    let manifest = parse_manifest(&raw)?;
    if manifest.abi_version != header_value.abi_version {
        return Err(format!(
            "its manifest says ABI version {} but its table says {}",
            manifest.abi_version, header_value.abi_version
        ));
    }
    check_manifest(&manifest)?;
    Ok(LoadedPlugin {
        path: path.to_path_buf(),
        manifest,
        table,
    })
}

fn parse_manifest(raw: &[u8]) -> Result<Manifest, String> {
    serde_json::from_slice::<Manifest>(raw).map_err(|e| {
        // The export macro answers a panicking `describe` with a JSON string saying so.
        match serde_json::from_slice::<serde_json::Value>(raw) {
            Ok(serde_json::Value::String(s)) => format!("its describe function failed: {s}"),
            _ => format!("its manifest is not valid JSON of the expected shape: {e}"),
        }
    })
}

/// What the host relies on beyond the JSON shape: names that can be looked up unambiguously.
fn check_manifest(manifest: &Manifest) -> Result<(), String> {
    let bad_name = |n: &str| n.is_empty() || n.chars().any(|c| c.is_whitespace() || c.is_control());
    if bad_name(&manifest.name) {
        return Err(format!(
            "its manifest has an invalid plugin name {:?} (empty or containing spaces)",
            manifest.name
        ));
    }
    if manifest.transports.is_empty() {
        return Err("its manifest lists no transports".to_string());
    }
    let mut transports = HashSet::new();
    for transport in &manifest.transports {
        if bad_name(&transport.name) {
            return Err(format!(
                "its manifest has an invalid transport name {:?} (empty or containing spaces)",
                transport.name
            ));
        }
        if !transports.insert(transport.name.as_str()) {
            return Err(format!(
                "its manifest lists the transport '{}' twice",
                transport.name
            ));
        }
        let mut settings = HashSet::new();
        for setting in &transport.settings {
            if bad_name(&setting.name) || RESERVED_SETTINGS.contains(&setting.name.as_str()) {
                return Err(format!(
                    "its transport '{}' declares the setting {:?}, which is empty, contains spaces or is reserved ({})",
                    transport.name,
                    setting.name,
                    RESERVED_SETTINGS.join(", ")
                ));
            }
            if !settings.insert(setting.name.as_str()) {
                return Err(format!(
                    "its transport '{}' declares the setting '{}' twice",
                    transport.name, setting.name
                ));
            }
        }
    }
    Ok(())
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
    /// Copies a plugin buffer into our memory and gives it back to the plugin. Every buffer
    /// a plugin returns goes back to its `free_buf` exactly once, empty ones included.
    fn take(self, buf: PfBuf) -> Vec<u8> {
        let bytes = if buf.ptr.is_null() || buf.len == 0 {
            Vec::new()
        } else {
            // SAFETY: the plugin promises `len` readable bytes at `ptr` until `free_buf`.
            unsafe { std::slice::from_raw_parts(buf.ptr, buf.len) }.to_vec()
        };
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

/// Reads the error object a plugin returned with a failure status. A kind this host does not
/// know (from a newer plugin) becomes `other` and keeps the rest; anything that is not an
/// error object at all is the plugin's fault.
fn parse_error(raw: &[u8]) -> DeliveryError {
    if let Ok(error) = serde_json::from_slice::<DeliveryError>(raw) {
        return error;
    }
    let value = match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(value) => value,
        Err(e) if raw.is_empty() => {
            return plugin_error("a failure without an error object", e);
        }
        Err(e) => return plugin_error("an error that is not valid JSON", e),
    };
    let Some(object) = value.as_object() else {
        return plugin_error("an error that is not a JSON object", value);
    };
    let Some(message) = object.get("message").and_then(|m| m.as_str()) else {
        return plugin_error("an error object without a `message`", value);
    };
    let text = |key: &str| object.get(key).and_then(|v| v.as_str()).map(str::to_string);
    let kind = object
        .get("kind")
        .and_then(|k| serde_json::from_value::<ErrorKind>(k.clone()).ok())
        .unwrap_or(ErrorKind::Other);
    let mut error = DeliveryError::new(
        kind,
        object
            .get("permanent")
            .and_then(|p| p.as_bool())
            .unwrap_or(false),
        message,
    );
    error.reply = text("reply");
    error.hint = text("hint");
    error.details = text("details");
    error.retry_after_secs = object.get("retry_after_secs").and_then(|v| v.as_u64());
    error
}

/// Starts `job` on a detached thread of its own, named after the call.
fn spawn_call(name: &str, job: impl FnOnce() + Send + 'static) -> Result<(), DeliveryError> {
    std::thread::Builder::new()
        .name(format!("postflight-plugin-{name}"))
        .spawn(job)
        .map(drop)
        .map_err(|e| {
            DeliveryError::transient(
                ErrorKind::Other,
                format!("cannot start a thread to call the plugin: {e}"),
            )
        })
}

/// Runs `call` on a thread of its own and waits for it in async code, at most `timeout`.
/// When the wait gives up, the result is dropped on that thread whenever the call returns,
/// which closes any session it holds.
async fn call_async<T: Send + 'static>(
    name: &str,
    doing: &str,
    timeout: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DeliveryError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    spawn_call(name, move || {
        let _ = tx.send(call());
    })?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(_)) => Err(plugin_error("nothing (its thread died)", doing)),
        Err(_) => Err(hung(doing, timeout)),
    }
}

/// [`call_async`] for code that is not async: blocks the calling thread, at most `timeout`.
fn call_blocking<T: Send + 'static>(
    name: &str,
    doing: &str,
    timeout: Duration,
    call: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DeliveryError> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    spawn_call(name, move || {
        let _ = tx.send(call());
    })?;
    match rx.recv_timeout(timeout) {
        Ok(value) => Ok(value),
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            Err(plugin_error("nothing (its thread died)", doing))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(hung(doing, timeout)),
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
    .with_hint("the server may be slow or unreachable (or the plugin is stuck); the notification stays queued (raise `send_timeout` if the server is just slow)")
}

impl LoadedPlugin {
    /// Whether a `[plugins] prefer` value names this plugin: its manifest name, or the path
    /// of its library (as found, or any path that leads to the same file).
    pub fn answers_to(&self, wanted: &str) -> bool {
        if self.manifest.name == wanted {
            return true;
        }
        let wanted = Path::new(wanted);
        wanted == self.path || wanted.canonicalize().is_ok_and(|c| c == self.path)
    }

    /// Opens a transport (validates settings; never touches the network) on the calling
    /// thread, however long the plugin takes. Prefer [`open_timed`](Self::open_timed) in
    /// async code and [`open_blocking`](Self::open_blocking) elsewhere.
    pub fn open(&self, request: &OpenRequest) -> Result<(Session, Vec<String>), DeliveryError> {
        open_with(self.table, request)
    }

    /// [`open`](Self::open) on a thread of its own, abandoned after `timeout`.
    pub async fn open_timed(
        &self,
        request: OpenRequest,
        timeout: Duration,
    ) -> Result<(Session, Vec<String>), DeliveryError> {
        let table = self.table;
        call_async("open", "opening", timeout, move || {
            open_with(table, &request)
        })
        .await?
    }

    /// [`open`](Self::open) on a thread of its own, abandoned after `timeout`; for callers
    /// that are not async (blocks the calling thread).
    pub fn open_blocking(
        &self,
        request: OpenRequest,
        timeout: Duration,
    ) -> Result<(Session, Vec<String>), DeliveryError> {
        let table = self.table;
        call_blocking("open", "opening", timeout, move || {
            open_with(table, &request)
        })?
    }
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
        // Per the ABI the handle means nothing after a failure: it is neither used nor closed.
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
        // `session` is dropped here, which closes the handle.
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
    /// Sends one email on the calling thread, however long the plugin takes. Prefer
    /// [`send_timed`](Self::send_timed) in async code.
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

    /// Sends on a thread of its own and gives up after `timeout`. The session comes back when
    /// the call finished; after a timeout it is abandoned to the stuck thread (which closes it
    /// if the call ever returns), and the caller must open a new one.
    pub async fn send_timed(
        mut self,
        email: Email,
        timeout: Duration,
    ) -> (Option<Session>, Result<Receipt, DeliveryError>) {
        let call = move || {
            let result = self.send(&email);
            (self, result)
        };
        match call_async("send", "sending", timeout, call).await {
            Ok((session, result)) => (Some(session), result),
            Err(e) => (None, Err(e)),
        }
    }
}

/// How long dropping a [`Session`] waits for the plugin's `close` before leaving it to its
/// thread (a plugin that hangs in `close` must not keep postflight from exiting).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// A handle on its way to `close` on another thread.
struct Closing {
    handle: *mut c_void,
    table: PluginTable,
}

// SAFETY: as for Session: the handle may be used from any thread, one at a time, and the
// Session that owned it is gone.
unsafe impl Send for Closing {}

impl Closing {
    fn close(self) {
        // SAFETY: the handle came from this plugin's open and is closed exactly once.
        unsafe { (self.table.0.close)(self.handle) };
    }
}

impl Drop for Session {
    /// Closes the handle on a thread of its own, waiting at most [`CLOSE_TIMEOUT`], so a
    /// plugin's `close` neither runs on an async worker nor blocks without bound.
    fn drop(&mut self) {
        let closing = Closing {
            handle: self.handle,
            table: self.table,
        };
        let (done, finished) = std::sync::mpsc::channel();
        let job = move || {
            closing.close();
            let _ = done.send(());
        };
        // Without a thread to be had (the system is out of them) the handle is left open, and
        // the operating system closes its sockets when postflight exits, moments later.
        if std::thread::Builder::new()
            .name("postflight-plugin-close".into())
            .spawn(job)
            .is_ok()
        {
            let _ = finished.recv_timeout(CLOSE_TIMEOUT);
        }
    }
}

#[cfg(test)]
mod tests;
