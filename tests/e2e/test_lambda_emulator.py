"""The Lambda functions under `cargo lambda watch`, the local Lambda emulator
(LocalStack cannot run Lambda functions without Docker): boto3 drives the
strata-api function through its function URL, on an S3 store in LocalStack,
and the API function's compaction hook invokes strata-compactor through the
emulator's Invoke API. Skipped unless STRATA_CARGO_LAMBDA names cargo-lambda
and STRATA_E2E_S3_ENDPOINT names LocalStack (tests/run.sh sets both)."""
import gzip
import json
import os
import subprocess
import time
import urllib.request
import uuid
import zlib

import boto3
import pytest

from conftest import ROOT, free_port, make_client
from helpers import until


@pytest.fixture(scope="module")
def emulator():
    cargo_lambda = os.environ.get("STRATA_CARGO_LAMBDA")
    s3 = os.environ.get("STRATA_E2E_S3_ENDPOINT")
    if not cargo_lambda or not s3:
        pytest.skip("needs STRATA_CARGO_LAMBDA and STRATA_E2E_S3_ENDPOINT")
    port = free_port()
    prefix = f"lambda-{uuid.uuid4().hex}"
    env = dict(os.environ)
    env.update(
        STRATA_STORE=f"s3://{os.environ['STRATA_E2E_BUCKET']}/{prefix}",
        AWS_ENDPOINT_URL=s3, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1",
        STRATA_COMPACTOR_FUNCTION="strata-compactor", STRATA_LAMBDA_ENDPOINT=f"http://127.0.0.1:{port}",
        STRATA_COMPACT_AFTER_SEGMENTS="8", STRATA_PARTITIONS="1",
    )
    log = open(os.path.join(ROOT, ".tmp", f"cargo-lambda-watch-{port}.log"), "w")
    proc = subprocess.Popen([cargo_lambda, "lambda", "watch", "-A", "127.0.0.1", "-P", str(port)], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}/lambda-url/strata-api"
    # The first call builds the function (debug); give it time.
    deadline = time.time() + 600
    while True:
        try:
            with urllib.request.urlopen(url + "/", timeout=600) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if proc.poll() is not None or time.time() > deadline:
            raise RuntimeError(f"cargo lambda watch did not come up; see {log.name}")
        time.sleep(1)
    yield {"url": url, "port": port, "prefix": prefix, "s3": s3}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)


def test_api_function_serves_boto3_through_the_function_url(emulator):
    ddb = make_client(emulator["url"])
    ddb.create_table(TableName="Music", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "Artist", "KeyType": "HASH"}, {"AttributeName": "Song", "KeyType": "RANGE"}],
                     AttributeDefinitions=[{"AttributeName": "Artist", "AttributeType": "S"}, {"AttributeName": "Song", "AttributeType": "S"}])
    for i in range(12):
        ddb.put_item(TableName="Music", Item={"Artist": {"S": "A"}, "Song": {"S": f"s{i:02}"}, "Plays": {"N": str(i)}})
    got = ddb.get_item(TableName="Music", Key={"Artist": {"S": "A"}, "Song": {"S": "s03"}}, ConsistentRead=True)
    assert got["Item"]["Plays"] == {"N": "3"}
    r = ddb.query(TableName="Music", KeyConditionExpression="Artist = :a", ExpressionAttributeValues={":a": {"S": "A"}})
    assert r["Count"] == 12

    # 12 writes passed the threshold of 8 segments: the API function invoked
    # the compactor through the emulator, which published a manifest in S3.
    s3 = boto3.client("s3", endpoint_url=emulator["s3"], region_name="us-east-1", aws_access_key_id="test", aws_secret_access_key="test")
    deadline = time.time() + 300
    while True:
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=os.environ["STRATA_E2E_BUCKET"], Prefix=emulator["prefix"]).get("Contents", [])]
        if any("/manifest/" in k for k in keys):
            break
        assert time.time() < deadline, f"no manifest after the hook fired: {keys}"
        time.sleep(1)
    assert ddb.query(TableName="Music", KeyConditionExpression="Artist = :a", ExpressionAttributeValues={":a": {"S": "A"}},
                     ConsistentRead=True)["Count"] == 12


def test_compressed_bodies_through_the_function_url(emulator):
    """gzip both ways through lambda_http: a request body the function URL
    passes on base64-encoded, a response it must send back as binary."""
    body = json.dumps({"TableName": "Music", "Key": {"Artist": {"S": "A"}, "Song": {"S": "big"}},
                       "ConsistentRead": True}).encode()
    ddb = make_client(emulator["url"])
    ddb.put_item(TableName="Music", Item={"Artist": {"S": "A"}, "Song": {"S": "big"}, "v": {"S": "x" * 5000}})
    req = urllib.request.Request(emulator["url"] + "/", data=gzip.compress(body), method="POST", headers={
        "Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "DynamoDB_20120810.GetItem",
        "Content-Encoding": "gzip", "Accept-Encoding": "gzip"})
    with urllib.request.urlopen(req, timeout=60) as r:
        raw = r.read()
        assert r.headers["Content-Encoding"] == "gzip"
        assert int(r.headers["x-amz-crc32"]) == zlib.crc32(raw)
    assert json.loads(gzip.decompress(raw))["Item"]["v"]["S"] == "x" * 5000


def test_compactor_function_runs_a_scheduled_event(emulator):
    """The scheduled run compacts every table and expires items (time to
    live in AWS)."""
    ddb = make_client(emulator["url"])
    ddb.create_table(TableName="Expiring", BillingMode="PAY_PER_REQUEST",
                     KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}])
    ddb.update_time_to_live(TableName="Expiring", TimeToLiveSpecification={"Enabled": True, "AttributeName": "exp"})
    now = int(time.time())
    for i in range(3):
        ddb.put_item(TableName="Expiring", Item={"k": {"S": f"old{i}"}, "exp": {"N": str(now - 10)}})
    ddb.put_item(TableName="Expiring", Item={"k": {"S": "new"}, "exp": {"N": str(now + 3600)}})
    lam = boto3.client("lambda", endpoint_url=f"http://127.0.0.1:{emulator['port']}", region_name="us-east-1",
                       aws_access_key_id="test", aws_secret_access_key="test")
    deleted = 0
    for _ in range(3):  # the first run may only take the new setting up
        out = lam.invoke(FunctionName="strata-compactor", Payload=b'{"source": "aws.scheduler"}')
        assert out["StatusCode"] == 200 and "FunctionError" not in out, out
        body = json.loads(out["Payload"].read())
        assert {"Music", "Expiring"} <= {t["table"] for t in body["tables"]}, body
        deleted += sum(t["expired"]["deleted"] for t in body["tables"] if t["table"] == "Expiring")
        if deleted == 3:
            break
    assert deleted == 3, body
    left = ddb.scan(TableName="Expiring", ConsistentRead=True)["Items"]
    assert [i["k"]["S"] for i in left] == ["new"]
    # The API instance sees the compactor's mark once its cached descriptor
    # is checked again (within the catalog's staleness bound).
    assert until(lambda: ddb.describe_time_to_live(TableName="Expiring")["TimeToLiveDescription"]
                 ["TimeToLiveStatus"] == "ENABLED", timeout=30)
