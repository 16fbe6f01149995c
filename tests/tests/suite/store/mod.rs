//! The stores: the conformance suite on DynamoDB Local and the embedded store, and DynamoDB's
//! faults.

mod conformance;
mod store_faults;
