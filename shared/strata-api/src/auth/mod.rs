//! Authentication and authorization (`strata serve --auth FILE`,
//! `STRATA_AUTH` for the Lambda functions).
//!
//! The file names users, each with an access key, a secret and an IAM-style
//! policy:
//!
//! ```json
//! {"users": [{"name": "alice", "access_key_id": "AKIA…", "secret_access_key": "…",
//!             "policy": {"Version": "2012-10-17", "Statement": [...]}}]}
//! ```
//!
//! Every request must then be SigV4-signed by one of them ([`sigv4`]) and
//! allowed by its policy ([`policy`], [`authz`]). Without a file every
//! request is served, as DynamoDB Local serves them.

mod attributes;
pub(crate) mod authz;
pub mod policy;
pub mod sigv4;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::Value as Json;

use crate::error::{ApiError, ErrorCode};
pub use policy::Policy;

/// One user of the users file.
pub struct User {
    pub name: String,
    pub access_key_id: String,
    secret_access_key: String,
    pub policy: Policy,
    /// The signing key of the last (day, region) seen: derived once a day,
    /// not on every request.
    signing: std::sync::Mutex<Option<(String, String, Vec<u8>)>>,
}

impl User {
    fn signing_key(&self, at: SystemTime, day: &str, region: &str) -> Vec<u8> {
        let mut cached = self.signing.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((d, r, k)) = cached.as_ref() {
            if d == day && r == region {
                return k.clone();
            }
        }
        let k = sigv4::signing_key(&self.secret_access_key, at, region, sigv4::SERVICE);
        *cached = Some((day.to_string(), region.to_string(), k.clone()));
        k
    }
}

impl std::fmt::Debug for User {
    /// Never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("name", &self.name)
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

/// The users file, by access key.
#[derive(Debug, Default)]
pub struct Users {
    by_key: HashMap<String, Arc<User>>,
}

impl Users {
    /// Parses the users file's JSON.
    pub fn parse(text: &str) -> Result<Users, String> {
        let doc: Json = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let list = doc
            .get("users")
            .and_then(Json::as_array)
            .ok_or("the file needs a \"users\" list")?;
        let mut by_key = HashMap::new();
        for (i, u) in list.iter().enumerate() {
            let field = |name: &str| {
                u.get(name)
                    .and_then(Json::as_str)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .ok_or_else(|| format!("users[{i}] needs a non-empty \"{name}\""))
            };
            let name = field("name")?;
            let policy = Policy::parse(
                u.get("policy")
                    .ok_or_else(|| format!("user {name} needs a \"policy\""))?,
            )
            .map_err(|e| format!("user {name}'s policy: {e}"))?;
            let user = User {
                access_key_id: field("access_key_id")?,
                secret_access_key: field("secret_access_key")?,
                policy,
                name,
                signing: Default::default(),
            };
            if by_key.contains_key(&user.access_key_id) {
                return Err(format!("access key {} is given twice", user.access_key_id));
            }
            by_key.insert(user.access_key_id.clone(), Arc::new(user));
        }
        Ok(Users { by_key })
    }

    /// Reads the users file at `path`; `STRATA_AUTH`'s value may also be
    /// the JSON itself (a Lambda environment carries it inline).
    pub fn load(path_or_json: &str) -> Result<Users, String> {
        if path_or_json.trim_start().starts_with('{') {
            return Users::parse(path_or_json);
        }
        let text = std::fs::read_to_string(path_or_json)
            .map_err(|e| format!("cannot read {path_or_json}: {e}"))?;
        Users::parse(&text).map_err(|e| format!("{path_or_json}: {e}"))
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }

    /// The signed request's user, or the error DynamoDB answers. `region`
    /// is this server's: a signature for another is refused, as AWS does.
    pub fn authenticate(
        &self,
        req: &sigv4::Signed<'_>,
        region: &str,
        now: SystemTime,
    ) -> Result<(Arc<User>, String), ApiError> {
        let claimed = sigv4::claimed(req)?;
        let user = self.by_key.get(&claimed.access_key).ok_or_else(|| {
            ApiError::new(
                ErrorCode::UnrecognizedClient,
                "The security token included in the request is invalid.",
            )
        })?;
        sigv4::verify(
            req,
            &claimed,
            |at| user.signing_key(at, &claimed.date, &claimed.region),
            region,
            now,
        )?;
        Ok((Arc::clone(user), claimed.region))
    }
}
