//! Status: RuntimeReady, and NetworkReady following whether a CNI config is usable.

use std::collections::HashMap;

use cri_api::v1::{
    RuntimeCondition, RuntimeFeatures, RuntimeHandler, RuntimeHandlerFeatures, RuntimeStatus,
    StatusRequest, StatusResponse,
};
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

/// crust does not run pods in user namespaces yet, whatever the runtime could do.
const CRUST_USER_NAMESPACES: bool = false;

/// Every configured handler with its features; the default one also under the empty name.
fn handlers(svc: &CriService) -> Vec<RuntimeHandler> {
    let features = svc.containers.handler_features();
    let entry = |name: &str, f: &crate::oci_runtime::features::Features| RuntimeHandler {
        name: name.to_string(),
        features: Some(RuntimeHandlerFeatures {
            recursive_read_only_mounts: f.recursive_read_only,
            user_namespaces: f.user_namespaces && CRUST_USER_NAMESPACES,
        }),
    };
    let default = features
        .iter()
        .find(|(name, _)| *name == svc.config.default_runtime)
        .map(|(_, f)| entry("", f));
    default
        .into_iter()
        .chain(features.iter().map(|(name, f)| entry(name, f)))
        .collect()
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
        runtime_handlers: handlers(svc),
        features: Some(RuntimeFeatures {
            supplemental_groups_policy: false,
            user_namespaces_host_network: false,
        }),
    }))
}
