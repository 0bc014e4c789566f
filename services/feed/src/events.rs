//! The social events (`PostCreated` on `social.posts`, `FollowChanged` on `social.follows`):
//! validated construction for the API, decoding for the processor.

use apache_avro::types::Value;
use sluice_core::{
    codec::{DecodeError, SchemaRegistry},
    config::SocialConfig,
    headers::now_millis,
    json::string_field,
    json::FieldError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostCreated {
    /// UUIDv7: sortable by creation time.
    pub post_id: String,
    pub author_id: String,
    pub text: String,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FollowAction {
    Follow,
    Unfollow,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FollowChanged {
    pub follower_id: String,
    pub followee_id: String,
    pub action: FollowAction,
    pub changed_at: i64,
}

fn field_error(field: &str, problem: &str) -> FieldError {
    FieldError {
        field: field.to_owned(),
        problem: problem.to_owned(),
    }
}

/// User ids end up in Redis keys and feed entries, so they are kept to a safe alphabet.
pub fn check_user_id(field: &str, id: &str) -> Result<(), FieldError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if id.is_empty() {
        return Err(field_error(field, "must not be empty"));
    }
    if id.len() > 64 || !id.chars().all(ok_char) {
        return Err(field_error(
            field,
            "must be 1 to 64 characters of A-Z a-z 0-9 _ - .",
        ));
    }
    Ok(())
}

impl PostCreated {
    pub fn new(author_id: &str, text: &str, config: &SocialConfig) -> Result<Self, FieldError> {
        check_user_id("author_id", author_id)?;
        if text.trim().is_empty() {
            return Err(field_error("text", "must not be empty"));
        }
        let chars = text.chars().count();
        if chars > config.max_post_chars {
            return Err(field_error(
                "text",
                &format!(
                    "is {chars} characters; the limit is {}",
                    config.max_post_chars
                ),
            ));
        }
        Ok(Self {
            post_id: uuid::Uuid::now_v7().to_string(),
            author_id: author_id.to_owned(),
            text: text.to_owned(),
            created_at: now_millis(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let value = Value::Record(vec![
            ("post_id".into(), Value::String(self.post_id.clone())),
            ("author_id".into(), Value::String(self.author_id.clone())),
            ("text".into(), Value::String(self.text.clone())),
            ("created_at".into(), Value::TimestampMillis(self.created_at)),
        ]);
        SchemaRegistry::embedded()
            .encode("PostCreated", value)
            .expect("a PostCreated value matches its schema")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = SchemaRegistry::embedded()
            .decode("PostCreated", bytes)?
            .value;
        let text = |name| string_field(&value, name).unwrap_or_default().to_owned();
        let post = Self {
            post_id: text("post_id"),
            author_id: text("author_id"),
            text: text("text"),
            created_at: timestamp_field(&value, "created_at"),
        };
        check_user_id("author_id", &post.author_id).map_err(|e| invalid("PostCreated", e))?;
        if post.post_id.is_empty() || post.post_id.contains(':') {
            return Err(invalid(
                "PostCreated",
                field_error("post_id", "must be a non-empty id without `:`"),
            ));
        }
        Ok(post)
    }
}

impl FollowChanged {
    pub fn new(
        follower_id: &str,
        followee_id: &str,
        action: FollowAction,
    ) -> Result<Self, FieldError> {
        check_user_id("follower_id", follower_id)?;
        check_user_id("followee_id", followee_id)?;
        if follower_id == followee_id {
            return Err(field_error(
                "followee_id",
                "a user cannot follow themselves",
            ));
        }
        Ok(Self {
            follower_id: follower_id.to_owned(),
            followee_id: followee_id.to_owned(),
            action,
            changed_at: now_millis(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let (index, symbol) = match self.action {
            FollowAction::Follow => (0, "FOLLOW"),
            FollowAction::Unfollow => (1, "UNFOLLOW"),
        };
        let value = Value::Record(vec![
            (
                "follower_id".into(),
                Value::String(self.follower_id.clone()),
            ),
            (
                "followee_id".into(),
                Value::String(self.followee_id.clone()),
            ),
            ("action".into(), Value::Enum(index, symbol.into())),
            ("changed_at".into(), Value::TimestampMillis(self.changed_at)),
        ]);
        SchemaRegistry::embedded()
            .encode("FollowChanged", value)
            .expect("a FollowChanged value matches its schema")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let value = SchemaRegistry::embedded()
            .decode("FollowChanged", bytes)?
            .value;
        let text = |name| string_field(&value, name).unwrap_or_default().to_owned();
        let action = match &value {
            Value::Record(fields) => fields
                .iter()
                .find(|(n, _)| n == "action")
                .map(|(_, v)| v.clone()),
            _ => None,
        };
        let action = match action {
            Some(Value::Enum(_, symbol)) if symbol == "UNFOLLOW" => FollowAction::Unfollow,
            _ => FollowAction::Follow,
        };
        let (follower_id, followee_id) = (text("follower_id"), text("followee_id"));
        check_user_id("follower_id", &follower_id).map_err(|e| invalid("FollowChanged", e))?;
        check_user_id("followee_id", &followee_id).map_err(|e| invalid("FollowChanged", e))?;
        Ok(Self {
            follower_id,
            followee_id,
            action,
            changed_at: timestamp_field(&value, "changed_at"),
        })
    }
}

fn timestamp_field(record: &Value, name: &str) -> i64 {
    match record {
        Value::Record(fields) => fields
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, v)| match v {
                Value::TimestampMillis(ms) | Value::Long(ms) => Some(*ms),
                _ => None,
            })
            .unwrap_or(0),
        _ => 0,
    }
}

/// A record that decodes but breaks the rules is as unusable as one that does not decode.
fn invalid(type_name: &str, e: FieldError) -> DecodeError {
    DecodeError::Body {
        type_name: type_name.to_owned(),
        version: 0,
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_round_trip_through_the_wire_format() {
        let post = PostCreated::new("alice", "hello", &SocialConfig::default()).unwrap();
        assert_eq!(PostCreated::decode(&post.encode()).unwrap(), post);
        let follow = FollowChanged::new("bob", "alice", FollowAction::Unfollow).unwrap();
        assert_eq!(FollowChanged::decode(&follow.encode()).unwrap(), follow);
    }

    #[test]
    fn bad_input_names_the_problem() {
        let config = SocialConfig {
            max_post_chars: 5,
            ..SocialConfig::default()
        };
        let error = |r: Result<PostCreated, FieldError>| r.unwrap_err().to_string();
        assert_eq!(
            error(PostCreated::new("", "x", &config)),
            "field `author_id`: must not be empty"
        );
        assert_eq!(
            error(PostCreated::new("a b", "x", &config)),
            "field `author_id`: must be 1 to 64 characters of A-Z a-z 0-9 _ - ."
        );
        assert_eq!(
            error(PostCreated::new("a", "  ", &config)),
            "field `text`: must not be empty"
        );
        assert_eq!(
            error(PostCreated::new("a", "123456", &config)),
            "field `text`: is 6 characters; the limit is 5"
        );
        let oneself = FollowChanged::new("a", "a", FollowAction::Follow).unwrap_err();
        assert_eq!(
            oneself.to_string(),
            "field `followee_id`: a user cannot follow themselves"
        );
    }
}
