"""Global tables through boto3: two `strata serve` processes, one per region,
each on its own store (LocalStack and moto when the test command runs them,
else two local directories), replicating to each other."""
import os
import tempfile
import threading
import time
import uuid

import botocore.exceptions
import pytest

from conftest import make_client, start_server
from helpers import until


def region_stores(tmp):
    ls = os.environ.get("STRATA_E2E_S3_ENDPOINT")
    moto = os.environ.get("STRATA_E2E_MOTO_ENDPOINT")
    bucket = os.environ.get("STRATA_E2E_BUCKET")
    run = uuid.uuid4().hex[:10]
    if ls and moto and bucket:
        return (f"s3://{bucket}/gt-{run}-a?endpoint={ls}&region=us-east-1",
                f"s3://{bucket}/gt-{run}-b?endpoint={moto}&region=us-east-1")
    return f"file://{tmp}/a", f"file://{tmp}/b"


@pytest.fixture(scope="module")
def regions():
    tmp = tempfile.TemporaryDirectory()
    a_url, b_url = region_stores(tmp.name)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    log = open(os.path.join(tmp.name, "servers.log"), "w")
    # --maintenance-secs 1: the expiry sweep (time to live) every second.
    pa, ua = start_server(["--region", "us-east-1", "--store", a_url, "--replica", f"eu-west-1={b_url}",
                           "--replicate-interval-ms", "100", "--maintenance-secs", "1"], env, output=log)
    pb, ub = start_server(["--region", "eu-west-1", "--store", b_url, "--replica", f"us-east-1={a_url}",
                           "--replicate-interval-ms", "100", "--maintenance-secs", "1"], env, output=log)
    yield make_client(ua), make_client(ub)
    for p in (pa, pb):
        p.terminate()
        p.wait(timeout=10)
    tmp.cleanup()


def scan(c, t):
    items = c.scan(TableName=t, ConsistentRead=True)["Items"]
    return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))


def wait_converged(a, b, t, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        x, y = scan(a, t), scan(b, t)
        if x == y:
            return x
        assert time.monotonic() < deadline, f"regions did not converge: {len(x)} vs {len(y)} items"
        time.sleep(0.2)


def create_global(a, b):
    t = "g_" + uuid.uuid4().hex[:10]
    a.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}])
    r = a.update_table(TableName=t, ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])
    assert r["TableDescription"]["Replicas"] == [{"RegionName": "eu-west-1", "ReplicaStatus": "ACTIVE"}]
    assert r["TableDescription"]["GlobalTableVersion"] == "2019.11.21"
    assert b.describe_table(TableName=t)["Table"]["Replicas"] == [{"RegionName": "us-east-1", "ReplicaStatus": "ACTIVE"}]
    return t


def test_writes_in_both_regions_converge(regions):
    a, b = regions
    t = create_global(a, b)
    # Data written before the replica existed is backfilled too.

    def writer(c, region):
        for i in range(30):
            key = {"pk": {"S": f"k{i % 6}"}, "sk": {"S": "x"}}
            kind = i % 5
            if kind == 0:
                c.put_item(TableName=t, Item={**key, "by": {"S": region}, "i": {"N": str(i)}})
            elif kind == 1:
                c.update_item(TableName=t, Key=key, UpdateExpression="ADD n :one",
                              ExpressionAttributeValues={":one": {"N": "1"}})
            elif kind == 2:
                c.update_item(TableName=t, Key=key, UpdateExpression="ADD tags :t",
                              ExpressionAttributeValues={":t": {"SS": [f"{region}-{i}"]}})
            elif kind == 3:
                c.delete_item(TableName=t, Key=key)
            else:
                c.put_item(TableName=t, Item={"pk": {"S": f"{region}-only-{i}"}, "sk": {"S": "y"}})

    threads = [threading.Thread(target=writer, args=(c, r)) for c, r in ((a, "a"), (b, "b"))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    items = wait_converged(a, b, t)
    assert any(i["pk"]["S"].startswith("a-only") for i in items)
    assert any(i["pk"]["S"].startswith("b-only") for i in items)
    # A delete in one region removes the item in the other.
    a.delete_item(TableName=t, Key={"pk": {"S": "b-only-4"}, "sk": {"S": "y"}})
    items = wait_converged(a, b, t)
    assert not any(i["pk"]["S"] == "b-only-4" for i in items)


def test_replica_added_later_gets_existing_items_and_can_be_removed(regions):
    a, b = regions
    t = "g_" + uuid.uuid4().hex[:10]
    a.create_table(TableName=t, BillingMode="PAY_PER_REQUEST",
                   KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"},
                                         {"AttributeName": "sk", "AttributeType": "S"}])
    for i in range(20):
        a.put_item(TableName=t, Item={"pk": {"S": f"early{i}"}, "sk": {"S": "s"}})
    a.update_table(TableName=t, ReplicaUpdates=[{"Create": {"RegionName": "eu-west-1"}}])
    assert len(wait_converged(a, b, t)) == 20
    with pytest.raises(botocore.exceptions.ClientError) as e:
        a.update_table(TableName=t, ReplicaUpdates=[{"Create": {"RegionName": "sa-east-1"}}])
    assert e.value.response["Error"]["Code"] == "ValidationException"
    assert "no store is configured" in e.value.response["Error"]["Message"]
    r = a.update_table(TableName=t, ReplicaUpdates=[{"Delete": {"RegionName": "eu-west-1"}}])
    assert "Replicas" not in r["TableDescription"]
    # The other region's server notices within its descriptor cache's second.
    deadline = time.monotonic() + 10
    while True:
        try:
            b.describe_table(TableName=t)
        except botocore.exceptions.ClientError as e:
            assert e.response["Error"]["Code"] == "ResourceNotFoundException"
            break
        assert time.monotonic() < deadline, "replica table still there"
        time.sleep(0.2)


def test_an_index_of_a_global_table_works_in_every_region(regions):
    a, b = regions
    t = create_global(a, b)
    r = a.update_table(TableName=t, AttributeDefinitions=[{"AttributeName": "c", "AttributeType": "S"}],
                       GlobalSecondaryIndexUpdates=[{"Create": {
                           "IndexName": "byC", "KeySchema": [{"AttributeName": "c", "KeyType": "HASH"}],
                           "Projection": {"ProjectionType": "ALL"}}}])
    assert r["TableDescription"]["GlobalSecondaryIndexes"][0]["IndexName"] == "byC"
    for i in range(10):
        (a if i % 2 else b).put_item(TableName=t, Item={"pk": {"S": f"k{i}"}, "sk": {"S": "s"}, "c": {"S": "blue"}})
    # Each region indexes what it holds, its own writes and the other's.
    for c in (a, b):
        deadline = time.monotonic() + 60
        while True:
            got = c.query(TableName=t, IndexName="byC", KeyConditionExpression="c = :c",
                          ExpressionAttributeValues={":c": {"S": "blue"}})["Count"]
            if got == 10:
                break
            assert time.monotonic() < deadline, f"{got} of 10 items in a region's index"
            time.sleep(0.2)
    assert [g["IndexName"] for g in b.describe_table(TableName=t)["Table"]["GlobalSecondaryIndexes"]] == ["byC"]
    a.update_table(TableName=t, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "byC"}}])
    # The other region's server notices within its descriptor cache's second.
    deadline = time.monotonic() + 10
    while "GlobalSecondaryIndexes" in b.describe_table(TableName=t)["Table"]:
        assert time.monotonic() < deadline, "the index is still listed in the other region"
        time.sleep(0.1)


def test_ttl_on_a_global_table_converges(regions):
    """The TTL setting is one for the global table (enabled in one region,
    the other takes it, as DynamoDB synchronizes it); each region expires its
    own copies, the deletes replicate like any other, and both regions end
    with exactly the unexpired items."""
    a, b = regions
    t = create_global(a, b)
    a.update_time_to_live(TableName=t, TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    assert until(lambda: b.describe_time_to_live(TableName=t)["TimeToLiveDescription"].get("AttributeName") == "exp",
                 timeout=30)
    now = int(time.time())
    for i in range(10):
        for c, region in ((a, "a"), (b, "b")):
            c.put_item(TableName=t, Item={"pk": {"S": f"{region}{i}"}, "sk": {"S": "gone"}, "exp": {"N": str(now - 5)}})
            c.put_item(TableName=t, Item={"pk": {"S": f"{region}{i}"}, "sk": {"S": "kept"}, "exp": {"N": str(now + 3600)}})
    deadline = time.monotonic() + 60
    while True:
        x, y = scan(a, t), scan(b, t)
        if x == y and {i["sk"]["S"] for i in x} == {"kept"} and len(x) == 20:
            break
        assert time.monotonic() < deadline, f"not converged: {len(x)} vs {len(y)} items"
        time.sleep(0.2)
