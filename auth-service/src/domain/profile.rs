//! The profiles WeChat hands out, mapped onto [`Profile`]: the official
//! account's `/sns/userinfo` reply, and the mini program's `userInfo`
//! (`wx.getUserProfile`), which the client sends and so is checked field by field.

use serde_json::Value;

use super::AuthError;
use crate::db::users::Profile;
use crate::wechat::SnsUserInfo;

impl From<SnsUserInfo> for Profile {
    fn from(u: SnsUserInfo) -> Self {
        Profile {
            unionid: u.unionid.filter(|s| !s.is_empty()),
            nickname: u.nickname,
            headimgurl: u.headimgurl,
            sex: u.sex,
            province: u.province,
            city: u.city,
            country: u.country,
            language: None,
        }
    }
}

const MAX_TEXT: usize = 128;
/// Every field `from_user_info` reads, in both spellings; an object with none
/// of them carries no profile (e.g. a body that forgot its `userInfo`).
const KNOWN_FIELDS: &[&str] = &[
    "nickName",
    "nickname",
    "avatarUrl",
    "headimgurl",
    "gender",
    "sex",
    "province",
    "city",
    "country",
    "language",
    "openid",
    "openId",
];

/// `userInfo` as the seed sends it (a JSON string in the query), or a JSON body:
/// either `{"userInfo": {…}}` or the profile object itself.
pub fn user_info_of(query: Option<&str>, body: &[u8], max_body: usize) -> Result<Value, AuthError> {
    if !body.iter().all(u8::is_ascii_whitespace) {
        return user_info_of_body(body, max_body);
    }
    let raw = query.ok_or_else(required)?;
    serde_json::from_str(raw).map_err(|e| AuthError::invalid(format!("userInfo is not JSON: {e}")))
}

fn user_info_of_body(body: &[u8], max_body: usize) -> Result<Value, AuthError> {
    if body.len() > max_body {
        return Err(AuthError::invalid("request body is too large"));
    }
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| AuthError::invalid(format!("invalid JSON body: {e}")))?;
    Ok(match value {
        Value::Object(mut obj) if obj.contains_key("userInfo") => match obj.remove("userInfo") {
            // The seed's style, carried into a body: a JSON string.
            Some(Value::String(s)) => serde_json::from_str(&s)
                .map_err(|e| AuthError::invalid(format!("userInfo is not JSON: {e}")))?,
            Some(Value::Null) | None => return Err(required()),
            Some(v) => v,
        },
        other => other,
    })
}

fn required() -> AuthError {
    AuthError::invalid("userInfo is required")
}

const MAX_URL: usize = 1024;

/// A mini program's `userInfo` and the openid it claims, if any. Accepts WeChat's
/// spelling (`nickName`, `avatarUrl`, `gender`) and the official account's
/// (`nickname`, `headimgurl`, `sex`).
pub fn from_user_info(value: &Value) -> Result<(Profile, Option<String>), AuthError> {
    let obj = value
        .as_object()
        .ok_or_else(|| AuthError::invalid("userInfo must be a JSON object"))?;
    if !KNOWN_FIELDS.iter().any(|f| obj.contains_key(*f)) {
        return Err(AuthError::invalid(
            "userInfo is required: no profile field (nickName, avatarUrl, gender, …) was sent",
        ));
    }
    // Checked in this order, so that the first bad field named stays the same.
    let headimgurl = avatar(obj)?;
    let sex = gender(obj)?;
    let profile = Profile {
        unionid: None,
        nickname: text(obj, &["nickName", "nickname"], MAX_TEXT)?,
        headimgurl,
        sex,
        province: text(obj, &["province"], MAX_TEXT)?,
        city: text(obj, &["city"], MAX_TEXT)?,
        country: text(obj, &["country"], MAX_TEXT)?,
        language: text(obj, &["language"], 16)?,
    };
    let openid = text(obj, &["openid", "openId"], MAX_TEXT)?;
    Ok((profile, openid))
}

type Object = serde_json::Map<String, Value>;

/// The first of `names` that is set: a string of at most `max` characters.
fn text(obj: &Object, names: &[&str], max: usize) -> Result<Option<String>, AuthError> {
    for name in names {
        match obj.get(*name) {
            None | Some(Value::Null) => continue,
            Some(Value::String(s)) if s.chars().count() <= max => return Ok(Some(s.clone())),
            Some(Value::String(_)) => {
                return Err(AuthError::invalid(format!("userInfo.{name} is too long")));
            }
            Some(_) => {
                return Err(AuthError::invalid(format!(
                    "userInfo.{name} must be a string"
                )));
            }
        }
    }
    Ok(None)
}

/// `avatarUrl` (or `headimgurl`): empty, or an http(s) URL, never `javascript:`.
fn avatar(obj: &Object) -> Result<Option<String>, AuthError> {
    let headimgurl = text(obj, &["avatarUrl", "headimgurl"], MAX_URL)?;
    if let Some(u) = &headimgurl {
        let web = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !u.is_empty() && !web {
            return Err(AuthError::invalid(
                "userInfo.avatarUrl must be an http(s) URL",
            ));
        }
    }
    Ok(headimgurl)
}

/// `gender` (or `sex`): 0 unknown, 1 male, 2 female.
fn gender(obj: &Object) -> Result<Option<i32>, AuthError> {
    match obj.get("gender").or_else(|| obj.get("sex")) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => match v.as_i64() {
            Some(n @ 0..=2) => Ok(Some(n as i32)),
            _ => Err(AuthError::invalid("userInfo.gender must be 0, 1 or 2")),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn wechat_user_info_maps() {
        let (p, openid) = from_user_info(&json!({
            "nickName": "张三", "avatarUrl": "https://thirdwx.qlogo.cn/x/132",
            "gender": 1, "province": "广东", "city": "深圳", "country": "中国",
            "language": "zh_CN"
        }))
        .unwrap();
        assert_eq!(openid, None);
        assert_eq!(
            p,
            Profile {
                unionid: None,
                nickname: Some("张三".into()),
                headimgurl: Some("https://thirdwx.qlogo.cn/x/132".into()),
                sex: Some(1),
                province: Some("广东".into()),
                city: Some("深圳".into()),
                country: Some("中国".into()),
                language: Some("zh_CN".into()),
            }
        );
        let (_, openid) = from_user_info(&json!({"openId": "oX"})).unwrap();
        assert_eq!(openid.as_deref(), Some("oX"));
    }

    #[test]
    fn user_info_from_query_or_body() {
        let want = json!({"nickName": "张三"});
        assert_eq!(
            user_info_of(Some(r#"{"nickName":"张三"}"#), b"", 1024).unwrap(),
            want
        );
        assert_eq!(
            user_info_of(None, r#"{"userInfo":{"nickName":"张三"}}"#.as_bytes(), 1024).unwrap(),
            want
        );
        assert_eq!(
            user_info_of(
                None,
                r#"{"userInfo":"{\"nickName\":\"张三\"}"}"#.as_bytes(),
                1024
            )
            .unwrap(),
            want
        );
        assert_eq!(
            user_info_of(None, r#"{"nickName":"张三"}"#.as_bytes(), 1024).unwrap(),
            want
        );
        let err = |q, b: &[u8]| user_info_of(q, b, 16).unwrap_err().to_string();
        assert_eq!(err(None, b""), "userInfo is required");
        assert!(err(Some("{nope"), b"").starts_with("userInfo is not JSON"));
        assert!(err(None, b"{nope").starts_with("invalid JSON body"));
        assert_eq!(err(None, &[b' '; 0][..]), "userInfo is required");
        assert_eq!(
            err(None, br#"{"nickName":"a long enough body"}"#),
            "request body is too large"
        );
        let null = user_info_of(None, br#"{"userInfo":null}"#, 1024).unwrap_err();
        assert_eq!(null.to_string(), "userInfo is required");
    }

    #[test]
    fn an_object_without_profile_fields_is_no_user_info() {
        for empty in [
            json!({}),
            json!({"foo": 1}),
            json!({"userinfo": {"nickName": "x"}}),
        ] {
            let msg = from_user_info(&empty).unwrap_err().to_string();
            assert!(msg.starts_with("userInfo is required"), "{empty}: {msg}");
        }
    }

    #[test]
    fn bad_user_info_names_the_field() {
        let err = |v: Value| from_user_info(&v).unwrap_err().to_string();
        assert_eq!(err(json!([1])), "userInfo must be a JSON object");
        assert_eq!(
            err(json!({"nickName": 5})),
            "userInfo.nickName must be a string"
        );
        assert_eq!(
            err(json!({"gender": 7})),
            "userInfo.gender must be 0, 1 or 2"
        );
        assert_eq!(
            err(json!({"avatarUrl": "javascript:alert(1)"})),
            "userInfo.avatarUrl must be an http(s) URL"
        );
        assert_eq!(
            err(json!({"city": "x".repeat(200)})),
            "userInfo.city is too long"
        );
    }
}
