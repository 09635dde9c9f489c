//! SCIM documents: a user as a User resource, list responses, errors, and
//! the discovery documents (`ServiceProviderConfig`, `ResourceTypes`,
//! `Schemas`).
//!
//! The User schema is published per data map: only the attributes it has
//! columns for. Identity providers (and the conformance tester) send what a
//! schema publishes, so publishing an attribute Lethe would drop would make
//! every sync look like data loss.

use serde_json::{json, Map, Value};

use super::request::{Stored, USER_SCHEMA};
use crate::platform::provisioning::ProvisionedUser;

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
pub const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const SPC_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";
const RESOURCE_TYPE_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:ResourceType";
const SCHEMA_SCHEMA: &str = "urn:ietf:params:scim:schemas:core:2.0:Schema";

/// Largest page of a list; also `filter.maxResults`.
pub const MAX_RESULTS: i64 = 1000;

/// `user` as a User resource. `base` is the tenant's SCIM base URL path
/// (`/scim/v2/{t}`), for `meta.location`.
pub fn user(u: &ProvisionedUser, stored: Stored, base: &str) -> Value {
    let p = &u.profile;
    let mut doc = Map::new();
    doc.insert("schemas".into(), json!([USER_SCHEMA]));
    doc.insert("id".into(), json!(u.id));
    if stored.external_id {
        if let Some(e) = &p.external_id {
            doc.insert("externalId".into(), json!(e));
        }
    }
    doc.insert("userName".into(), json!(p.user_name));
    let mut name = Map::new();
    if let Some(g) = &p.given_name {
        name.insert("givenName".into(), json!(g));
    }
    if let Some(f) = &p.family_name {
        name.insert("familyName".into(), json!(f));
    }
    if stored.name() && !name.is_empty() {
        doc.insert("name".into(), Value::Object(name));
    }
    if let Some(d) = &p.display_name {
        doc.insert("displayName".into(), json!(d));
    }
    if let Some(e) = &p.email {
        doc.insert("emails".into(), json!([{ "value": e }]));
    }
    doc.insert(
        "active".into(),
        json!(u.state == crate::contract::LifecycleState::Active),
    );
    let mut meta = Map::new();
    meta.insert("resourceType".into(), json!("User"));
    if let Ok(t) = jiff::Timestamp::from_second(u.created_at) {
        meta.insert("created".into(), json!(t.to_string()));
    }
    meta.insert("location".into(), json!(format!("{base}/Users/{}", u.id)));
    doc.insert("meta".into(), Value::Object(meta));
    Value::Object(doc)
}

/// Which attributes a response carries (RFC 7644 §3.4.2.5): only those of
/// `attributes` (plus `id` and `schemas`, always returned), or all but
/// those of `excluded`. Names are compared without case; `name.givenName`
/// selects a sub-attribute.
#[derive(Debug, Clone, Default)]
pub struct Projection {
    pub attributes: Vec<String>,
    pub excluded: Vec<String>,
}

impl Projection {
    /// From comma-separated query parameters.
    pub fn from_query(attributes: Option<&str>, excluded: Option<&str>) -> Projection {
        let split = |s: Option<&str>| -> Vec<String> {
            s.unwrap_or_default()
                .split(',')
                .map(|a| super::filter::strip_urn(a.trim()).to_owned())
                .filter(|a| !a.is_empty())
                .collect()
        };
        Projection {
            attributes: split(attributes),
            excluded: split(excluded),
        }
    }

    pub fn apply(&self, doc: Value) -> Value {
        let Value::Object(mut obj) = doc else {
            return doc;
        };
        const ALWAYS: [&str; 2] = ["schemas", "id"];
        if !self.attributes.is_empty() {
            let keys: Vec<String> = obj.keys().cloned().collect();
            for key in keys {
                if ALWAYS.contains(&key.as_str()) {
                    continue;
                }
                let whole = self.attributes.iter().any(|a| a.eq_ignore_ascii_case(&key));
                let subs: Vec<&str> = self
                    .attributes
                    .iter()
                    .filter_map(|a| a.split_once('.'))
                    .filter(|(parent, _)| parent.eq_ignore_ascii_case(&key))
                    .map(|(_, sub)| sub)
                    .collect();
                if whole {
                    continue;
                }
                match obj.get_mut(&key) {
                    Some(Value::Object(inner)) if !subs.is_empty() => {
                        inner.retain(|k, _| subs.iter().any(|s| s.eq_ignore_ascii_case(k)));
                    }
                    _ => {
                        obj.remove(&key);
                    }
                }
            }
        }
        for ex in &self.excluded {
            if ALWAYS.iter().any(|a| a.eq_ignore_ascii_case(ex)) {
                continue;
            }
            match ex.split_once('.') {
                Some((parent, sub)) => {
                    if let Some(Value::Object(inner)) = obj
                        .iter_mut()
                        .find(|(k, _)| k.eq_ignore_ascii_case(parent))
                        .map(|(_, v)| v)
                    {
                        inner.retain(|k, _| !k.eq_ignore_ascii_case(sub));
                    }
                }
                None => obj.retain(|k, _| !k.eq_ignore_ascii_case(ex)),
            }
        }
        Value::Object(obj)
    }
}

/// A ListResponse of `resources`, the `start_index`-th (1-based) onward
/// of `total`.
pub fn list(resources: Vec<Value>, total: i64, start_index: i64) -> Value {
    json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
        "Resources": resources,
    })
}

/// What Lethe supports, honestly: PATCH and filters (`eq` on userName,
/// externalId and active), no bulk, sort, ETags or password change.
pub fn service_provider_config(base: &str) -> Value {
    json!({
        "schemas": [SPC_SCHEMA],
        "documentationUri": "https://github.com/lethe/lethe#scim-20-identity-providers",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer token",
            "description": "A tenant's SCIM token, created by an operator (POST /v1/admin/tenants/{t}/scim/tokens)",
            "primary": true
        }],
        "meta": {"resourceType": "ServiceProviderConfig", "location": format!("{base}/ServiceProviderConfig")}
    })
}

pub fn user_resource_type(base: &str) -> Value {
    json!({
        "schemas": [RESOURCE_TYPE_SCHEMA],
        "id": "User",
        "name": "User",
        "endpoint": "/Users",
        "description": "A user of the tenant; deprovisioning goes through the tenant's deletion policy",
        "schema": USER_SCHEMA,
        "meta": {"resourceType": "ResourceType", "location": format!("{base}/ResourceTypes/User")}
    })
}

fn string_attr(name: &str, description: &str) -> Value {
    json!({
        "name": name, "type": "string", "multiValued": false, "description": description,
        "required": false, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": "none"
    })
}

/// The User schema as this data map stores it.
pub fn user_schema(stored: Stored, base: &str) -> Value {
    let mut attributes = vec![json!({
        "name": "userName", "type": "string", "multiValued": false,
        "description": "Unique among the tenant's users that are not erased; compared without case.",
        "required": true, "caseExact": false, "mutability": "readWrite",
        "returned": "default", "uniqueness": "server"
    })];
    if stored.name() {
        let mut subs = Vec::new();
        if stored.given_name {
            subs.push(string_attr("givenName", "Given name."));
        }
        if stored.family_name {
            subs.push(string_attr("familyName", "Family name."));
        }
        attributes.push(json!({
            "name": "name", "type": "complex", "multiValued": false,
            "description": "The parts of the name the platform stores.",
            "required": false, "mutability": "readWrite", "returned": "default",
            "uniqueness": "none", "subAttributes": subs
        }));
    }
    attributes.push(string_attr("displayName", "The name shown for the user."));
    attributes.push(json!({
        "name": "emails", "type": "complex", "multiValued": true,
        "description": "The platform keeps one email: the primary one sent, else the first.",
        "required": false, "mutability": "readWrite", "returned": "default",
        "uniqueness": "none",
        "subAttributes": [string_attr("value", "The email address.")]
    }));
    attributes.push(json!({
        "name": "active", "type": "boolean", "multiValued": false,
        "description": "false runs the tenant's deprovision action (deactivate or lock) through its deletion policy; true reactivates or unlocks. Read from the lifecycle state. Required: it cannot be removed (a create without it makes an active user).",
        "required": true, "mutability": "readWrite", "returned": "default", "uniqueness": "none"
    }));
    json!({
        "schemas": [SCHEMA_SCHEMA],
        "id": USER_SCHEMA,
        "name": "User",
        "description": "User Account",
        "attributes": attributes,
        "meta": {"resourceType": "Schema", "location": format!("{base}/Schemas/{USER_SCHEMA}")}
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn projections_keep_id_and_pick_attributes() {
        let doc = json!({"schemas": [USER_SCHEMA], "id": "u1", "userName": "a",
            "name": {"givenName": "A", "familyName": "B"}, "externalId": "e", "active": true});
        let only =
            Projection::from_query(Some("externalId,name.givenName"), None).apply(doc.clone());
        assert_eq!(
            only,
            json!({"schemas": [USER_SCHEMA], "id": "u1", "name": {"givenName": "A"}, "externalId": "e"})
        );
        let without = Projection::from_query(None, Some("NAME,id")).apply(doc);
        assert_eq!(without.get("name"), None);
        assert_eq!(without.get("id"), Some(&json!("u1")));
        assert_eq!(without.get("userName"), Some(&json!("a")));
    }
}
