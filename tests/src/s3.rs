//! A real S3-compatible server for tests: s3s-fs (crates.io), the same server `deploy/env.sh
//! s3-start` runs as a process, here served in the test process on a free loopback port so each
//! test has its own bucket directory and nothing to clean up between runs.

use std::{net::SocketAddr, path::PathBuf};

use hyper_util::{
    rt::{TokioExecutor, TokioIo},
    server::conn::auto::Builder,
};
use s3s::{auth::SimpleAuth, service::S3ServiceBuilder};
use tokio::net::TcpListener;

pub const ACCESS_KEY: &str = "sluice";
pub const SECRET_KEY: &str = "sluice-test-secret";

pub struct S3Server {
    pub addr: SocketAddr,
    /// Buckets are directories under it.
    pub root: PathBuf,
}

impl S3Server {
    /// Starts a server whose only bucket is `bucket`.
    pub async fn start(bucket: &str) -> Self {
        let root = std::env::temp_dir().join(format!("sluice-s3-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(root.join(bucket)).unwrap();
        let fs = s3s_fs::FileSystem::new(&root).expect("s3s-fs opens its root");
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let server = Builder::new(TokioExecutor::new());
            while let Ok((socket, _)) = listener.accept().await {
                let connection = server
                    .serve_connection(TokioIo::new(socket), service.clone())
                    .into_owned();
                tokio::spawn(connection);
            }
        });
        Self { addr, root }
    }

    /// `storage.options` for a client of this server.
    pub fn options(&self) -> Vec<(String, String)> {
        [
            ("aws_endpoint", format!("http://{}", self.addr)),
            ("aws_allow_http", "true".into()),
            ("aws_access_key_id", ACCESS_KEY.into()),
            ("aws_secret_access_key", SECRET_KEY.into()),
            ("aws_region", "us-east-1".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}
