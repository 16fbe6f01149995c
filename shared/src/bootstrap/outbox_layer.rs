//! A `lambda_runtime` layer that tells the outbox's extension when each invocation is over,
//! however it ends (answered, refused, panicked), so that the extension asks for its next
//! event, which lets Lambda freeze the environment, only once that invocation's mail is out.

/// Tells the outbox's extension that an invocation is over (answered, refused, or panicked):
/// all of its background work has been handed over by then.
pub(super) struct Done(tokio::sync::mpsc::UnboundedSender<()>);

impl Drop for Done {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

/// A runtime layer that signals [`Done`] when each invocation's inner service has finished.
pub(super) struct SignalDone<S> {
    pub(super) inner: S,
    pub(super) done: tokio::sync::mpsc::UnboundedSender<()>,
}

impl<S> lambda_runtime::Service<lambda_runtime::LambdaInvocation> for SignalDone<S>
where
    S: lambda_runtime::Service<
            lambda_runtime::LambdaInvocation,
            Response = (),
            Error = lambda_runtime::Error,
        >,
{
    type Response = ();
    type Error = lambda_runtime::Error;
    type Future = WithDone<S::Future>;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, invocation: lambda_runtime::LambdaInvocation) -> Self::Future {
        WithDone {
            inner: self.inner.call(invocation),
            done: Some(Done(self.done.clone())),
        }
    }
}

pin_project_lite::pin_project! {
    /// An invocation's future, sending [`Done`] when it completes or is dropped.
    pub(super) struct WithDone<F> {
        #[pin]
        inner: F,
        done: Option<Done>,
    }
}

impl<F: std::future::Future> std::future::Future for WithDone<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        let output = std::task::ready!(this.inner.poll(cx));
        this.done.take();
        std::task::Poll::Ready(output)
    }
}
