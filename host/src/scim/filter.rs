//! The SCIM filters Lethe answers (RFC 7644 §3.4.2.2): `eq` comparisons of
//! `userName`, `externalId` and `active`, joined by `and`. That is what
//! identity providers send to find a user before they create or update it
//! (`userName eq "ann@example.com"`, Entra's `externalId eq "…"`); anything
//! else is refused as `invalidFilter` rather than answered wrongly.

use super::{ScimError, ScimType};
use crate::platform::provisioning::Match;

/// The core User schema's URN, which may prefix an attribute path.
const USER_URN: &str = "urn:ietf:params:scim:schemas:core:2.0:User:";

/// Parse `filter` into the conditions it ANDs.
pub fn parse(filter: &str) -> Result<Vec<Match>, ScimError> {
    let mut tokens = Tokens::new(filter);
    let mut out = vec![comparison(&mut tokens)?];
    while let Some(word) = tokens.next_word()? {
        if !word.eq_ignore_ascii_case("and") {
            return Err(invalid(format!("expected `and`, found `{word}`")));
        }
        out.push(comparison(&mut tokens)?);
    }
    Ok(out)
}

fn invalid(detail: impl Into<String>) -> ScimError {
    ScimError::bad_request(ScimType::InvalidFilter, detail)
}

/// `attrPath eq value`.
fn comparison(tokens: &mut Tokens<'_>) -> Result<Match, ScimError> {
    let attr = tokens
        .next_word()?
        .ok_or_else(|| invalid("expected an attribute"))?;
    let op = tokens
        .next_word()?
        .ok_or_else(|| invalid(format!("expected an operator after `{attr}`")))?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(invalid(format!(
            "only `eq` is supported, not `{op}` (filter.supported lists what is)"
        )));
    }
    let value = tokens
        .next_value()?
        .ok_or_else(|| invalid(format!("expected a value after `{attr} eq`")))?;
    let name = strip_urn(attr);
    if name.eq_ignore_ascii_case("userName") {
        Ok(Match::UserName(value.string(name)?))
    } else if name.eq_ignore_ascii_case("externalId") {
        Ok(Match::ExternalId(value.string(name)?))
    } else if name.eq_ignore_ascii_case("active") {
        match value {
            Value::Bool(b) => Ok(Match::Active(b)),
            Value::Str(_) => Err(invalid("`active` compares with true or false")),
        }
    } else {
        Err(invalid(format!(
            "filtering on `{attr}` is not supported; use userName, externalId or active"
        )))
    }
}

/// `urn:…:User:userName` → `userName`.
pub fn strip_urn(path: &str) -> &str {
    match path.get(..USER_URN.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(USER_URN) => &path[USER_URN.len()..],
        _ => path,
    }
}

enum Value {
    Str(String),
    Bool(bool),
}

impl Value {
    fn string(self, attr: &str) -> Result<String, ScimError> {
        match self {
            Value::Str(s) => Ok(s),
            Value::Bool(_) => Err(invalid(format!("`{attr}` compares with a quoted string"))),
        }
    }
}

struct Tokens<'a> {
    rest: &'a str,
}

impl<'a> Tokens<'a> {
    fn new(s: &'a str) -> Tokens<'a> {
        Tokens { rest: s }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    /// A bare word (attribute path, operator, `and`), or `None` at the end.
    fn next_word(&mut self) -> Result<Option<&'a str>, ScimError> {
        self.skip_space();
        if self.rest.is_empty() {
            return Ok(None);
        }
        if self.rest.starts_with(['"', '(', ')', '[', ']']) {
            return Err(invalid(format!("unexpected `{}`", &self.rest[..1])));
        }
        let end = self
            .rest
            .find(|c: char| c.is_whitespace() || matches!(c, '"' | '(' | ')' | '[' | ']'))
            .unwrap_or(self.rest.len());
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Ok(Some(word))
    }

    /// A JSON string or `true`/`false`.
    fn next_value(&mut self) -> Result<Option<Value>, ScimError> {
        self.skip_space();
        if self.rest.starts_with('"') {
            // The shortest prefix that parses as a JSON string.
            let mut escaped = false;
            for (i, c) in self.rest.char_indices().skip(1) {
                match c {
                    '\\' if !escaped => escaped = true,
                    '"' if !escaped => {
                        let (lit, rest) = self.rest.split_at(i + 1);
                        let s: String = serde_json::from_str(lit)
                            .map_err(|e| invalid(format!("bad string {lit}: {e}")))?;
                        self.rest = rest;
                        return Ok(Some(Value::Str(s)));
                    }
                    _ => escaped = false,
                }
            }
            return Err(invalid("unterminated string"));
        }
        match self.next_word()? {
            None => Ok(None),
            Some(w) if w.eq_ignore_ascii_case("true") => Ok(Some(Value::Bool(true))),
            Some(w) if w.eq_ignore_ascii_case("false") => Ok(Some(Value::Bool(false))),
            Some(w) => Err(invalid(format!(
                "expected a quoted string, true or false, found `{w}`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_identity_providers_send() {
        assert_eq!(
            parse(r#"userName eq "ann@example.com""#).unwrap(),
            [Match::UserName("ann@example.com".into())]
        );
        assert_eq!(
            parse(r#"externalId EQ "00u1\"x""#).unwrap(),
            [Match::ExternalId("00u1\"x".into())]
        );
        assert_eq!(
            parse(
                r#"urn:ietf:params:scim:schemas:core:2.0:User:userName eq "a" and active eq False"#
            )
            .unwrap(),
            [Match::UserName("a".into()), Match::Active(false)]
        );
    }

    #[test]
    fn the_rest_is_refused_as_invalid_filter() {
        for f in [
            "",
            "userName",
            r#"userName co "a""#,
            r#"userName eq a"#,
            r#"emails.value eq "a""#,
            r#"userName eq "a" or active eq true"#,
            r#"(userName eq "a")"#,
            r#"active eq "true""#,
            r#"userName eq "unterminated"#,
            r#"userName eq true"#,
        ] {
            let e = parse(f).unwrap_err();
            assert_eq!(e.scim_type, Some(ScimType::InvalidFilter), "{f}");
            assert_eq!(e.status, 400, "{f}");
        }
    }
}
