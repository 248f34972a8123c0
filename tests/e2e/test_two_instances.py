"""Two `strata serve` instances on one store, as two warm Lambda instances:
each has its own cache, and both stay coherent with the log."""
import os
import tempfile
import time
import uuid

import pytest

from conftest import make_client, start_server

STALENESS_MS = 300


def serve(store_args, env):
    return start_server(["--staleness-ms", str(STALENESS_MS), *store_args], env)


def stores():
    out = ["file"]
    if os.environ.get("STRATA_E2E_S3_ENDPOINT"):
        out.append("localstack")
    return out


@pytest.mark.parametrize("store", stores())
def test_writes_through_one_instance_are_seen_by_the_other(store):
    env = dict(os.environ)
    tmp = tempfile.TemporaryDirectory()
    if store == "file":
        args = ["--data", tmp.name]
    else:
        env.update(AWS_ENDPOINT_URL=os.environ["STRATA_E2E_S3_ENDPOINT"], AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
        args = ["--store", f"s3://{os.environ['STRATA_E2E_BUCKET']}/two-{uuid.uuid4().hex}"]
    (pa, ua), (pb, ub) = serve(args, env), serve(args, env)
    try:
        a, b = make_client(ua), make_client(ub)
        a.create_table(TableName="shared", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                       AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
        b.get_waiter("table_exists").wait(TableName="shared", WaiterConfig={"Delay": 1, "MaxAttempts": 10})
        lags = []
        for i in range(5):
            key = {"k": {"S": f"item{i}"}}
            # B warms its cache with the miss, then A writes.
            assert "Item" not in b.get_item(TableName="shared", Key=key)
            a.put_item(TableName="shared", Item={**key, "v": {"N": str(i)}})
            assert b.get_item(TableName="shared", Key=key, ConsistentRead=True)["Item"]["v"] == {"N": str(i)}
            key2 = {"k": {"S": f"later{i}"}}
            assert "Item" not in b.get_item(TableName="shared", Key=key2)
            a.put_item(TableName="shared", Item={**key2, "v": {"N": str(i)}})
            start = time.monotonic()
            while "Item" not in b.get_item(TableName="shared", Key=key2):
                assert time.monotonic() - start < 3 * STALENESS_MS / 1000, "eventual read never caught up"
                time.sleep(0.01)
            lags.append(time.monotonic() - start)
        assert max(lags) <= (STALENESS_MS + 200) / 1000, lags
        assert b.scan(TableName="shared", ConsistentRead=True)["Count"] == 10
    finally:
        for p in (pa, pb):
            p.terminate()
            p.wait(timeout=10)
        tmp.cleanup()
