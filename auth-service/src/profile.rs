//! The profiles WeChat hands out, mapped onto [`Profile`]: the official
//! account's `/sns/userinfo` reply, and the mini program's `userInfo`
//! (`wx.getUserProfile`), which the client sends and so is checked field by field.

use serde::Deserialize;
use serde_json::Value;

use crate::error::AuthError;
use crate::users::Profile;

/// `/sns/userinfo` (the fields we keep).
#[derive(Debug, Deserialize)]
pub struct SnsUserInfo {
    pub openid: String,
    pub nickname: Option<String>,
    pub sex: Option<i32>,
    pub province: Option<String>,
    pub city: Option<String>,
    pub country: Option<String>,
    pub headimgurl: Option<String>,
    pub unionid: Option<String>,
}

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
const MAX_URL: usize = 1024;

/// A mini program's `userInfo` and the openid it claims, if any. Accepts WeChat's
/// spelling (`nickName`, `avatarUrl`, `gender`) and the official account's
/// (`nickname`, `headimgurl`, `sex`).
pub fn from_user_info(value: &Value) -> Result<(Profile, Option<String>), AuthError> {
    let obj = value
        .as_object()
        .ok_or_else(|| AuthError::invalid("userInfo must be a JSON object"))?;
    let text = |names: &[&str], max: usize| -> Result<Option<String>, AuthError> {
        for name in names {
            match obj.get(*name) {
                None | Some(Value::Null) => continue,
                Some(Value::String(s)) if s.chars().count() <= max => {
                    return Ok(Some(s.clone()));
                }
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
    };
    let headimgurl = text(&["avatarUrl", "headimgurl"], MAX_URL)?;
    if let Some(u) = &headimgurl {
        let web = url::Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
        if !u.is_empty() && !web {
            return Err(AuthError::invalid(
                "userInfo.avatarUrl must be an http(s) URL",
            ));
        }
    }
    let sex = match obj.get("gender").or_else(|| obj.get("sex")) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(n @ 0..=2) => Some(n as i32),
            _ => return Err(AuthError::invalid("userInfo.gender must be 0, 1 or 2")),
        },
    };
    let profile = Profile {
        unionid: None,
        nickname: text(&["nickName", "nickname"], MAX_TEXT)?,
        headimgurl,
        sex,
        province: text(&["province"], MAX_TEXT)?,
        city: text(&["city"], MAX_TEXT)?,
        country: text(&["country"], MAX_TEXT)?,
        language: text(&["language"], 16)?,
    };
    let openid = text(&["openid", "openId"], MAX_TEXT)?;
    Ok((profile, openid))
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
