//! Version.

use cri_api::v1::{VersionRequest, VersionResponse};
use tonic::{Request, Response, Status};

/// CRI API version served.
pub const RUNTIME_API_VERSION: &str = "v1";

pub(super) async fn handle(
    _req: Request<VersionRequest>,
) -> Result<Response<VersionResponse>, Status> {
    Ok(Response::new(VersionResponse {
        version: "0.1.0".to_string(),
        runtime_name: "crust".to_string(),
        runtime_version: env!("CARGO_PKG_VERSION").to_string(),
        runtime_api_version: RUNTIME_API_VERSION.to_string(),
    }))
}
