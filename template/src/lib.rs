//! postflight's `##Name##` template engine and the catalogue of template values.
//!
//! A notification's subject and body are templates: text in which `##Name##` is replaced by
//! a value about the task run, such as `##Task Name##` or `##Exit Status##`. Names match the
//! [`CATALOGUE`] ignoring case and extra spaces. Any `#` that does not start a valid
//! reference is ordinary text, but a well-formed reference to a name that is not in the
//! catalogue is a [`TemplateError`] naming the closest real value.
//!
//! This crate does no I/O: callers fill in [`Values`] and get strings back.
//!
//! ```
//! use postflight_template::{render_notification, Template, Values};
//!
//! let mut values = Values::new();
//! values.set("Task Name", "backup").set("Exit Status", "Failed");
//!
//! let template = Template::parse("##task name##: ##Exit Status## (# 1)").unwrap();
//! assert_eq!(template.render(&values), "backup: Failed (# 1)");
//!
//! let error = Template::parse("##Taks Name##").unwrap_err();
//! assert_eq!(error.suggestion, Some("Task Name"));
//!
//! // At run time a broken template falls back to the built-in one, with a note.
//! let rendered = render_notification(Some("##Taks Name##"), None, &values);
//! assert_eq!(rendered.subject, ": backup: Failed");
//! assert_eq!(rendered.problems.len(), 1);
//! ```

#![warn(missing_docs)]

mod catalogue;
mod notification;
mod template;

pub use catalogue::{ValueInfo, Values, CATALOGUE};
pub use notification::{render_notification, Rendered, DEFAULT_BODY, DEFAULT_SUBJECT};
pub use template::{Template, TemplateError};

#[cfg(test)]
mod tests;
