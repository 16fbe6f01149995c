//! The serving loops: each invocation goes to its route's handler, metrics leave after it, and
//! a function that mails keeps its execution environment until the mail is out.

use std::sync::Arc;

use super::outbox_layer::SignalDone;
use crate::authorizer;
use crate::http::HttpError;
use crate::http::edge::EdgeTrust;
use crate::routes::{FunctionRoutes, HandlerState};
use crate::service::AuthService;

/// Serves a function's routes until the runtime stops: each invocation goes to the handler of
/// the route it came in on. `routes` is `const { Function::X.routes() }`, so the binary links
/// only its own handlers.
///
/// A function that sends mail answers first and mails after: an internal extension holds the
/// execution environment until the mail of each invocation is out, since Lambda freezes it only
/// once every extension has asked for its next event.
/// Metrics leave as one Embedded Metric Format line after each invocation.
///
/// Behind the stack's CloudFront distribution (edge protection on), a request without its
/// origin secret is refused before its handler runs ([`crate::http::edge`]).
pub async fn serve_http(
    state: &impl HandlerState,
    routes: FunctionRoutes,
) -> Result<(), lambda_http::Error> {
    let edge = super::edge_trust_from_env().await?;
    serve_with_edge(state, routes, &edge).await
}

/// [`serve_http`] with the edge trust given.
async fn serve_with_edge(
    state: &impl HandlerState,
    routes: FunctionRoutes,
    edge: &EdgeTrust,
) -> Result<(), lambda_http::Error> {
    install_metrics();
    /// Runs one invocation's handler and sends its metrics.
    async fn invocation(
        state: &impl HandlerState,
        routes: FunctionRoutes,
        edge: &EdgeTrust,
        mut request: lambda_http::Request,
    ) -> lambda_http::Response<lambda_http::Body> {
        use lambda_http::RequestExt;
        let request_id = request
            .lambda_context_ref()
            .map(|context| context.request_id.clone())
            .unwrap_or_default();
        let response = match edge.admit(&mut request) {
            Ok(()) => routes.serve(state, request).await,
            Err(refused) => HttpError::from(refused).into_response(),
        };
        crate::metrics::flush(&request_id);
        // The status alone: at debug, what an operator tracing one request wants to see.
        tracing::debug!(status = response.status().as_u16(), "answered");
        response
    }

    let Some(after_answer) = state.service().and_then(AuthService::after_answer) else {
        return lambda_http::run(lambda_http::service_fn(move |request| async move {
            Ok::<_, lambda_http::Error>(invocation(state, routes, edge, request).await)
        }))
        .await;
    };

    let (done, handlers_done) = tokio::sync::mpsc::unbounded_channel();
    let handlers_done = Arc::new(tokio::sync::Mutex::new(handlers_done));
    let extension = lambda_extension::Extension::new()
        .with_extension_name("after-answer")
        .with_events(&["INVOKE"])
        .with_events_processor(lambda_extension::service_fn(move |_| {
            let (handlers_done, after_answer) = (handlers_done.clone(), after_answer.clone());
            async move {
                handlers_done.lock().await.recv().await;
                after_answer.idle().await;
                // What the work after the answer counted (an event not delivered).
                crate::metrics::flush("after-answer");
                Ok::<_, lambda_http::Error>(())
            }
        }))
        .register()
        .await?;
    let handler = lambda_http::Adapter::from(lambda_http::service_fn(move |request| async move {
        Ok::<_, lambda_http::Error>(invocation(state, routes, edge, request).await)
    }));
    // The outermost layer sees every invocation, also one whose event does not even parse,
    // and tells the extension once the answer has gone out.
    let runtime = lambda_runtime::Runtime::new(handler)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .layer(lambda_runtime::tower::layer::layer_fn(move |inner| {
            SignalDone {
                inner,
                done: done.clone(),
            }
        }))
        .run();
    tokio::try_join!(extension.run(), runtime).map(|_| ())
}

/// Serves the API Gateway authorizer until the runtime stops.
pub async fn serve_authorizer(service: &AuthService) -> Result<(), lambda_runtime::Error> {
    install_metrics();
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: lambda_runtime::LambdaEvent<serde_json::Value>| async move {
            let answer = authorizer::handle(service, event.payload).await;
            crate::metrics::flush(&event.context.request_id);
            answer
        },
    ))
    .await
}

fn install_metrics() {
    let name = std::env::var("AWS_LAMBDA_FUNCTION_NAME").unwrap_or_default();
    crate::metrics::install_emf(&name);
}

/// Initialises logging the way the Lambda runtime expects (text or JSON per the function's
/// log format, level from `RUST_LOG` or `AWS_LAMBDA_LOG_LEVEL`), with the runtime, the SDK and
/// hyper never below `info` (see [`crate::logging`]).
pub fn init_tracing() {
    crate::logging::init_lambda();
}
