"""Time to live through boto3: `strata serve` deletes expired items in the
background (--maintenance-secs), as the service's own deletes in the stream;
DescribeTimeToLive's statuses follow the sweep; DynamoDB's one change an hour
when --ttl-change-interval-secs asks for it."""
import os
import tempfile
import time
import uuid

import pytest

from conftest import STORES, make_client, start_server
from helpers import N, S, error_of, until
from test_streams import read_all

SERVICE = {"Type": "Service", "PrincipalId": "dynamodb.amazonaws.com"}


@pytest.fixture(scope="module", params=STORES)
def server(request):
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as data:
        store = ["--data", data]
        if request.param == "localstack":
            env.update(AWS_ENDPOINT_URL=os.environ["STRATA_E2E_S3_ENDPOINT"], AWS_ACCESS_KEY_ID="test",
                       AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
            store = ["--store", f"s3://{os.environ['STRATA_E2E_BUCKET']}/ttl-{uuid.uuid4().hex}"]
        proc, url = start_server([*store, "--maintenance-secs", "1", "--ttl-change-interval-secs", "3600"], env)
        try:
            yield make_client(url), make_client(url, "dynamodbstreams")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_ttl_deletes_exactly_the_expired_items(server):
    ddb, streams = server
    t = "ttl_" + str(time.time_ns())
    ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                     StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    spec = {"Enabled": True, "AttributeName": "expires"}
    assert ddb.update_time_to_live(TableName=t, TimeToLiveSpecification=spec)["TimeToLiveSpecification"] == spec
    status = ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]
    assert status["TimeToLiveStatus"] in ("ENABLING", "ENABLED") and status["AttributeName"] == "expires"
    assert until(lambda: ddb.describe_time_to_live(TableName=t)["TimeToLiveDescription"]["TimeToLiveStatus"]
                 == "ENABLED", timeout=30)
    # DynamoDB's one change an hour (asked for by the server's flag).
    code, msg, _ = error_of(ddb.update_time_to_live, TableName=t,
                            TimeToLiveSpecification={"Enabled": False, "AttributeName": "expires"})
    assert code == "ValidationException" and "multiple times" in msg

    now = int(time.time())
    expired = [f"gone{i}" for i in range(20)]
    kept = {
        "later": N(now + 3600),
        "text": S(str(now - 60)),
        "ancient": N(1),  # more than five years ago: DynamoDB never deletes it
        "negative": N(-5),
    }
    for k in expired:
        ddb.put_item(TableName=t, Item={"pk": S(k), "expires": N(now - 5)})
    for k, v in kept.items():
        ddb.put_item(TableName=t, Item={"pk": S(k), "expires": v})
    ddb.put_item(TableName=t, Item={"pk": S("none")})
    # Given a later expiry in the same second it would have expired in.
    ddb.put_item(TableName=t, Item={"pk": S("renewed"), "expires": N(now - 5)})
    ddb.update_item(TableName=t, Key={"pk": S("renewed")}, UpdateExpression="SET expires = :e",
                    ExpressionAttributeValues={":e": N(now + 3600)})
    ddb.delete_item(TableName=t, Key={"pk": S("none")})
    # Until deleted they are returned, as in DynamoDB; then they are gone.
    remaining = lambda: {i["pk"]["S"] for i in ddb.scan(TableName=t, ConsistentRead=True)["Items"]}
    left = until(lambda: (r := remaining()) == set(kept) | {"renewed"} and r, timeout=30)
    assert left == set(kept) | {"renewed"}, remaining()

    arn = ddb.describe_table(TableName=t)["Table"]["LatestStreamArn"]
    removes = [r for r in read_all(streams, arn) if r["eventName"] == "REMOVE"]
    by_service = sorted(r["dynamodb"]["Keys"]["pk"]["S"] for r in removes if r.get("userIdentity") == SERVICE)
    assert by_service == sorted(expired)
    by_client = [r for r in removes if "userIdentity" not in r]
    assert [r["dynamodb"]["Keys"]["pk"]["S"] for r in by_client] == ["none"]
    assert all(r["dynamodb"]["OldImage"]["expires"] == N(now - 5) for r in removes if "userIdentity" in r)
