//! What an identity provider asks for, read into [`Desired`]: the profile a
//! user should have and whether it should be active.
//!
//! A POST or PUT body is a whole resource ([`Desired::from_resource`]); a
//! PATCH is a list of operations applied in order to the user as it is
//! ([`apply_patch`]). Real clients are not uniform (RFC 7644 §3.5.2 and
//! what Okta and Entra actually send): op names come in any case
//! (`Replace`), booleans as strings (`"False"`), operations with or without
//! a `path`, paths with the schema URN or a value filter
//! (`emails[type eq "work"].value`). Attributes of the User schema or the
//! enterprise extension that the data map does not store (title, phone
//! numbers, a password…) are ignored, as RFC 7644 §3.3 lets a service
//! provider do; a path that names no attribute at all is `invalidPath`.

use serde_json::{Map, Value};

use super::{ScimError, ScimType};
use crate::datamap::ScimColumns;
use crate::platform::provisioning::Profile;

/// The core User schema.
pub const USER_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:User";
/// The enterprise extension (RFC 7643 §4.3), which Lethe does not store.
const ENTERPRISE_SCHEMA: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// A PATCH body's schema.
pub const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

/// User attributes of RFC 7643 §4.1 that no data map stores.
const NOT_STORED: [&str; 17] = [
    "nickName",
    "profileUrl",
    "title",
    "userType",
    "preferredLanguage",
    "locale",
    "timezone",
    "password",
    "phoneNumbers",
    "ims",
    "photos",
    "addresses",
    "groups",
    "entitlements",
    "roles",
    "x509Certificates",
    "meta",
];

/// What the user should be after the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub profile: Profile,
    pub active: bool,
}

/// Which optional attributes the data map stores.
#[derive(Debug, Clone, Copy)]
pub struct Stored {
    pub external_id: bool,
    pub given_name: bool,
    pub family_name: bool,
}

impl Stored {
    pub fn of(c: &ScimColumns) -> Stored {
        Stored {
            external_id: c.external_id.is_some(),
            given_name: c.given_name.is_some(),
            family_name: c.family_name.is_some(),
        }
    }

    pub fn name(self) -> bool {
        self.given_name || self.family_name
    }
}

fn invalid_value(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidValue, detail)
}

/// A string, or null for "no value".
fn opt_string(attr: &str, v: &Value) -> Result<Option<String>, ScimError> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => Ok(Some(s.clone())),
        other => Err(invalid_value(format!(
            "`{attr}` must be a string, not {other}"
        ))),
    }
}

/// A boolean, also as the strings `"true"`/`"false"` in any case (Entra).
pub fn boolean(attr: &str, v: &Value) -> Result<bool, ScimError> {
    match v {
        Value::Bool(b) => Ok(*b),
        Value::String(s) if s.eq_ignore_ascii_case("true") => Ok(true),
        Value::String(s) if s.eq_ignore_ascii_case("false") => Ok(false),
        other => Err(invalid_value(format!(
            "`{attr}` must be true or false, not {other}"
        ))),
    }
}

/// The email Lethe keeps from an `emails` value: the primary one, else the
/// first (a user has one email in the platform).
fn email_of(v: &Value) -> Result<Option<String>, ScimError> {
    let items: Vec<&Value> = match v {
        Value::Null => return Ok(None),
        Value::Array(items) => items.iter().collect(),
        Value::Object(_) => vec![v],
        other => {
            return Err(invalid_value(format!(
                "`emails` must be a list of objects, not {other}"
            )))
        }
    };
    let primary = |item: &&Value| {
        item.get("primary")
            .is_some_and(|p| boolean("emails.primary", p).unwrap_or(false))
    };
    let Some(chosen) = items
        .iter()
        .copied()
        .find(primary)
        .or(items.first().copied())
    else {
        return Ok(None);
    };
    match chosen.get("value") {
        Some(value) => opt_string("emails.value", value),
        None => Err(invalid_value("an email needs a `value`")),
    }
}

/// Look a key up without case (RFC 7643 §2.1: attribute names are
/// case-insensitive).
fn get<'v>(obj: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    obj.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(key))
        .map(|(_, v)| v)
}

impl Desired {
    /// A POST or PUT body. `current` is the user's state for a PUT (an
    /// absent `active` leaves it as it is), `None` for a POST (an absent
    /// `active` means active). Attributes not stored are ignored.
    pub fn from_resource(
        body: &Value,
        stored: Stored,
        current: Option<bool>,
    ) -> Result<Desired, ScimError> {
        let Value::Object(obj) = body else {
            return Err(ScimError::bad_request(
                ScimType::InvalidSyntax,
                "the body must be a JSON object",
            ));
        };
        if let Some(schemas) = get(obj, "schemas") {
            let names = schemas.as_array().map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .any(|s| s.eq_ignore_ascii_case(USER_SCHEMA))
            });
            if names != Some(true) {
                return Err(ScimError::bad_request(
                    ScimType::InvalidSyntax,
                    format!("`schemas` must list {USER_SCHEMA}"),
                ));
            }
        }
        let user_name = match get(obj, "userName") {
            Some(v) => opt_string("userName", v)?,
            None => None,
        }
        .filter(|s| !s.trim().is_empty())
        .ok_or_else(|| invalid_value("`userName` is required"))?;
        let mut profile = Profile {
            user_name,
            ..Profile::default()
        };
        let text = |attr: &str| match get(obj, attr) {
            Some(v) => opt_string(attr, v),
            None => Ok(None),
        };
        profile.display_name = text("displayName")?;
        if stored.external_id {
            profile.external_id = text("externalId")?;
        }
        if let Some(name) = get(obj, "name") {
            apply_name(&mut profile, stored, name)?;
        }
        if let Some(emails) = get(obj, "emails") {
            profile.email = email_of(emails)?;
        }
        let active = match get(obj, "active") {
            Some(v) => boolean("active", v)?,
            None => current.unwrap_or(true),
        };
        Ok(Desired { profile, active })
    }
}

/// Merge a `name` object: the sub-attributes given replace, the others
/// stay (RFC 7644 §3.5.2.1 and .3).
fn apply_name(profile: &mut Profile, stored: Stored, v: &Value) -> Result<(), ScimError> {
    let obj = match v {
        Value::Object(obj) => obj,
        Value::Null => {
            profile.given_name = None;
            profile.family_name = None;
            return Ok(());
        }
        other => {
            return Err(invalid_value(format!(
                "`name` must be an object, not {other}"
            )))
        }
    };
    if stored.given_name {
        if let Some(g) = get(obj, "givenName") {
            profile.given_name = opt_string("name.givenName", g)?;
        }
    }
    if stored.family_name {
        if let Some(f) = get(obj, "familyName") {
            profile.family_name = opt_string("name.familyName", f)?;
        }
    }
    Ok(())
}

/// What a PATCH path points at.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    UserName,
    ExternalId,
    DisplayName,
    Active,
    Name,
    GivenName,
    FamilyName,
    /// `emails`, or one email by a value filter.
    Emails,
    /// `emails.value`, `emails[…].value`.
    EmailValue,
    /// A User or enterprise attribute the data map does not store.
    NotStored,
}

fn target(path: &str, stored: Stored) -> Result<Target, ScimError> {
    let invalid_path = || {
        ScimError::bad_request(
            ScimType::InvalidPath,
            format!("`{path}` is not an attribute of the User schema"),
        )
    };
    let trimmed = path.trim();
    let ent = ENTERPRISE_SCHEMA;
    if trimmed
        .get(..ent.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(ent))
    {
        return Ok(Target::NotStored);
    }
    let p = super::filter::strip_urn(trimmed);
    // `attr[filter].sub` → (`attr`, `sub`); the filter only selects which
    // of a multi-valued attribute's values, and a user has one email.
    let (attr, sub) = match p.find('[') {
        Some(open) => {
            let close = p[open..].find(']').ok_or_else(invalid_path)? + open;
            let sub = p[close + 1..].strip_prefix('.');
            if !p[close + 1..].is_empty() && sub.is_none() {
                return Err(invalid_path());
            }
            (&p[..open], sub)
        }
        None => match p.split_once('.') {
            Some((a, s)) => (a, Some(s)),
            None => (p, None),
        },
    };
    let is = |name: &str| attr.eq_ignore_ascii_case(name);
    let sub_is = |name: &str| sub.is_some_and(|s| s.eq_ignore_ascii_case(name));
    Ok(match sub {
        None if is("userName") => Target::UserName,
        None if is("externalId") && stored.external_id => Target::ExternalId,
        None if is("externalId") => Target::NotStored,
        None if is("displayName") => Target::DisplayName,
        None if is("active") => Target::Active,
        None if is("name") => Target::Name,
        None if is("emails") => Target::Emails,
        Some(_) if is("name") && sub_is("givenName") && stored.given_name => Target::GivenName,
        Some(_) if is("name") && sub_is("familyName") && stored.family_name => Target::FamilyName,
        Some(_) if is("name") => Target::NotStored,
        Some(_) if is("emails") && sub_is("value") => Target::EmailValue,
        Some(_) if is("emails") => Target::NotStored,
        _ if NOT_STORED.iter().any(|n| is(n)) => Target::NotStored,
        _ => return Err(invalid_path()),
    })
}

/// A PATCH operation's verb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Replace,
    Remove,
}

/// Apply a PATCH body's operations, in order, to `current`.
pub fn apply_patch(body: &Value, stored: Stored, current: &Desired) -> Result<Desired, ScimError> {
    let syntax = |d: &str| ScimError::bad_request(ScimType::InvalidSyntax, d);
    let Value::Object(obj) = body else {
        return Err(syntax("the body must be a JSON object"));
    };
    if let Some(schemas) = get(obj, "schemas") {
        let ok = schemas.as_array().is_some_and(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .any(|s| s.eq_ignore_ascii_case(PATCH_OP))
        });
        if !ok {
            return Err(syntax(&format!("`schemas` must list {PATCH_OP}")));
        }
    }
    let ops = get(obj, "Operations")
        .and_then(Value::as_array)
        .filter(|ops| !ops.is_empty())
        .ok_or_else(|| syntax("`Operations` must be a non-empty list"))?;
    let mut desired = current.clone();
    for operation in ops {
        let Value::Object(o) = operation else {
            return Err(syntax("each operation must be an object"));
        };
        let op = match get(o, "op").and_then(Value::as_str) {
            Some(s) if s.eq_ignore_ascii_case("add") => Op::Add,
            Some(s) if s.eq_ignore_ascii_case("replace") => Op::Replace,
            Some(s) if s.eq_ignore_ascii_case("remove") => Op::Remove,
            other => {
                return Err(syntax(&format!(
                    "`op` must be add, replace or remove, not {}",
                    other.unwrap_or("absent")
                )))
            }
        };
        let path = get(o, "path").and_then(Value::as_str);
        let value = get(o, "value");
        match (op, path) {
            (Op::Remove, None) => {
                return Err(ScimError::bad_request(
                    ScimType::NoTarget,
                    "a remove needs a `path`",
                ))
            }
            (Op::Remove, Some(path)) => remove(&mut desired, target(path, stored)?)?,
            (_, Some(path)) => {
                let value = value.ok_or_else(|| syntax("an add or replace needs a `value`"))?;
                set(&mut desired, stored, target(path, stored)?, value)?;
            }
            // No path: the value is an object of attributes (Okta's
            // `{"op":"replace","value":{"active":false}}`).
            (_, None) => {
                let Some(Value::Object(attrs)) = value else {
                    return Err(syntax("without a `path`, `value` must be an object"));
                };
                for (key, v) in attrs {
                    if key.eq_ignore_ascii_case("schemas") {
                        continue;
                    }
                    set(&mut desired, stored, target(key, stored)?, v)?;
                }
            }
        }
    }
    Ok(desired)
}

fn set(d: &mut Desired, stored: Stored, t: Target, v: &Value) -> Result<(), ScimError> {
    let p = &mut d.profile;
    match t {
        Target::UserName => {
            p.user_name = opt_string("userName", v)?
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| invalid_value("`userName` cannot be empty"))?;
        }
        Target::ExternalId => p.external_id = opt_string("externalId", v)?,
        Target::DisplayName => p.display_name = opt_string("displayName", v)?,
        Target::GivenName => p.given_name = opt_string("name.givenName", v)?,
        Target::FamilyName => p.family_name = opt_string("name.familyName", v)?,
        Target::Name => apply_name(p, stored, v)?,
        Target::Emails => p.email = email_of(v)?,
        Target::EmailValue => p.email = opt_string("emails.value", v)?,
        Target::Active => d.active = boolean("active", v)?,
        Target::NotStored => {}
    }
    Ok(())
}

fn remove(d: &mut Desired, t: Target) -> Result<(), ScimError> {
    let required = |attr: &str| {
        ScimError::bad_request(
            ScimType::Mutability,
            format!("`{attr}` is required and cannot be removed"),
        )
    };
    let p = &mut d.profile;
    match t {
        Target::UserName => return Err(required("userName")),
        Target::Active => return Err(required("active")),
        Target::ExternalId => p.external_id = None,
        Target::DisplayName => p.display_name = None,
        Target::GivenName => p.given_name = None,
        Target::FamilyName => p.family_name = None,
        Target::Name => {
            p.given_name = None;
            p.family_name = None;
        }
        Target::Emails | Target::EmailValue => p.email = None,
        Target::NotStored => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ALL: Stored = Stored {
        external_id: true,
        given_name: true,
        family_name: true,
    };

    fn ann() -> Desired {
        Desired {
            profile: Profile {
                user_name: "ann@example.com".into(),
                external_id: Some("00u1".into()),
                given_name: Some("Ann".into()),
                family_name: Some("Lee".into()),
                display_name: Some("Ann Lee".into()),
                email: Some("ann@example.com".into()),
            },
            active: true,
        }
    }

    #[test]
    fn okta_deactivates_without_a_path() {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "replace", "value": {"active": false}}]});
        let d = apply_patch(&body, ALL, &ann()).unwrap();
        assert!(!d.active);
        assert_eq!(d.profile, ann().profile);
    }

    #[test]
    fn entra_capitalises_ops_and_quotes_booleans() {
        let body = json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Replace", "path": "active", "value": "False"},
            {"op": "Add", "path": "emails[type eq \"work\"].value", "value": "ann@new.example"},
            {"op": "Replace", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", "value": "Sales"},
            {"op": "replace", "path": "name.familyName", "value": "Park"},
            {"op": "add", "path": "title", "value": "Engineer"}]});
        let d = apply_patch(&body, ALL, &ann()).unwrap();
        assert!(!d.active);
        assert_eq!(d.profile.email.as_deref(), Some("ann@new.example"));
        assert_eq!(d.profile.family_name.as_deref(), Some("Park"));
        assert_eq!(d.profile.given_name.as_deref(), Some("Ann"));
    }

    #[test]
    fn removes_and_their_limits() {
        let body = json!({"Operations": [
            {"op": "remove", "path": "externalId"}, {"op": "remove", "path": "name"}]});
        let d = apply_patch(&body, ALL, &ann()).unwrap();
        assert_eq!((d.profile.external_id, d.profile.given_name), (None, None));
        for (body, scim_type) in [
            (
                json!({"Operations": [{"op": "remove", "path": "userName"}]}),
                ScimType::Mutability,
            ),
            (
                json!({"Operations": [{"op": "remove", "path": "active"}]}),
                ScimType::Mutability,
            ),
            (
                json!({"Operations": [{"op": "remove"}]}),
                ScimType::NoTarget,
            ),
            (
                json!({"Operations": [{"op": "add", "path": "shoeSize", "value": 9}]}),
                ScimType::InvalidPath,
            ),
            (
                json!({"Operations": [{"op": "copy", "path": "userName"}]}),
                ScimType::InvalidSyntax,
            ),
            (json!({"Operations": []}), ScimType::InvalidSyntax),
            (
                json!({"Operations": [{"op": "replace", "path": "active", "value": "maybe"}]}),
                ScimType::InvalidValue,
            ),
            (
                json!({"Operations": [{"op": "replace", "path": "userName", "value": ""}]}),
                ScimType::InvalidValue,
            ),
        ] {
            let e = apply_patch(&body, ALL, &ann()).unwrap_err();
            assert_eq!(e.scim_type, Some(scim_type), "{body}");
        }
    }

    #[test]
    fn a_resource_keeps_the_primary_email_and_ignores_what_is_not_stored() {
        let body = json!({"schemas": [USER_SCHEMA], "userName": "bo", "password": "x",
            "emails": [{"value": "b@home.example", "type": "home"},
                       {"value": "b@work.example", "type": "work", "primary": "True"}],
            "name": {"givenName": "Bo", "formatted": "Bo"}, "externalId": "e1"});
        let d = Desired::from_resource(&body, ALL, None).unwrap();
        assert_eq!(d.profile.email.as_deref(), Some("b@work.example"));
        assert_eq!(d.profile.given_name.as_deref(), Some("Bo"));
        assert!(d.active);
        let none = Stored {
            external_id: false,
            given_name: false,
            family_name: false,
        };
        let d = Desired::from_resource(&body, none, Some(false)).unwrap();
        assert_eq!((d.profile.external_id, d.active), (None, false));
        let e = Desired::from_resource(&json!({"displayName": "x"}), ALL, None).unwrap_err();
        assert_eq!(e.scim_type, Some(ScimType::InvalidValue));
    }
}
