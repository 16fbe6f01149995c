//! A way in kept on the user's item and held by a guard item naming its user: passkeys
//! (`passkeys` map, `PASSKEY#<credential id>`) and OpenID Connect identities (`identities` map,
//! `IDENTITY#<identity id>`). Adding writes the guard (conditioned on it not existing) and the
//! map entry (conditioned on the user being active, at the flow's epoch and under the map's
//! limit) in one transaction; removing deletes both, conditioned on another way in remaining.

use aws_sdk_dynamodb::types::AttributeValue;
use uuid::Uuid;

use super::DynamoStore;
use super::items::{Item, boolean, key, n, s, user_key};
use super::write::{Expression, Transaction, put_new};
use crate::clock::UnixTime;
use crate::store::StoreError;

/// The maps of ways in on the user's item; the password is the other way in.
const WAY_IN_MAPS: [&str; 2] = ["passkeys", "identities"];

/// One kind of guarded way in.
pub(super) struct Guarded {
    /// The attribute of the user's item holding the map.
    pub map: &'static str,
    /// The most entries the map holds.
    pub max: usize,
}

/// What became of an attempt to add an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Outcome {
    Added,
    /// The guard exists: the entry belongs to an account already.
    Taken,
    Refused,
}

/// A guard item: `guard_key` holding its user's id.
pub(super) fn guard_item(guard_key: AttributeValue, user_id: Uuid) -> Item {
    let mut item = key(guard_key);
    item.insert("user_id".to_owned(), s(user_id));
    item
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Guard,
    User,
}

impl Guarded {
    /// Adds `value` as entry `id`, with its guard `guard_key`.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn add(
        &self,
        store: &DynamoStore,
        user_id: Uuid,
        epoch: u64,
        id: &str,
        guard_key: AttributeValue,
        value: AttributeValue,
        now: UnixTime,
    ) -> Result<Outcome, StoreError> {
        let user = || {
            Expression::new()
                .set("updated_at = :now")
                .when("attribute_exists(pk) AND is_active = :true AND session_epoch = :epoch")
                .values([
                    (":now", n(now)),
                    (":true", boolean(true)),
                    (":epoch", n(epoch)),
                ])
        };
        // A map entry can only be set inside a map that exists: the first entry makes it.
        let into_the_map = user()
            .set(format!("{}.#id = :value", self.map))
            .when(format!("size({}) < :max", self.map))
            .name("#id", id)
            .values([(":value", value.clone()), (":max", n(self.max))]);
        let first = user()
            .set(format!("{} = :map", self.map))
            .when(format!("attribute_not_exists({})", self.map))
            .value(":map", AttributeValue::M([(id.to_owned(), value)].into()));
        for expression in [into_the_map, first] {
            let transaction = Transaction::new()
                .with(
                    Part::Guard,
                    put_new(&store.users_table, guard_item(guard_key.clone(), user_id))?,
                )
                .with(
                    Part::User,
                    expression.update(&store.users_table, user_key(user_id))?,
                );
            match store.transact(transaction, Uuid::new_v4()).await? {
                Ok(()) => return Ok(Outcome::Added),
                Err(cancelled) if cancelled.failed(Part::Guard) => return Ok(Outcome::Taken),
                Err(cancelled) if cancelled.failed(Part::User) => continue,
                Err(cancelled) => {
                    return Err(StoreError::Internal(format!(
                        "adding to {} cancelled: {cancelled:?}",
                        self.map
                    )));
                }
            }
        }
        Ok(Outcome::Refused)
    }

    /// Removes entry `id` and its guard, while another way in remains: the password, or an
    /// entry of any map besides this one.
    pub(super) async fn remove(
        &self,
        store: &DynamoStore,
        user_id: Uuid,
        id: &str,
        guard_key: AttributeValue,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let others: Vec<String> = WAY_IN_MAPS
            .iter()
            .map(|map| {
                let keep = if *map == self.map { ":one" } else { ":zero" };
                format!("size({map}) > {keep}")
            })
            .collect();
        let user = Expression::new()
            .remove(format!("{}.#id", self.map))
            .set("updated_at = :now")
            .when(format!("attribute_exists({}.#id)", self.map))
            .when(format!(
                "size(password_hash) > :zero OR {}",
                others.join(" OR ")
            ))
            .name("#id", id)
            .values([(":now", n(now)), (":zero", n(0)), (":one", n(1))]);
        let guard = Expression::new()
            .when("user_id = :user")
            .value(":user", s(user_id));
        let transaction = Transaction::new()
            .with(
                Part::User,
                user.update(&store.users_table, user_key(user_id))?,
            )
            .with(Part::Guard, guard.delete(&store.users_table, guard_key)?);
        Ok(store.transact(transaction, Uuid::new_v4()).await?.is_ok())
    }
}
