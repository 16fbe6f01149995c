//! The DynamoDB tables' shape: keys, key types, indexes and the TTL attribute. `create_tables`
//! builds the tables from it (local server, tests) and a test holds `template.yaml`'s tables to
//! it, so what runs locally and what is deployed cannot drift apart.

/// The DynamoDB type of a key attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    String,
    Number,
}

impl KeyType {
    /// The type's name in DynamoDB and CloudFormation: `S`, `N`.
    pub fn code(self) -> &'static str {
        match self {
            KeyType::String => "S",
            KeyType::Number => "N",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    pub name: &'static str,
    pub kind: KeyType,
}

/// What a global secondary index copies of each item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Projection {
    All,
    /// The table's and the index's keys alone.
    KeysOnly,
}

impl Projection {
    /// The name in DynamoDB and CloudFormation: `ALL`, `KEYS_ONLY`.
    pub fn code(self) -> &'static str {
        match self {
            Projection::All => "ALL",
            Projection::KeysOnly => "KEYS_ONLY",
        }
    }
}

/// A global secondary index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Index {
    pub name: &'static str,
    pub partition_key: Key,
    pub sort_key: Option<Key>,
    pub projection: Projection,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    /// The table's logical id in `template.yaml`.
    pub logical_id: &'static str,
    pub partition_key: Key,
    pub sort_key: Option<Key>,
    pub indexes: &'static [Index],
    pub ttl_attribute: Option<&'static str>,
}

impl TableSchema {
    /// Every attribute a key of the table or of an index uses, once each.
    pub fn key_attributes(&self) -> Vec<Key> {
        let mut keys = vec![self.partition_key];
        keys.extend(self.sort_key);
        for index in self.indexes {
            keys.push(index.partition_key);
            keys.extend(index.sort_key);
        }
        let mut seen = Vec::new();
        keys.retain(|k| {
            let new = !seen.contains(&k.name);
            seen.push(k.name);
            new
        });
        keys
    }
}

pub const PARTITION_KEY: &str = "pk";
pub const TTL_ATTRIBUTE: &str = "expires_at";
pub const USER_INDEX: &str = "by_user";
pub const USER_INDEX_KEY: &str = "chain_user_id";
pub const USER_INDEX_SORT: &str = "created_at";
/// Every sessions-table item that names a user, by that user: what a deletion sweeps.
pub const OWNER_INDEX: &str = "by_owner";
pub const OWNER_INDEX_KEY: &str = "user_id";
pub const HISTORY_SORT_KEY: &str = "id";

const PK: Key = Key {
    name: PARTITION_KEY,
    kind: KeyType::String,
};

/// Users (`USER#<id>`) and their email guards (`EMAIL#<email>`).
pub const USERS: TableSchema = TableSchema {
    logical_id: "UsersTable",
    partition_key: PK,
    sort_key: None,
    indexes: &[],
    ttl_attribute: None,
};

/// Tokens, sign-in chains and throttle counters, each expiring by TTL; chains listed per user.
pub const SESSIONS: TableSchema = TableSchema {
    logical_id: "SessionsTable",
    partition_key: PK,
    sort_key: None,
    indexes: &[
        Index {
            name: USER_INDEX,
            partition_key: Key {
                name: USER_INDEX_KEY,
                kind: KeyType::String,
            },
            sort_key: Some(Key {
                name: USER_INDEX_SORT,
                kind: KeyType::Number,
            }),
            projection: Projection::All,
        },
        Index {
            name: OWNER_INDEX,
            partition_key: Key {
                name: OWNER_INDEX_KEY,
                kind: KeyType::String,
            },
            sort_key: None,
            projection: Projection::KeysOnly,
        },
    ],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

/// Each user's security history: partition `pk` the user's id, sort key the entry's
/// time-ordered id, expiring by TTL after [`crate::model::HISTORY_RETENTION_SECS`].
pub const HISTORY: TableSchema = TableSchema {
    logical_id: "HistoryTable",
    partition_key: PK,
    sort_key: Some(Key {
        name: HISTORY_SORT_KEY,
        kind: KeyType::String,
    }),
    indexes: &[],
    ttl_attribute: Some(TTL_ATTRIBUTE),
};

pub const TABLES: &[TableSchema] = &[USERS, SESSIONS, HISTORY];
