//! ImageFsInfo: bytes and inodes used by the image store.

use cri_api::v1::{
    FilesystemIdentifier, FilesystemUsage, ImageFsInfoRequest, ImageFsInfoResponse, UInt64Value,
};
use tonic::{Request, Response, Status};

use super::CriService;

pub(super) async fn handle(
    svc: &CriService,
    _req: Request<ImageFsInfoRequest>,
) -> Result<Response<ImageFsInfoResponse>, Status> {
    let images = svc.images.clone();
    let (bytes, inodes) = tokio::task::spawn_blocking(move || images.usage())
        .await
        .map_err(|e| Status::internal(format!("ImageFsInfo task: {e}")))?;
    let usage = FilesystemUsage {
        timestamp: crate::events::now_ns(),
        fs_id: Some(FilesystemIdentifier {
            mountpoint: svc.images.root().display().to_string(),
        }),
        used_bytes: Some(UInt64Value { value: bytes }),
        inodes_used: Some(UInt64Value { value: inodes }),
    };
    Ok(Response::new(ImageFsInfoResponse {
        image_filesystems: vec![usage],
        container_filesystems: Vec::new(),
    }))
}
