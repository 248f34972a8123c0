"""DescribeTable's ItemCount and TableSizeBytes (and each index's ItemCount
and IndexSizeBytes): an estimate from what compaction has folded, brought up
to date by `strata serve`'s background pass (--maintenance-secs, default 60)."""
import os
import tempfile
import uuid

import pytest

from conftest import STORES, make_client, start_server
from helpers import until


@pytest.mark.parametrize("store", STORES)
def test_item_count_and_sizes_follow_the_table(store):
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as data:
        where = ["--data", data]
        if store == "localstack":
            env.update(AWS_ENDPOINT_URL=os.environ["STRATA_E2E_S3_ENDPOINT"], AWS_ACCESS_KEY_ID="test",
                       AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
            where = ["--store", f"s3://{os.environ['STRATA_E2E_BUCKET']}/stats-{uuid.uuid4().hex}"]
        proc, url = start_server([*where, "--maintenance-secs", "1"], env)
        try:
            ddb = make_client(url)
            ddb.create_table(
                TableName="counted", BillingMode="PAY_PER_REQUEST",
                KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                                      {"AttributeName": "g", "AttributeType": "S"}],
                GlobalSecondaryIndexes=[{"IndexName": "byG", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                         "Projection": {"ProjectionType": "KEYS_ONLY"}}])
            for i in range(40):
                item = {"k": {"S": f"k{i:02}"}, "v": {"S": "x" * 100}}
                if i % 2 == 0:
                    item["g"] = {"S": "even"}
                ddb.put_item(TableName="counted", Item=item)

            def counts():
                t = ddb.describe_table(TableName="counted")["Table"]
                ix = t["GlobalSecondaryIndexes"][0]
                return (t["ItemCount"], ix["ItemCount"]) == (40, 20) and t

            t = until(counts, timeout=30)
            assert t, ddb.describe_table(TableName="counted")["Table"]
            # DynamoDB's item size: attribute names plus values (k: 1 + 3, v: 1 + 100, g: 1 + 4).
            assert t["TableSizeBytes"] == 40 * (4 + 101) + 20 * 5
            assert t["GlobalSecondaryIndexes"][0]["IndexSizeBytes"] > 0
            for i in range(10):
                ddb.delete_item(TableName="counted", Key={"k": {"S": f"k{i:02}"}})
            assert until(lambda: ddb.describe_table(TableName="counted")["Table"]["ItemCount"] == 30, timeout=30), \
                ddb.describe_table(TableName="counted")["Table"]["ItemCount"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
