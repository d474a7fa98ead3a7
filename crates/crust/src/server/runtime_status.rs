//! Status: RuntimeReady, and NetworkReady following whether a CNI config is usable.

use std::collections::HashMap;

use cri_api::v1::{RuntimeCondition, RuntimeStatus, StatusRequest, StatusResponse};
use tonic::{Request, Response, Status};

use super::CriService;

fn network_condition(svc: &CriService) -> RuntimeCondition {
    let ready = svc.sandboxes.network().ready();
    RuntimeCondition {
        r#type: "NetworkReady".to_string(),
        status: ready.is_ok(),
        reason: if ready.is_ok() {
            String::new()
        } else {
            "NetworkPluginNotReady".to_string()
        },
        message: ready.err().unwrap_or_default(),
    }
}

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
        network_condition(svc),
    ];
    let info = if req.get_ref().verbose {
        // Every value is a JSON document (crictl info parses them); secrets are redacted.
        HashMap::from([("config".to_string(), svc.config.to_json())])
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
