//! The functions' handlers fed API Gateway events: every sample of `events/`, REST API (v1)
//! events, and hostile input.

mod events;
mod hostile_input;
mod rest_api;
