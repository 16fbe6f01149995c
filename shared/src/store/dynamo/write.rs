//! Writing: the one builder of update and condition expressions, and transactions whose
//! cancellation reasons are read item by item.

use std::time::Duration;

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ConditionCheck, Delete, Put, TransactWriteItem, Update,
};
use uuid::Uuid;

use super::items::{Item, build, key};
use crate::store::StoreError;

/// A write to one item: its update clauses, the conditions that must all hold, and the
/// attribute names and values they use. The same builder makes an `UpdateItem` request, or a
/// transaction's update, condition check or delete.
#[derive(Debug, Default)]
pub(super) struct Expression {
    set: Vec<String>,
    remove: Vec<String>,
    add: Vec<String>,
    conditions: Vec<String>,
    names: Vec<(String, String)>,
    values: Vec<(String, AttributeValue)>,
}

impl Expression {
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// `SET <clause>`, e.g. `"updated_at = :now"`.
    pub(super) fn set(mut self, clause: impl Into<String>) -> Self {
        self.set.push(clause.into());
        self
    }

    /// `REMOVE <path>`.
    pub(super) fn remove(mut self, path: impl Into<String>) -> Self {
        self.remove.push(path.into());
        self
    }

    /// `ADD <clause>`: an atomic increment, e.g. `"used :one"`.
    pub(super) fn add(mut self, clause: impl Into<String>) -> Self {
        self.add.push(clause.into());
        self
    }

    /// A condition; the write happens only if every one holds.
    pub(super) fn when(mut self, condition: impl Into<String>) -> Self {
        self.conditions.push(condition.into());
        self
    }

    pub(super) fn name(mut self, placeholder: &str, name: &str) -> Self {
        self.names.push((placeholder.into(), name.into()));
        self
    }

    pub(super) fn value(mut self, placeholder: &str, value: AttributeValue) -> Self {
        self.values.push((placeholder.into(), value));
        self
    }

    pub(super) fn values<'a>(
        self,
        values: impl IntoIterator<Item = (&'a str, AttributeValue)>,
    ) -> Self {
        values
            .into_iter()
            .fold(self, |expression, (placeholder, value)| {
                expression.value(placeholder, value)
            })
    }

    pub(super) fn update_expression(&self) -> String {
        [
            ("SET", &self.set),
            ("REMOVE", &self.remove),
            ("ADD", &self.add),
        ]
        .into_iter()
        .filter(|(_, clauses)| !clauses.is_empty())
        .map(|(action, clauses)| format!("{action} {}", clauses.join(", ")))
        .collect::<Vec<_>>()
        .join(" ")
    }

    pub(super) fn condition_expression(&self) -> Option<String> {
        match self.conditions.as_slice() {
            [] => None,
            [one] => Some(one.clone()),
            many => Some(
                many.iter()
                    .map(|c| format!("({c})"))
                    .collect::<Vec<_>>()
                    .join(" AND "),
            ),
        }
    }

    pub(super) fn into_names_and_values(
        self,
    ) -> (
        Option<std::collections::HashMap<String, String>>,
        Option<Item>,
    ) {
        let names = (!self.names.is_empty()).then(|| self.names.into_iter().collect());
        let values = (!self.values.is_empty()).then(|| self.values.into_iter().collect());
        (names, values)
    }

    /// As one item of a transaction: an update.
    pub(super) fn update(
        self,
        table: &str,
        key_value: AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let update_expression = self.update_expression();
        let condition = self.condition_expression();
        let (names, values) = self.into_names_and_values();
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .update_expression(update_expression)
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build();
        Ok(TransactWriteItem::builder().update(build(update)?).build())
    }

    /// As one item of a transaction: a check of its conditions, writing nothing.
    pub(super) fn check(
        self,
        table: &str,
        key_value: AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition = self.condition_expression().unwrap_or_default();
        let (names, values) = self.into_names_and_values();
        let check = ConditionCheck::builder()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build();
        Ok(TransactWriteItem::builder()
            .condition_check(build(check)?)
            .build())
    }

    /// As one item of a transaction: a delete, if the conditions hold.
    pub(super) fn delete(
        self,
        table: &str,
        key_value: AttributeValue,
    ) -> Result<TransactWriteItem, StoreError> {
        let condition = self.condition_expression();
        let (names, values) = self.into_names_and_values();
        let delete = Delete::builder()
            .table_name(table)
            .set_key(Some(key(key_value)))
            .set_condition_expression(condition)
            .set_expression_attribute_names(names)
            .set_expression_attribute_values(values)
            .build();
        Ok(TransactWriteItem::builder().delete(build(delete)?).build())
    }
}

/// As one item of a transaction: a put of an item whose key must not exist yet.
pub(super) fn put_new(table: &str, item: Item) -> Result<TransactWriteItem, StoreError> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(pk)")
        .build();
    Ok(TransactWriteItem::builder().put(build(put)?).build())
}

/// The items of one `TransactWriteItems` call, each under a name of its own, so that a
/// cancellation reason is read by the item it belongs to, never by its position.
pub(super) struct Transaction<Part> {
    parts: Vec<Part>,
    pub(super) items: Vec<TransactWriteItem>,
}

impl<Part: Copy> Transaction<Part> {
    pub(super) fn new() -> Self {
        Self {
            parts: Vec::new(),
            items: Vec::new(),
        }
    }

    pub(super) fn with(mut self, part: Part, item: TransactWriteItem) -> Self {
        self.parts.push(part);
        self.items.push(item);
        self
    }

    /// Why DynamoDB cancelled it, item by item; `None` for any other failure.
    pub(super) fn cancellation(
        &self,
        err: &SdkError<TransactWriteItemsError>,
    ) -> Option<Cancelled<Part>> {
        match err.as_service_error()? {
            TransactWriteItemsError::TransactionCanceledException(e) => Some(Cancelled {
                reasons: self
                    .parts
                    .iter()
                    .zip(e.cancellation_reasons())
                    .map(|(part, reason)| (*part, reason.code().unwrap_or("None").to_owned()))
                    .collect(),
            }),
            _ => None,
        }
    }
}

/// The reasons of a cancelled transaction, by item.
#[derive(Debug)]
pub(super) struct Cancelled<Part> {
    reasons: Vec<(Part, String)>,
}

impl<Part: PartialEq> Cancelled<Part> {
    /// Whether this item's condition failed.
    pub(super) fn failed(&self, part: Part) -> bool {
        self.reasons
            .iter()
            .any(|(p, code)| *p == part && code == "ConditionalCheckFailed")
    }

    /// Whether an item other than `part` failed its condition.
    pub(super) fn failed_other_than(&self, part: Part) -> bool {
        self.reasons
            .iter()
            .any(|(p, code)| *p != part && code == "ConditionalCheckFailed")
    }

    pub(super) fn any_failed(&self) -> bool {
        self.reasons
            .iter()
            .any(|(_, c)| c == "ConditionalCheckFailed")
    }

    /// Whether another transaction held one of the items: trying again may succeed.
    pub(super) fn conflicted(&self) -> bool {
        self.reasons.iter().any(|(_, c)| c == "TransactionConflict")
    }
}

/// Jittered exponential backoff: 10 ms, 20 ms, 40 ms ... with up to 100% jitter.
pub(super) fn backoff(attempt: u32) -> Duration {
    let base = 10u64 << attempt.min(6);
    let jitter = u64::from(Uuid::new_v4().as_u128() as u16) % base.max(1);
    Duration::from_millis(base + jitter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_join_by_action_and_conditions_by_and() {
        let expression = Expression::new()
            .set("a = :a")
            .set("b = :b")
            .remove("c")
            .add("used :one")
            .when("attribute_exists(pk)")
            .when("x = :x OR y = :y");
        assert_eq!(
            expression.update_expression(),
            "SET a = :a, b = :b REMOVE c ADD used :one"
        );
        assert_eq!(
            expression.condition_expression().as_deref(),
            Some("(attribute_exists(pk)) AND (x = :x OR y = :y)")
        );
    }

    #[test]
    fn one_condition_stands_alone_and_none_is_none() {
        let expression = Expression::new().remove("c");
        assert_eq!(expression.update_expression(), "REMOVE c");
        assert_eq!(expression.condition_expression(), None);
        let expression = expression.when("a < :b");
        assert_eq!(expression.condition_expression().as_deref(), Some("a < :b"));
    }
}
