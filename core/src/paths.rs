//! Where postflight finds its config, keeps its state and looks for plugins (DESIGN sections
//! 3, 7 and 8). The three location variables are read here and nowhere else.

use std::path::{Path, PathBuf};

use crate::plugin::host::SearchDir;

/// Names the config file: `POSTFLIGHT_CONFIG`.
pub const ENV_CONFIG: &str = "POSTFLIGHT_CONFIG";
/// Names the state directory: `POSTFLIGHT_STATE_DIR`.
pub const ENV_STATE_DIR: &str = "POSTFLIGHT_STATE_DIR";
/// Colon-separated plugin directories searched first: `POSTFLIGHT_PLUGIN_PATH`.
pub const ENV_PLUGIN_PATH: &str = "POSTFLIGHT_PLUGIN_PATH";

/// Where the config file is expected, and whether the operator named it explicitly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigLocation {
    /// The file.
    pub path: PathBuf,
    /// `true` for `--config` or `POSTFLIGHT_CONFIG`: a missing file is then an error.
    pub explicit: bool,
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

fn home() -> Option<PathBuf> {
    env_path("HOME")
}

/// `--config FILE`, else `$POSTFLIGHT_CONFIG`, else `$XDG_CONFIG_HOME/postflight/config.toml`
/// (`~/.config/...` when unset). `None` only when not even a home directory is known.
pub fn config_location(flag: Option<&Path>) -> Option<ConfigLocation> {
    if let Some(path) = flag {
        return Some(ConfigLocation {
            path: path.to_path_buf(),
            explicit: true,
        });
    }
    if let Some(path) = env_path(ENV_CONFIG) {
        return Some(ConfigLocation {
            path,
            explicit: true,
        });
    }
    let base = env_path("XDG_CONFIG_HOME").or_else(|| home().map(|h| h.join(".config")))?;
    Some(ConfigLocation {
        path: base.join("postflight").join("config.toml"),
        explicit: false,
    })
}

/// `$POSTFLIGHT_STATE_DIR`, else `$XDG_STATE_HOME/postflight` (`~/.local/state/postflight`).
pub fn state_dir() -> PathBuf {
    if let Some(dir) = env_path(ENV_STATE_DIR) {
        return dir;
    }
    let base = env_path("XDG_STATE_HOME")
        .or_else(|| home().map(|h| h.join(".local").join("state")))
        .unwrap_or_else(|| PathBuf::from("/var/lib"));
    base.join("postflight")
}

/// The plugin search order of DESIGN section 8.
pub fn plugin_search_dirs(config_plugin_path: &[PathBuf]) -> Vec<SearchDir> {
    let mut dirs = Vec::new();
    if let Some(value) = std::env::var_os(ENV_PLUGIN_PATH) {
        for path in std::env::split_paths(&value).filter(|p| !p.as_os_str().is_empty()) {
            dirs.push(SearchDir {
                path,
                origin: ENV_PLUGIN_PATH,
                postflight_names_only: false,
            });
        }
    }
    for path in config_plugin_path {
        dirs.push(SearchDir {
            path: path.clone(),
            origin: "plugin_path (config)",
            postflight_names_only: false,
        });
    }
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.canonicalize().ok())
        .and_then(|exe| exe.parent().map(Path::to_path_buf))
    {
        dirs.push(SearchDir {
            path: exe_dir
                .join("..")
                .join("lib")
                .join("postflight")
                .join("plugins"),
            origin: "<exe>/../lib/postflight/plugins",
            postflight_names_only: false,
        });
        // The executable's own directory may hold anything (e.g. /usr/bin), so only files
        // named like our plugins are candidates there. DESIGN puts it before
        // `<exe>/../lib/postflight/plugins`, which is how a development build finds the
        // plugins cargo put next to it.
        dirs.insert(
            dirs.len() - 1,
            SearchDir {
                path: exe_dir,
                origin: "executable's directory",
                postflight_names_only: true,
            },
        );
    }
    let data = env_path("XDG_DATA_HOME").or_else(|| home().map(|h| h.join(".local").join("share")));
    if let Some(data) = data {
        dirs.push(SearchDir {
            path: data.join("postflight").join("plugins"),
            origin: "$XDG_DATA_HOME/postflight/plugins",
            postflight_names_only: false,
        });
    }
    dirs
}
