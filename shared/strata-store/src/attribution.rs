//! Which operation a store request is made for, so that request counts can
//! be kept per operation (the console's and `/metrics`' "store requests per
//! PutItem").
//!
//! The API layer runs each request inside [`scope`]; a task the engine
//! spawns on a request's behalf (a group commit) runs inside [`inherit`], so
//! its requests count for the request that started it. Everything else
//! (compaction, GC, replication, the index follower) has no operation and
//! counts as [`BACKGROUND`].

use std::future::Future;

use futures::future::Either;

/// What a request made outside any operation's scope counts as.
pub const BACKGROUND: &str = "background";

tokio::task_local! {
    static OPERATION: &'static str;
}

/// Runs `f` with its store requests attributed to `operation`.
pub async fn scope<F: Future>(operation: &'static str, f: F) -> F::Output {
    OPERATION.scope(operation, f).await
}

/// The operation the current task's store requests count for, if any.
pub fn current() -> Option<&'static str> {
    OPERATION.try_with(|o| *o).ok()
}

/// `f`, attributed to the current task's operation (for a task spawned on
/// its behalf).
pub fn inherit<F: Future>(f: F) -> impl Future<Output = F::Output> {
    match current() {
        Some(op) => Either::Left(OPERATION.scope(op, f)),
        None => Either::Right(f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn spawned_tasks_inherit_the_operation_only_when_asked() {
        assert_eq!(current(), None);
        scope("PutItem", async {
            assert_eq!(current(), Some("PutItem"));
            let inherited = tokio::spawn(inherit(async { current() })).await.unwrap();
            let plain = tokio::spawn(async { current() }).await.unwrap();
            assert_eq!((inherited, plain), (Some("PutItem"), None));
        })
        .await;
    }
}
