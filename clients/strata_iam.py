"""Sign DynamoDB requests for an IAM-protected Strata endpoint.

API Gateway's IAM authorization checks SigV4 signatures made for the
`execute-api` service, while DynamoDB clients sign for `dynamodb`. This
module makes boto3 and the aws CLI (v1) sign DynamoDB calls for
`execute-api`; everything else about the clients stays the same.

boto3:
    import strata_iam
    ddb = strata_iam.client("https://<api-id>.execute-api.<region>.amazonaws.com")
    # or, on a client you already have:  strata_iam.sign_for_api_gateway(ddb)

aws CLI (v1): put this file on PYTHONPATH and add to ~/.aws/config
    [plugins]
    strata_iam = strata_iam
"""

SIGNING_NAME = "execute-api"


def _use_execute_api(request, **kwargs):
    request.context.setdefault("signing", {})["signing_name"] = SIGNING_NAME


def sign_for_api_gateway(client):
    """Makes an existing boto3 DynamoDB client sign for API Gateway."""
    client.meta.events.register("before-sign.dynamodb.*", _use_execute_api)
    return client


def client(endpoint_url, **kwargs):
    """A boto3 DynamoDB client for a Strata endpoint behind IAM authorization."""
    import boto3

    return sign_for_api_gateway(boto3.client("dynamodb", endpoint_url=endpoint_url, **kwargs))


def awscli_initialize(cli):
    """aws CLI v1 plugin entry point."""
    cli.register("before-sign.dynamodb", _use_execute_api)
