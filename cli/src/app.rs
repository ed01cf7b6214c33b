//! What every command needs: the loaded config, the state directory, and how chatty to be.

use std::path::PathBuf;

use postflight_core::config::{self, Config};
use postflight_core::paths;
use postflight_core::plugin::host::Registry;

use crate::args::Cli;
use crate::exit::Failure;

/// Messages to the operator go to stderr (stdout belongs to the task in `run`, and to data in
/// listings), prefixed with `postflight:`.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `-q`: nothing on success.
    pub quiet: bool,
    /// `-v`: explain each step.
    pub verbose: bool,
}

impl Output {
    /// A normal message (hidden by `-q`).
    pub fn info(&self, message: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("postflight: {}", message.as_ref());
        }
    }

    /// A `-v` message.
    pub fn detail(&self, message: impl AsRef<str>) {
        if self.verbose {
            eprintln!("postflight: {}", message.as_ref());
        }
    }

    /// A warning (always shown).
    pub fn warn(&self, message: impl AsRef<str>) {
        eprintln!("postflight: warning: {}", message.as_ref());
    }

    /// An error (always shown).
    pub fn error(&self, message: impl AsRef<str>) {
        eprintln!("postflight: error: {}", message.as_ref());
    }
}

/// The loaded environment of one invocation.
#[derive(Debug)]
pub struct Context {
    /// The configuration (built-in defaults when there is no file).
    pub config: Config,
    /// The file it came from.
    pub config_file: Option<PathBuf>,
    /// Where the config file is expected (even when absent), for messages.
    pub config_location: Option<PathBuf>,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Verbosity.
    pub out: Output,
    /// Why the config could not be loaded, when `run` went on with the built-in defaults.
    pub config_error: Option<String>,
}

impl Context {
    /// Loads the config named on the command line or by the environment.
    pub fn load(cli: &Cli) -> Result<Context, Failure> {
        let location = paths::config_location(cli.config.as_deref());
        let loaded = config::load(location.as_ref())?;
        let out = Output {
            quiet: cli.quiet,
            verbose: cli.verbose,
        };
        match &loaded.file {
            Some(file) => out.detail(format!("config: {}", file.display())),
            None => out.detail("config: none found; using built-in defaults"),
        }
        Ok(Context {
            config: loaded.config,
            config_file: loaded.file,
            config_location: location.map(|l| l.path),
            state_dir: paths::state_dir(),
            out,
            config_error: None,
        })
    }

    /// For `run`: the loaded config, or, when it cannot be loaded, the built-in defaults with
    /// the error kept. A typo in the config must never stop a backup from running; the error
    /// is printed now and carried into the notification.
    pub fn load_or_builtin(cli: &Cli) -> Context {
        Context::load(cli).unwrap_or_else(|failure| {
            let out = Output {
                quiet: cli.quiet,
                verbose: cli.verbose,
            };
            out.error(format!(
                "{}\n  the task runs anyway; its notification uses the built-in defaults (level errors, the `file` transport into {})",
                failure.message,
                paths::state_dir().join("mail").display()
            ));
            Context {
                config: Config::default(),
                config_file: None,
                config_location: paths::config_location(cli.config.as_deref()).map(|l| l.path),
                state_dir: paths::state_dir(),
                out,
                config_error: Some(failure.message),
            }
        })
    }

    /// Finds and loads the plugins (the config's `plugin_path` and the default places).
    pub fn registry(&self) -> Registry {
        let dirs = paths::plugin_search_dirs(&self.config.plugin_path);
        let registry = Registry::discover(dirs, &self.config.plugins.prefer);
        for rejected in &registry.rejected {
            self.out.detail(format!(
                "plugin candidate {} rejected: {}",
                rejected.path.display(),
                rejected.reason
            ));
        }
        registry
    }

    /// Where to tell the operator to write a config.
    pub fn config_path_for_messages(&self) -> String {
        self.config_location
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "~/.config/postflight/config.toml".to_string())
    }
}
