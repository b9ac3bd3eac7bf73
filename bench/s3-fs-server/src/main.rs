//! `taxon-s3-fs-server --host H --port P --access-key K --secret-key S ROOT`: s3s-fs with SigV4
//! auth, listening on H:P (port 0 picks a free one; the bound address is printed as
//! `listening on http://H:P`). HEAD on a key that is a folder under ROOT answers 404.

use std::path::{Component, Path, PathBuf};

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::S3ServiceBuilder;
use tokio::net::TcpListener;

fn usage() -> ! {
    eprintln!("usage: taxon-s3-fs-server --host H --port P --access-key K --secret-key S ROOT");
    std::process::exit(2)
}

/// True when the request path (`/bucket/key`) names a folder under `root`.
fn is_folder(root: &Path, uri_path: &str) -> bool {
    let rel = uri_path.trim_start_matches('/');
    if rel.is_empty() || rel.contains('%') || !rel.contains('/') {
        return false; // the root, encoded keys and buckets go to s3s-fs
    }
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return false;
    }
    root.join(rel).is_dir()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let (mut host, mut port, mut ak, mut sk, mut root) =
        ("127.0.0.1".to_string(), 0u16, None, None, None);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--host" => host = args.next().unwrap_or_else(|| usage()),
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or_else(|| usage()),
            "--access-key" => ak = args.next(),
            "--secret-key" => sk = args.next(),
            s if !s.starts_with('-') && root.is_none() => root = Some(PathBuf::from(s)),
            _ => usage(),
        }
    }
    let root = std::fs::canonicalize(root.unwrap_or_else(|| usage()))?;
    let mut b = S3ServiceBuilder::new(
        s3s_fs::FileSystem::new(&root).map_err(|e| format!("{}: {e:?}", root.display()))?,
    );
    if let (Some(ak), Some(sk)) = (ak, sk) {
        b.set_auth(SimpleAuth::from_single(ak, sk));
    }
    let service = b.build();

    let listener = TcpListener::bind((host.as_str(), port)).await?;
    println!("listening on http://{}", listener.local_addr()?);
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let (socket, _) = match listener.accept().await {
            Ok(c) => c,
            Err(_) => continue,
        };
        // Without TCP_NODELAY a response's headers can go out alone and its body ~40 ms later
        // (Nagle + delayed ACK): downloads would measure that stall, not the clients.
        let _ = socket.set_nodelay(true);
        let (service, root) = (service.clone(), root.clone());
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (service, root) = (service.clone(), root.clone());
            async move {
                if req.method() == http::Method::HEAD && is_folder(&root, req.uri().path()) {
                    let mut resp = http::Response::new(s3s::Body::empty());
                    *resp.status_mut() = http::StatusCode::NOT_FOUND;
                    return Ok(resp);
                }
                service.call(req.map(s3s::Body::from)).await
            }
        });
        let conn = http.serve_connection(TokioIo::new(socket), svc).into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}
