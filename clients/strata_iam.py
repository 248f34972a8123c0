"""Sign DynamoDB requests for an IAM-protected Strata endpoint.

DynamoDB clients sign for the `dynamodb` service. In AWS, Strata's API
function sits behind API Gateway's IAM authorization, which checks
signatures made for `execute-api`, or behind a Lambda function URL with
IAM auth, which checks signatures made for `lambda`. This module makes
boto3 and the aws CLI (v1) sign DynamoDB calls for whichever the endpoint
is (function URLs are `https://<id>.lambda-url.<region>.on.aws/`);
everything else about the clients stays the same.

boto3:
    import strata_iam
    ddb = strata_iam.client("https://<api-id>.execute-api.<region>.amazonaws.com")
    # or, on a client you already have:  strata_iam.sign_for_strata(ddb)

aws CLI (v1): put this file on PYTHONPATH and add to ~/.aws/config
    [plugins]
    strata_iam = strata_iam
"""

from urllib.parse import urlsplit

API_GATEWAY = "execute-api"
FUNCTION_URL = "lambda"


def signing_name(url):
    """The service a Strata endpoint's IAM authorization checks signatures for."""
    host = urlsplit(url).hostname or ""
    return FUNCTION_URL if ".lambda-url." in host else API_GATEWAY


def _sign_for_endpoint(request, **kwargs):
    request.context.setdefault("signing", {})["signing_name"] = signing_name(request.url)


def sign_for_strata(client):
    """Makes an existing boto3 DynamoDB client sign for its Strata endpoint."""
    client.meta.events.register("before-sign.dynamodb.*", _sign_for_endpoint)
    return client


# The name this module had when API Gateway was the only front end.
sign_for_api_gateway = sign_for_strata


def client(endpoint_url, **kwargs):
    """A boto3 DynamoDB client for a Strata endpoint behind IAM authorization."""
    import boto3

    return sign_for_strata(boto3.client("dynamodb", endpoint_url=endpoint_url, **kwargs))


def awscli_initialize(cli):
    """aws CLI v1 plugin entry point."""
    cli.register("before-sign.dynamodb", _sign_for_endpoint)
