//! The two AWS calls the API function makes itself, each one signed POST
//! (SigV4 from the function's own credentials, with `aws-sigv4`; sent with
//! reqwest, already linked by object_store), so that the function links no
//! AWS SDK: Lambda's Invoke (the compactor and exporter jobs) and Secrets
//! Manager's GetSecretValue (the `--auth` users, read when an instance
//! starts).

use std::time::SystemTime;

/// A POST to an AWS service, signed for `service` in `region`; the
/// response's status and body.
async fn signed_post(
    service: &str,
    region: &str,
    url: &str,
    headers: &[(&str, &str)],
    payload: String,
) -> Result<(u16, String), String> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    use aws_sigv4::sign::v4;
    let env = |k: &str| std::env::var(k).ok();
    let creds = aws_credential_types::Credentials::new(
        env("AWS_ACCESS_KEY_ID").unwrap_or_default(),
        env("AWS_SECRET_ACCESS_KEY").unwrap_or_default(),
        env("AWS_SESSION_TOKEN"),
        None,
        "lambda-environment",
    );
    let identity = creds.into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| e.to_string())?
        .into();
    let mut request = http::Request::post(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let mut request = request.body(()).map_err(|e| e.to_string())?;
    let signed_headers = request
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str(), v.to_str().ok()?)));
    let signable = SignableRequest::new(
        "POST",
        url,
        signed_headers,
        SignableBody::Bytes(payload.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let (instructions, _) = sign(signable, &params)
        .map_err(|e| e.to_string())?
        .into_parts();
    instructions.apply_to_request_http1x(&mut request);
    let mut builder = reqwest::Client::new().post(url).body(payload);
    for (k, v) in request.headers() {
        builder = builder.header(k.as_str(), v.as_bytes());
    }
    let response = builder.send().await.map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let body = response.text().await.map_err(|e| e.to_string())?;
    Ok((status, body))
}

/// Invokes a Lambda function asynchronously (`InvocationType: Event`). The
/// endpoint is `STRATA_LAMBDA_ENDPOINT` when set (a local emulator), else
/// the regional one.
pub async fn invoke_async(function: &str, region: &str, payload: String) -> Result<(), String> {
    let endpoint = std::env::var("STRATA_LAMBDA_ENDPOINT")
        .unwrap_or_else(|_| format!("https://lambda.{region}.amazonaws.com"));
    let url = format!(
        "{}/2015-03-31/functions/{function}/invocations",
        endpoint.trim_end_matches('/')
    );
    let headers = [
        ("x-amz-invocation-type", "Event"),
        ("content-type", "application/json"),
    ];
    let (status, _) = signed_post("lambda", region, &url, &headers, payload).await?;
    if !(200..300).contains(&status) {
        return Err(format!("invoke {function}: HTTP {status}"));
    }
    Ok(())
}

/// What `STRATA_AUTH` names when it names a Secrets Manager secret:
/// `secretsmanager:<name or ARN>`, or a secret's ARN.
pub fn secret_id(auth: &str) -> Option<&str> {
    let auth = auth.trim();
    let is_arn = auth.starts_with("arn:") && auth.split(':').nth(2) == Some("secretsmanager");
    auth.strip_prefix("secretsmanager:")
        .or(is_arn.then_some(auth))
}

/// The region in a secret's ARN (`arn:aws:secretsmanager:REGION:…`): a
/// secret is read from its own region's endpoint.
pub fn secret_region(id: &str) -> Option<&str> {
    id.starts_with("arn:")
        .then(|| id.split(':').nth(3))
        .flatten()
        .filter(|r| !r.is_empty())
}

/// Secrets Manager's endpoint: `AWS_ENDPOINT_URL_SECRETS_MANAGER`, else
/// `AWS_ENDPOINT_URL` (as the AWS SDKs choose), else the regional one.
pub fn secrets_endpoint(region: &str) -> String {
    std::env::var("AWS_ENDPOINT_URL_SECRETS_MANAGER")
        .or_else(|_| std::env::var("AWS_ENDPOINT_URL"))
        .unwrap_or_else(|_| format!("https://secretsmanager.{region}.amazonaws.com"))
}

/// Calls one Secrets Manager operation (JSON 1.1) and returns its answer.
pub async fn secrets_manager(
    endpoint: &str,
    region: &str,
    operation: &str,
    request: serde_json::Value,
) -> Result<serde_json::Value, String> {
    let target = format!("secretsmanager.{operation}");
    let headers = [
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target.as_str()),
    ];
    let url = format!("{}/", endpoint.trim_end_matches('/'));
    let (status, body) = signed_post(
        "secretsmanager",
        region,
        &url,
        &headers,
        request.to_string(),
    )
    .await?;
    let answer: serde_json::Value =
        serde_json::from_str(&body).map_err(|_| format!("{operation}: HTTP {status}: not JSON"))?;
    if !(200..300).contains(&status) {
        let kind = answer["__type"].as_str().unwrap_or("error");
        let message = answer["message"]
            .as_str()
            .or(answer["Message"].as_str())
            .unwrap_or("");
        return Err(format!("{operation}: {kind}: {message}"));
    }
    Ok(answer)
}

/// A secret's current string value (GetSecretValue).
pub async fn get_secret(endpoint: &str, region: &str, id: &str) -> Result<String, String> {
    let answer = secrets_manager(
        endpoint,
        region,
        "GetSecretValue",
        serde_json::json!({ "SecretId": id }),
    )
    .await?;
    answer["SecretString"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("secret {id} has no SecretString"))
}

#[cfg(test)]
mod tests {
    use super::secret_id;

    #[test]
    fn secrets_are_named_by_prefix_or_arn() {
        assert_eq!(
            secret_id("secretsmanager:strata/users"),
            Some("strata/users")
        );
        let arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:users-AbCdEf";
        assert_eq!(secret_id(arn), Some(arn));
        let cn = "arn:aws-cn:secretsmanager:cn-north-1:123456789012:secret:u-AbCdEf";
        assert_eq!(secret_id(cn), Some(cn));
        assert_eq!(secret_id("/etc/strata/users.json"), None);
        assert_eq!(secret_id(r#"{"users": []}"#), None);
        assert_eq!(secret_id("arn:aws:s3:::bucket"), None);
        assert_eq!(super::secret_region(arn), Some("us-east-1"));
        assert_eq!(super::secret_region("strata/users"), None);
    }
}
