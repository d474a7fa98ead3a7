//! Status: RuntimeReady, and NetworkReady=false until pod networking exists.

use std::collections::HashMap;

use cri_api::v1::{RuntimeCondition, RuntimeStatus, StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<StatusRequest>,
) -> Result<Response<StatusResponse>, Status> {
    let conditions = vec![
        RuntimeCondition {
            r#type: "RuntimeReady".to_string(),
            status: true,
            reason: String::new(),
            message: String::new(),
        },
        RuntimeCondition {
            r#type: "NetworkReady".to_string(),
            status: false,
            reason: "NetworkPluginNotReady".to_string(),
            message: "pod networking not available yet: crust runs host-network pods only"
                .to_string(),
        },
    ];
    let info = if req.get_ref().verbose {
        HashMap::from([("config".to_string(), svc.config.to_toml())])
    } else {
        HashMap::new()
    };
    Ok(Response::new(StatusResponse {
        status: Some(RuntimeStatus { conditions }),
        info,
        runtime_handlers: Vec::new(),
        features: None,
    }))
}
