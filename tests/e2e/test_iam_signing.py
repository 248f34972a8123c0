"""clients/strata_iam.py makes boto3 and the aws CLI sign DynamoDB requests
for `execute-api`, as API Gateway's IAM authorization requires, or for
`lambda` when the endpoint is a function URL."""
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "clients"))
import strata_iam  # noqa: E402


def test_boto3_signs_for_execute_api(endpoint):
    ddb = strata_iam.client(endpoint, region_name="eu-west-1", aws_access_key_id="AKID", aws_secret_access_key="secret")
    seen = []
    ddb.meta.events.register("before-send.dynamodb.*", lambda request, **kw: seen.append(request.headers["Authorization"]))
    ddb.list_tables()
    auth = seen[0].decode() if isinstance(seen[0], bytes) else seen[0]
    assert "/eu-west-1/execute-api/aws4_request" in auth, auth


def test_function_urls_are_signed_for_lambda():
    assert strata_iam.signing_name("https://abc123.lambda-url.eu-west-1.on.aws/") == "lambda"
    assert strata_iam.signing_name("https://a1.execute-api.eu-west-1.amazonaws.com") == "execute-api"
    # A function URL's signing: boto3 pointed at one (no request reaches it).
    ddb = strata_iam.client("https://abc123.lambda-url.eu-west-1.on.aws", region_name="eu-west-1",
                            aws_access_key_id="AKID", aws_secret_access_key="secret")
    seen = []

    def capture(request, **kw):
        seen.append(request.headers["Authorization"])
        raise RuntimeError("stop before sending")

    ddb.meta.events.register("before-send.dynamodb.*", capture)
    with pytest.raises(RuntimeError):
        ddb.list_tables()
    auth = seen[0].decode() if isinstance(seen[0], bytes) else seen[0]
    assert "/eu-west-1/lambda/aws4_request" in auth, auth


def test_aws_cli_plugin_signs_for_execute_api(endpoint):
    aws = os.environ.get("STRATA_AWS_CLI")
    if not aws:
        pytest.skip("STRATA_AWS_CLI not set")
    with tempfile.NamedTemporaryFile("w", suffix=".cfg", delete=False) as cfg:
        cfg.write("[default]\nregion = eu-west-1\n\n[plugins]\nstrata_iam = strata_iam\n")
    env = dict(os.environ, AWS_CONFIG_FILE=cfg.name, PYTHONPATH=os.path.join(ROOT, "clients"),
               AWS_ACCESS_KEY_ID="AKID", AWS_SECRET_ACCESS_KEY="secret")
    out = subprocess.run([aws, "dynamodb", "list-tables", "--endpoint-url", endpoint, "--debug"], env=env,
                         capture_output=True, text=True, timeout=60)
    os.unlink(cfg.name)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "/eu-west-1/execute-api/aws4_request" in out.stderr
