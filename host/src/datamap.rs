//! The data map: the operator's description of the platform's database.
//!
//! Lethe never guesses where a user's data lives. The operator declares, in
//! TOML, the users table, each *category* of owned data (table, owner
//! column, what counts as "open", personal columns, child tables and whether
//! each edge is deep or shallow, as DELF annotates edges), the *references*
//! that name users without owning rows, and the *guards* no policy can
//! override. [`DataMap::validate`] checks the map against the live schema
//! and enforces DELF's coverage rule, so a new table holding user data cannot
//! silently escape deletion.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use serde::Deserialize;

use crate::contract::{Action, LifecycleState};
use crate::db::{ColumnKind, Schema, TableInfo};

#[derive(Debug, thiserror::Error)]
pub enum DataMapError {
    #[error("cannot read data map `{path}`: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("invalid data map: {0}")]
    Parse(Box<toml::de::Error>),
    #[error("data map does not match the database:\n{}", list(.0))]
    Invalid(Vec<Problem>),
}

fn list(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| format!("  - {p}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// One thing wrong with the map, naming the table and column concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where in the map: `users`, `category deals`, `guard billing_seats`…
    pub origin: String,
    pub table: String,
    pub column: Option<String>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.column {
            Some(c) => write!(f, "{}: {}.{}: {}", self.origin, self.table, c, self.message),
            None => write!(f, "{}: {}: {}", self.origin, self.table, self.message),
        }
    }
}

fn default_key() -> String {
    "id".into()
}
fn default_tenant() -> String {
    "tenant_id".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataMap {
    pub users: UsersMap,
    #[serde(default, rename = "category")]
    pub categories: Vec<Category>,
    #[serde(default, rename = "reference")]
    pub references: Vec<Reference>,
    #[serde(default, rename = "guard")]
    pub guards: Vec<Guard>,
}

/// The platform's users table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsersMap {
    pub table: String,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    pub state: StateColumn,
    /// Comma-separated roles.
    pub roles: Option<String>,
    /// Comma-separated permissions.
    pub permissions: Option<String>,
    pub domain: Option<String>,
    /// The login email: restore refuses when another live user has it.
    pub email: String,
    /// The display name, which a profile scrub replaces by the plan's text.
    pub display_name: String,
    pub last_login: Option<String>,
    pub created: String,
    /// Columns passed to policies as `key = value` attributes.
    #[serde(default)]
    pub attributes: Vec<String>,
    /// Columns scrubbed with the profile and on erase.
    #[serde(default)]
    pub personal: Vec<PersonalColumn>,
    /// Where SCIM attributes live; absent: the tenant's SCIM endpoints
    /// answer 404.
    pub scim: Option<ScimColumns>,
}

/// The users-table columns behind SCIM's User attributes (RFC 7643 §4.1).
///
/// `displayName` is the users map's `display_name`, `emails[0].value` its
/// `email`, and `active` is read from the lifecycle state (active or not);
/// the columns here are the rest. Only attributes with a column are
/// published in `/Schemas`, so an identity provider never sends a value
/// Lethe would drop. Columns holding a person's data belong in the users
/// map's `personal` list too, so an erase scrubs them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScimColumns {
    /// `userName`, unique among the tenant's users that are not erased.
    pub user_name: String,
    pub external_id: Option<String>,
    /// `name.givenName`.
    pub given_name: Option<String>,
    /// `name.familyName`.
    pub family_name: Option<String>,
    /// Values of other columns a user created over SCIM gets, e.g. `role =
    /// "member"` (the domain, when mapped and not given here, is the email's).
    #[serde(default)]
    pub defaults: BTreeMap<String, String>,
    /// Keys of users created over SCIM are this prefix and 24 hex digits
    /// (the users key must be a text column).
    #[serde(default = "default_scim_key_prefix")]
    pub key_prefix: String,
}

fn default_scim_key_prefix() -> String {
    "scim-".into()
}

/// The state column and the value each lifecycle state is stored as.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StateColumn {
    pub column: String,
    pub active: String,
    pub locked: String,
    pub deactivated: String,
    pub deleted: String,
    pub erased: String,
}

impl StateColumn {
    pub fn value(&self, state: LifecycleState) -> &str {
        match state {
            LifecycleState::Active => &self.active,
            LifecycleState::Locked => &self.locked,
            LifecycleState::Deactivated => &self.deactivated,
            LifecycleState::Deleted => &self.deleted,
            LifecycleState::Erased => &self.erased,
        }
    }

    pub fn state(&self, value: &str) -> Option<LifecycleState> {
        LifecycleState::ALL
            .into_iter()
            .find(|s| self.value(*s) == value)
    }
}

/// A column holding personal data and what it becomes when scrubbed
/// (`scrub` absent: NULL).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PersonalColumn {
    pub column: String,
    #[serde(default)]
    pub scrub: Option<String>,
}

/// A kind of data a user owns.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Category {
    pub name: String,
    pub table: String,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The column naming the owning user.
    pub owner: String,
    /// Which rows count as open; without it every row is open.
    pub open: Option<OpenRule>,
    #[serde(default)]
    pub personal: Vec<PersonalColumn>,
    #[serde(default, rename = "child")]
    pub children: Vec<Edge>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenRule {
    pub column: String,
    pub values: Vec<String>,
}

/// A table whose rows point at a parent row by foreign key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Edge {
    pub table: String,
    #[serde(default = "default_key")]
    pub key: String,
    /// The child's column referencing the parent's key.
    pub fk: String,
    pub edge: EdgeKind,
    #[serde(default, rename = "child")]
    pub children: Vec<Edge>,
}

/// DELF's edge annotation.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum EdgeKind {
    /// Removed with the parent.
    Deep,
    /// Detached: the foreign key is set to NULL.
    Shallow,
}

/// A table naming users without owning rows (e.g. an activity log).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reference {
    pub table: String,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// Columns holding a user id.
    pub ids: Vec<String>,
    /// Free-text columns that may spell out a user's name or email.
    #[serde(default)]
    pub text: Vec<String>,
}

/// An operator rule no policy can override.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Guard {
    pub table: String,
    #[serde(default = "default_key")]
    pub key: String,
    #[serde(default = "default_tenant")]
    pub tenant: String,
    /// The column naming the user.
    pub column: String,
    pub rule: GuardRule,
    /// For `remove`: the actions that remove the user's rows.
    #[serde(default)]
    pub on: Vec<Action>,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GuardRule {
    /// Rows are never changed nor removed (billing).
    Keep,
    /// Rows are removed on the listed actions (sessions).
    Remove,
}

impl DataMap {
    pub fn load(path: &Path) -> Result<DataMap, DataMapError> {
        let text = std::fs::read_to_string(path).map_err(|source| DataMapError::Read {
            path: path.display().to_string(),
            source,
        })?;
        DataMap::parse(&text)
    }

    /// Parse and check what can be checked without a database.
    pub fn parse(text: &str) -> Result<DataMap, DataMapError> {
        let map: DataMap = toml::from_str(text).map_err(|e| DataMapError::Parse(Box::new(e)))?;
        let problems = map.structural_problems();
        if problems.is_empty() {
            Ok(map)
        } else {
            Err(DataMapError::Invalid(problems))
        }
    }

    pub fn category(&self, name: &str) -> Option<&Category> {
        self.categories.iter().find(|c| c.name == name)
    }

    /// Whether a `keep` guard protects `table`.
    pub fn is_kept(&self, table: &str) -> bool {
        self.guards
            .iter()
            .any(|g| g.rule == GuardRule::Keep && g.table == table)
    }

    fn structural_problems(&self) -> Vec<Problem> {
        let mut out = Vec::new();
        let u = &self.users;
        let values: BTreeSet<&str> = LifecycleState::ALL
            .iter()
            .map(|s| u.state.value(*s))
            .collect();
        if values.len() != LifecycleState::ALL.len() {
            out.push(Problem {
                origin: "users".into(),
                table: u.table.clone(),
                column: Some(u.state.column.clone()),
                message: "each lifecycle state needs its own value".into(),
            });
        }
        let mut names = BTreeSet::new();
        for c in &self.categories {
            if !names.insert(c.name.as_str()) {
                out.push(Problem {
                    origin: format!("category {}", c.name),
                    table: c.table.clone(),
                    column: None,
                    message: "category name declared twice".into(),
                });
            }
        }
        for g in &self.guards {
            if g.rule == GuardRule::Remove && g.on.is_empty() {
                out.push(Problem {
                    origin: format!("guard {}", g.table),
                    table: g.table.clone(),
                    column: Some(g.column.clone()),
                    message: "a remove guard needs `on` actions".into(),
                });
            }
            if g.rule == GuardRule::Keep && !g.on.is_empty() {
                out.push(Problem {
                    origin: format!("guard {}", g.table),
                    table: g.table.clone(),
                    column: Some(g.column.clone()),
                    message: "a keep guard applies to every action; drop `on`".into(),
                });
            }
        }
        out
    }

    /// Check the map against the live schema: every named table and column
    /// exists with a usable type, and every foreign key to the users table,
    /// directly or through a covered parent, is covered (DELF's rule).
    pub fn validate(&self, schema: &Schema) -> Result<(), DataMapError> {
        let mut v = Validator {
            schema,
            problems: Vec::new(),
        };
        let u = &self.users;
        let origin = "users";
        if v.table(origin, &u.table).is_some() {
            v.column(origin, &u.table, &u.key, None);
            v.column(origin, &u.table, &u.tenant, None);
            v.column(origin, &u.table, &u.state.column, Some(ColumnKind::Text));
            v.column(origin, &u.table, &u.email, Some(ColumnKind::Text));
            v.column(origin, &u.table, &u.display_name, Some(ColumnKind::Text));
            v.column(origin, &u.table, &u.created, Some(ColumnKind::Integer));
            for c in [&u.roles, &u.permissions, &u.domain].into_iter().flatten() {
                v.column(origin, &u.table, c, Some(ColumnKind::Text));
            }
            if let Some(c) = &u.last_login {
                v.column(origin, &u.table, c, Some(ColumnKind::Integer));
            }
            for c in &u.attributes {
                v.column(origin, &u.table, c, None);
            }
            for p in &u.personal {
                v.column(origin, &u.table, &p.column, None);
            }
            if let Some(scim) = &u.scim {
                let origin = "users.scim";
                v.column(origin, &u.table, &u.key, Some(ColumnKind::Text));
                v.column(origin, &u.table, &scim.user_name, Some(ColumnKind::Text));
                for c in [&scim.external_id, &scim.given_name, &scim.family_name]
                    .into_iter()
                    .flatten()
                {
                    v.column(origin, &u.table, c, Some(ColumnKind::Text));
                }
                for c in scim.defaults.keys() {
                    v.column(origin, &u.table, c, None);
                }
            }
        }

        // Tables that can lose rows or be rewritten through a category, and
        // the edges declared out of each.
        let mut parents: BTreeSet<&str> = BTreeSet::new();
        let mut edges: BTreeSet<(&str, &str, &str)> = BTreeSet::new(); // (parent, child, fk)
        for c in &self.categories {
            let origin = format!("category {}", c.name);
            if v.table(&origin, &c.table).is_some() {
                v.column(&origin, &c.table, &c.key, None);
                v.column(&origin, &c.table, &c.tenant, None);
                v.column(&origin, &c.table, &c.owner, None);
                if let Some(open) = &c.open {
                    v.column(&origin, &c.table, &open.column, Some(ColumnKind::Text));
                }
                for p in &c.personal {
                    v.column(&origin, &c.table, &p.column, None);
                }
            }
            parents.insert(&c.table);
            v.edges(&origin, &c.table, &c.children, &mut parents, &mut edges);
        }
        for r in &self.references {
            let origin = format!("reference {}", r.table);
            if v.table(&origin, &r.table).is_some() {
                v.column(&origin, &r.table, &r.key, None);
                v.column(&origin, &r.table, &r.tenant, None);
                for c in &r.ids {
                    v.column(&origin, &r.table, c, Some(ColumnKind::Text));
                }
                for c in &r.text {
                    v.column(&origin, &r.table, c, Some(ColumnKind::Text));
                }
            }
        }
        for g in &self.guards {
            let origin = format!("guard {}", g.table);
            if v.table(&origin, &g.table).is_some() {
                v.column(&origin, &g.table, &g.key, None);
                v.column(&origin, &g.table, &g.tenant, None);
                v.column(&origin, &g.table, &g.column, None);
            }
        }

        // Coverage.
        let mut user_columns: BTreeSet<(&str, &str)> = BTreeSet::new();
        for c in &self.categories {
            user_columns.insert((&c.table, &c.owner));
        }
        for r in &self.references {
            for id in &r.ids {
                user_columns.insert((&r.table, id));
            }
        }
        for g in &self.guards {
            user_columns.insert((&g.table, &g.column));
        }
        for (name, table) in &schema.tables {
            if name.starts_with("lethe_") || name.starts_with("_sqlx") {
                continue;
            }
            for fk in &table.foreign_keys {
                if fk.ref_table == u.table && name != &u.table {
                    if !user_columns.contains(&(name.as_str(), fk.column.as_str())) {
                        v.problems.push(Problem {
                            origin: "coverage".into(),
                            table: name.clone(),
                            column: Some(fk.column.clone()),
                            message: format!(
                                "references {}.{} but no category, reference or guard covers it",
                                fk.ref_table, fk.ref_column
                            ),
                        });
                    }
                } else if parents.contains(fk.ref_table.as_str())
                    && !edges.contains(&(fk.ref_table.as_str(), name.as_str(), fk.column.as_str()))
                {
                    v.problems.push(Problem {
                        origin: "coverage".into(),
                        table: name.clone(),
                        column: Some(fk.column.clone()),
                        message: format!(
                            "references covered table {} but is not declared as its child (deep or shallow edge)",
                            fk.ref_table
                        ),
                    });
                }
            }
        }
        if v.problems.is_empty() {
            Ok(())
        } else {
            Err(DataMapError::Invalid(v.problems))
        }
    }
}

struct Validator<'a> {
    schema: &'a Schema,
    problems: Vec<Problem>,
}

impl<'a> Validator<'a> {
    fn table(&mut self, origin: &str, table: &str) -> Option<&'a TableInfo> {
        let found = self.schema.tables.get(table);
        if found.is_none() {
            self.problems.push(Problem {
                origin: origin.into(),
                table: table.into(),
                column: None,
                message: "no such table".into(),
            });
        }
        found
    }

    fn column(&mut self, origin: &str, table: &str, column: &str, kind: Option<ColumnKind>) {
        let Some(info) = self.schema.tables.get(table) else {
            return;
        };
        match info.columns.get(column) {
            None => self.problems.push(Problem {
                origin: origin.into(),
                table: table.into(),
                column: Some(column.into()),
                message: "no such column".into(),
            }),
            Some(col) => {
                if let Some(kind) = kind {
                    if col.kind != kind {
                        self.problems.push(Problem {
                            origin: origin.into(),
                            table: table.into(),
                            column: Some(column.into()),
                            message: format!(
                                "expected a {kind:?} column, found `{}`",
                                col.decl_type
                            ),
                        });
                    }
                }
            }
        }
    }

    fn edges<'m>(
        &mut self,
        origin: &str,
        parent: &'m str,
        children: &'m [Edge],
        parents: &mut BTreeSet<&'m str>,
        edges: &mut BTreeSet<(&'m str, &'m str, &'m str)>,
    ) {
        for e in children {
            if self.table(origin, &e.table).is_some() {
                self.column(origin, &e.table, &e.key, None);
                self.column(origin, &e.table, &e.fk, None);
            }
            edges.insert((parent, &e.table, &e.fk));
            if e.edge == EdgeKind::Deep {
                parents.insert(&e.table);
                self.edges(origin, &e.table, &e.children, parents, edges);
            } else if !e.children.is_empty() {
                self.problems.push(Problem {
                    origin: origin.into(),
                    table: e.table.clone(),
                    column: Some(e.fk.clone()),
                    message: "a shallow edge keeps its rows, so it cannot have children".into(),
                });
            }
        }
    }
}

/// Every table of a category's cascade, children before parents, with the
/// edge that reaches it: the order in which a cascade deletes.
pub fn cascade_order(category: &Category) -> Vec<Vec<&Edge>> {
    fn walk<'a>(edges: &'a [Edge], path: &mut Vec<&'a Edge>, out: &mut Vec<Vec<&'a Edge>>) {
        for e in edges {
            path.push(e);
            if e.edge == EdgeKind::Deep {
                walk(&e.children, path, out);
            }
            out.push(path.clone());
            path.pop();
        }
    }
    let mut out = Vec::new();
    walk(&category.children, &mut Vec::new(), &mut out);
    out
}

/// Counts what a map declares, for `lethe datamap check` output.
pub fn summary(map: &DataMap) -> BTreeMap<&'static str, usize> {
    let mut m = BTreeMap::new();
    m.insert("categories", map.categories.len());
    m.insert("references", map.references.len());
    m.insert("guards", map.guards.len());
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    pub const DEMO: &str = include_str!("../../examples/demo/datamap.toml");

    #[test]
    fn demo_map_parses() {
        let map = DataMap::parse(DEMO).unwrap();
        assert!(map.category("deals").is_some());
        assert!(map.is_kept("billing_seats"));
        assert_eq!(
            map.users.state.state("inactive"),
            Some(LifecycleState::Deactivated)
        );
        let campaigns = map.category("campaigns").unwrap();
        let order = cascade_order(campaigns);
        let tables: Vec<&str> = order
            .iter()
            .map(|p| p.last().unwrap().table.as_str())
            .collect();
        assert!(tables.contains(&"campaign_recipients"));
        assert!(tables.contains(&"assets"));
    }

    #[test]
    fn duplicate_state_values_are_refused() {
        let bad = DEMO.replace("erased = \"erased\"", "erased = \"deleted\"");
        let err = DataMap::parse(&bad).unwrap_err().to_string();
        assert!(err.contains("status"), "{err}");
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = DEMO.replacen("[users]", "[users]\nstatus_column = \"x\"", 1);
        assert!(DataMap::parse(&bad).is_err());
    }

    #[test]
    fn cascade_order_puts_children_before_parents() {
        let map = DataMap::parse(
            r#"
[users]
table = "users"
email = "email"
display_name = "name"
created = "created_at"
state = { column = "status", active = "a", locked = "l", deactivated = "d", deleted = "x", erased = "e" }
[[category]]
name = "a"
table = "a"
owner = "owner_id"
[[category.child]]
table = "b"
fk = "a_id"
edge = "deep"
[[category.child.child]]
table = "c"
fk = "b_id"
edge = "deep"
"#,
        )
        .unwrap();
        let order = cascade_order(&map.categories[0]);
        let tables: Vec<&str> = order
            .iter()
            .map(|p| p.last().unwrap().table.as_str())
            .collect();
        assert_eq!(tables, ["c", "b"]);
    }
}
