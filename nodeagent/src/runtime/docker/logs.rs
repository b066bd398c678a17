//! A container's logs from the engine, each piece with the stream it was written to.

use bollard::Docker;
use bollard::query_parameters::LogsOptions;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::engine_error;
use crate::runtime::{LogStream, RuntimeError};

/// The last `tail` lines (0: all), then what follows while `follow`.
pub(super) fn stream(
    docker: &Docker,
    id: &str,
    tail: u64,
    follow: bool,
) -> BoxStream<'static, Result<(LogStream, bytes::Bytes), RuntimeError>> {
    let options = LogsOptions {
        follow,
        stdout: true,
        stderr: true,
        tail: if tail == 0 {
            "all".to_string()
        } else {
            tail.to_string()
        },
        ..Default::default()
    };
    docker
        .logs(id, Some(options))
        .map(|item| match item {
            Ok(bollard::container::LogOutput::StdErr { message }) => {
                Ok((LogStream::Stderr, message))
            }
            Ok(other) => Ok((LogStream::Stdout, other.into_bytes())),
            Err(e) => Err(engine_error(e)),
        })
        .boxed()
}
