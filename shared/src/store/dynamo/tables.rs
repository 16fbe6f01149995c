//! Creating the tables in the shape of [`schema`], for local use and tests (a deployment's
//! tables come from `template.yaml`, which a test holds to the same schema).

use std::time::Duration;

use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection,
    ProjectionType, ScalarAttributeType, TableStatus, TimeToLiveSpecification,
};

use super::DynamoStore;
use super::items::{build, classify};
use crate::store::StoreError;
use crate::store::schema::{self, TableSchema};

impl DynamoStore {
    /// Creates the tables if they do not exist.
    pub async fn create_tables(&self) -> Result<(), StoreError> {
        for (table, schema) in [
            (&self.users_table, &schema::USERS),
            (&self.sessions_table, &schema::SESSIONS),
            (&self.history_table, &schema::HISTORY),
        ] {
            self.create_table(table, schema).await?;
        }
        Ok(())
    }

    async fn create_table(&self, table: &str, schema: &TableSchema) -> Result<(), StoreError> {
        let key_element = |key: &schema::Key, kind: KeyType| {
            build(
                KeySchemaElement::builder()
                    .attribute_name(key.name)
                    .key_type(kind)
                    .build(),
            )
        };
        let key_schema = |partition: &schema::Key, sort: Option<&schema::Key>| {
            let mut elements = vec![key_element(partition, KeyType::Hash)?];
            if let Some(sort) = sort {
                elements.push(key_element(sort, KeyType::Range)?);
            }
            Ok::<_, StoreError>(elements)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(
                &schema.partition_key,
                schema.sort_key.as_ref(),
            )?));
        for key in schema.key_attributes() {
            let kind = match key.kind {
                schema::KeyType::String => ScalarAttributeType::S,
                schema::KeyType::Number => ScalarAttributeType::N,
            };
            request = request.attribute_definitions(build(
                AttributeDefinition::builder()
                    .attribute_name(key.name)
                    .attribute_type(kind)
                    .build(),
            )?);
        }
        for index in schema.indexes {
            request = request.global_secondary_indexes(build(
                GlobalSecondaryIndex::builder()
                    .index_name(index.name)
                    .set_key_schema(Some(key_schema(
                        &index.partition_key,
                        index.sort_key.as_ref(),
                    )?))
                    .projection(
                        Projection::builder()
                            .projection_type(match index.projection {
                                schema::Projection::All => ProjectionType::All,
                                schema::Projection::KeysOnly => ProjectionType::KeysOnly,
                            })
                            .build(),
                    )
                    .build(),
            )?);
        }
        let created = ignore_existing(request.send().await)?;
        self.wait_until_active(table).await?;
        if let (true, Some(attribute)) = (created, schema.ttl_attribute) {
            self.client
                .update_time_to_live()
                .table_name(table)
                .time_to_live_specification(build(
                    TimeToLiveSpecification::builder()
                        .attribute_name(attribute)
                        .enabled(true)
                        .build(),
                )?)
                .send()
                .await
                .map_err(classify)?;
        }
        Ok(())
    }

    async fn wait_until_active(&self, table: &str) -> Result<(), StoreError> {
        for _ in 0..120 {
            let described = self
                .client
                .describe_table()
                .table_name(table)
                .send()
                .await
                .map_err(classify)?;
            let status = described.table().and_then(|t| t.table_status()).cloned();
            if status == Some(TableStatus::Active) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(StoreError::Unavailable(format!(
            "table {table} did not become active"
        )))
    }
}

/// `Ok(true)` if the table was created, `Ok(false)` if it already existed.
fn ignore_existing<T, E>(result: Result<T, SdkError<E>>) -> Result<bool, StoreError>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    match result {
        Ok(_) => Ok(true),
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(false),
        Err(e) => Err(classify(e)),
    }
}
