//! The local server (`tools/local-api`) as API Gateway in front of the functions: routing, limits,
//! a team's own function behind the authorizer, and every reply against `openapi.yaml`.

mod extra_route;
mod local_api;
mod local_server_limits;
mod openapi;
