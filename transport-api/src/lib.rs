//! postflight plugin "api": email providers' HTTP APIs (SendGrid, Mailgun, Postmark, Resend,
//! Amazon SES) over reqwest.

use postflight_core::plugin::{Manifest, OpenRequest, Opened, Plugin};
use postflight_core::{DeliveryError, ErrorKind};

/// The plugin type exported through the ABI.
pub struct ApiPlugin;

impl Plugin for ApiPlugin {
    fn manifest() -> Manifest {
        Manifest {
            name: "api".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            abi_version: postflight_core::plugin::abi::ABI_VERSION,
            description: "email providers' HTTP APIs".into(),
            transports: vec![],
        }
    }

    fn open(request: OpenRequest) -> Result<Opened, DeliveryError> {
        Err(DeliveryError::permanent(
            ErrorKind::Config,
            format!("the api plugin has no transport '{}'", request.transport),
        ))
    }
}

postflight_core::export_plugin!(ApiPlugin);
