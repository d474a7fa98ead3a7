//! ListPodSandbox with its filters: id (exact or prefix), state, label selector (all must match).

use cri_api::v1::{
    ListPodSandboxRequest, ListPodSandboxResponse, PodSandbox, PodSandboxFilter,
    StreamPodSandboxesRequest, StreamPodSandboxesResponse,
};
use tonic::{Request, Response, Status};

use super::{batch, CriService};
use crate::sandbox::status;

pub(super) async fn handle(
    svc: &CriService,
    req: Request<ListPodSandboxRequest>,
) -> Result<Response<ListPodSandboxResponse>, Status> {
    let items = items(svc, req.into_inner().filter.as_ref());
    Ok(Response::new(ListPodSandboxResponse { items }))
}

/// StreamPodSandboxes: the same pods, in batches.
pub(super) async fn stream(
    svc: &CriService,
    req: Request<StreamPodSandboxesRequest>,
) -> Result<Response<batch::BatchStream<StreamPodSandboxesResponse>>, Status> {
    let items = items(svc, req.into_inner().filter.as_ref());
    Ok(Response::new(batch::stream(items, |pod_sandboxes| {
        StreamPodSandboxesResponse { pod_sandboxes }
    })))
}

/// The pods passing `filter`, newest first.
fn items(svc: &CriService, filter: Option<&PodSandboxFilter>) -> Vec<PodSandbox> {
    let mut items: Vec<PodSandbox> = svc
        .sandboxes
        .store()
        .all()
        .iter()
        .map(|s| status::pod(&s.snapshot()))
        .filter(|p| filter.is_none_or(|f| matches(f, p)))
        .collect();
    items.sort_by_key(|p| std::cmp::Reverse(p.created_at));
    items
}

/// True when `pod` passes every part of `filter`.
pub fn matches(filter: &PodSandboxFilter, pod: &PodSandbox) -> bool {
    if !filter.id.is_empty() && !pod.id.starts_with(&filter.id) {
        return false;
    }
    if filter.state.as_ref().is_some_and(|s| s.state != pod.state) {
        return false;
    }
    filter
        .label_selector
        .iter()
        .all(|(k, v)| pod.labels.get(k) == Some(v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cri_api::v1::{PodSandboxState, PodSandboxStateValue};

    #[test]
    fn filters() {
        let pod = PodSandbox {
            id: "abcdef".into(),
            state: PodSandboxState::SandboxReady as i32,
            labels: [("app".to_string(), "web".to_string())]
                .into_iter()
                .collect(),
            ..Default::default()
        };
        let mut f = PodSandboxFilter::default();
        assert!(matches(&f, &pod));
        f.id = "abc".into();
        assert!(matches(&f, &pod));
        f.id = "abd".into();
        assert!(!matches(&f, &pod));
        f.id.clear();
        f.state = Some(PodSandboxStateValue {
            state: PodSandboxState::SandboxNotready as i32,
        });
        assert!(!matches(&f, &pod));
        f.state = None;
        f.label_selector.insert("app".into(), "web".into());
        assert!(matches(&f, &pod));
        f.label_selector.insert("tier".into(), "x".into());
        assert!(!matches(&f, &pod));
    }
}
