//! The API as its callers see it: the functions' handlers fed API Gateway events (every sample
//! of `events/`, REST API (v1) events, hostile input), and the whole API through the local
//! server (the journey, every error code, and every reply against `openapi.yaml`).

mod events;
mod hostile_input;
mod local_api;
mod openapi;
mod rest_api;
