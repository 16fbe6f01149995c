//! Items and their keys: the partition-key prefixes of both tables, (de)serialising items
//! with serde_dynamo, and sorting SDK errors into the store's error.

use std::collections::HashMap;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::model::SessionChain;
use crate::store::StoreError;
use crate::store::schema::{PARTITION_KEY, USER_INDEX_KEY};

pub(super) type Item = HashMap<String, AttributeValue>;

pub(super) fn user_key(id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("USER#{id}"))
}
pub(super) fn email_key(email: &str) -> AttributeValue {
    AttributeValue::S(format!("EMAIL#{email}"))
}
pub(super) fn token_key(id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("TOKEN#{id}"))
}
pub(super) fn chain_key(id: Uuid) -> AttributeValue {
    AttributeValue::S(format!("CHAIN#{id}"))
}
pub(super) fn link_key(token_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("LINK#{token_hash}"))
}
pub(super) fn mfa_key(token_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("MFA#{token_hash}"))
}
pub(super) fn device_key(token_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("DEVICE#{token_hash}"))
}
pub(super) fn passkey_key(credential_id: &str) -> AttributeValue {
    AttributeValue::S(format!("PASSKEY#{credential_id}"))
}
pub(super) fn identity_key(identity_id: &str) -> AttributeValue {
    AttributeValue::S(format!("IDENTITY#{identity_id}"))
}
pub(super) fn ceremony_key(id_hash: &str) -> AttributeValue {
    AttributeValue::S(format!("CEREMONY#{id_hash}"))
}
pub(super) fn throttle_key(key: &str) -> AttributeValue {
    AttributeValue::S(format!("THROTTLE#{key}"))
}

pub(super) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}
pub(super) fn s(value: impl ToString) -> AttributeValue {
    AttributeValue::S(value.to_string())
}
pub(super) fn boolean(value: bool) -> AttributeValue {
    AttributeValue::Bool(value)
}

/// The key of an item: its partition key alone.
pub(super) fn key(value: AttributeValue) -> Item {
    HashMap::from([(PARTITION_KEY.to_owned(), value)])
}

pub(super) fn to_item<T: Serialize>(value: &T, key: AttributeValue) -> Result<Item, StoreError> {
    let mut item: Item = serde_dynamo::to_item(value).map_err(internal)?;
    item.insert(PARTITION_KEY.into(), key);
    Ok(item)
}

pub(super) fn from_item<T: DeserializeOwned>(item: Item) -> Result<T, StoreError> {
    serde_dynamo::from_item(item).map_err(internal)
}

/// A chain's item carries the key of the `by_user` index, which lists a user's sessions.
pub(super) fn chain_item(chain: &SessionChain) -> Result<Item, StoreError> {
    let mut item = to_item(chain, chain_key(chain.chain_id))?;
    item.insert(USER_INDEX_KEY.into(), s(chain.user_id));
    Ok(item)
}

/// The email guard: `EMAIL#<email>` holding the id of the user with that address.
pub(super) fn email_guard(email: &str, user_id: Uuid) -> Item {
    HashMap::from([
        (PARTITION_KEY.to_owned(), email_key(email)),
        ("user_id".to_owned(), s(user_id)),
    ])
}

pub(super) fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

pub(super) fn build<T>(
    result: Result<T, aws_sdk_dynamodb::error::BuildError>,
) -> Result<T, StoreError> {
    result.map_err(internal)
}

/// Sorts SDK failures into "try again later" (network, timeouts, throttling, server errors)
/// and everything else.
pub(super) fn classify<E>(err: SdkError<E>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let detail = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
    match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            StoreError::Unavailable(detail)
        }
        SdkError::ServiceError(service) => match service.err().code() {
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionInProgressException",
            ) => StoreError::Unavailable(detail),
            _ if service.raw().status().is_server_error() => StoreError::Unavailable(detail),
            _ => StoreError::Internal(detail),
        },
        _ => StoreError::Internal(detail),
    }
}

/// Whether a single-item write failed only because its condition did not hold.
pub(super) fn condition_failed<E, R>(err: &SdkError<E, R>) -> bool
where
    E: ProvideErrorMetadata,
{
    matches!(err, SdkError::ServiceError(service) if service.err().code() == Some("ConditionalCheckFailedException"))
}
