"""Encryption at rest: the local store with --encryption-key (a copied data
directory reveals no item bytes; the same key reads it back; another key
reads nothing), S3 server-side encryption asked of the store (LocalStack),
and DescribeTable reporting what is in force."""
import os
import secrets
import tempfile
import time
import uuid

import boto3
import botocore
import pytest

from conftest import make_client, start_server
from helpers import until

MARKER = "PLAINTEXT-MARKER-" + "q" * 24


def table(ddb, name, **extra):
    ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST", **extra)


def files_containing(root, needle):
    hits = []
    for d, _, fs in os.walk(root):
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                if needle in fh.read():
                    hits.append(os.path.join(d, f))
    return hits


def test_a_local_store_written_with_a_key_holds_no_plaintext():
    with tempfile.TemporaryDirectory() as d:
        key = os.path.join(d, "key")
        with open(key, "w") as f:
            f.write(secrets.token_hex(32))
        data = os.path.join(d, "data")
        proc, url = start_server(["--data", data, "--encryption-key", key, "--maintenance-secs", "1"])
        try:
            ddb = make_client(url)
            table(ddb, "secret", SSESpecification={"Enabled": True})
            for i in range(50):
                ddb.put_item(TableName="secret", Item={"k": {"S": f"{MARKER}-{i}"}, "v": {"S": MARKER}})
            desc = ddb.describe_table(TableName="secret")["Table"]
            assert desc["SSEDescription"] == {"Status": "ENABLED", "SSEType": "AES256"}
            # Let the maintenance pass flush the log into SSTs too.
            deadline = time.time() + 20
            while time.time() < deadline and not any(f.endswith(".sst") for _, _, fs in os.walk(data) for f in fs):
                time.sleep(0.3)
            assert any(f.endswith(".sst") for _, _, fs in os.walk(data) for f in fs), "an SST was written"
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert files_containing(data, MARKER.encode()) == []
        assert files_containing(data, b'"secret"') == []  # descriptors too
        # The same key reads everything back after a restart.
        proc, url = start_server(["--data", data, "--encryption-key", key])
        try:
            items = make_client(url).scan(TableName="secret", ConsistentRead=True)["Items"]
            assert len(items) == 50 and all(i["v"]["S"] == MARKER for i in items)
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        # Another key reads nothing (an error, never garbage); no key at all neither.
        other = os.path.join(d, "other")
        with open(other, "w") as f:
            f.write(secrets.token_hex(32))
        for args in (["--encryption-key", other], []):
            proc, url = start_server(["--data", data, *args])
            try:
                c = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                                 aws_secret_access_key="x",
                                 config=botocore.config.Config(retries={"max_attempts": 1}))
                with pytest.raises(botocore.exceptions.ClientError):
                    c.scan(TableName="secret", ConsistentRead=True)
            finally:
                proc.terminate()
                proc.wait(timeout=10)


def test_a_key_is_rotated_and_the_old_one_dropped_after_strata_rekey():
    """Rotation: the key file lists the new key first and the old one after
    it; the server reads what the old key wrote and writes with the new;
    `strata rekey` (no server running) seals the rest with the new key, and
    the new key alone then reads everything. rekey also encrypts a store
    written without a key."""
    from conftest import STRATA_BIN
    import subprocess
    with tempfile.TemporaryDirectory() as d:
        old_key, new_key = secrets.token_hex(32), secrets.token_hex(32)
        paths = {}
        for name, text in [("old", old_key), ("ring", f"# rotating\n{new_key}\n{old_key}\n"), ("new", new_key)]:
            paths[name] = os.path.join(d, name)
            with open(paths[name], "w") as f:
                f.write(text)
        data = os.path.join(d, "data")

        def serving(key, check):
            proc, url = start_server(["--data", data, "--encryption-key", paths[key]])
            try:
                check(make_client(url))
            finally:
                proc.terminate()
                proc.wait(timeout=10)

        def write_old(ddb):
            table(ddb, "rotated")
            for i in range(20):
                ddb.put_item(TableName="rotated", Item={"k": {"S": f"old{i}"}})

        def rotate(ddb):
            assert len(ddb.scan(TableName="rotated", ConsistentRead=True)["Items"]) == 20
            for i in range(5):
                ddb.put_item(TableName="rotated", Item={"k": {"S": f"new{i}"}})

        serving("old", write_old)
        serving("ring", rotate)
        out = subprocess.run([STRATA_BIN, "rekey", "--data", data, "--encryption-key", paths["ring"]],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert "sealed again" in out.stdout and not out.stdout.startswith("rekey: 0 objects"), out.stdout
        again = subprocess.run([STRATA_BIN, "rekey", "--data", data, "--encryption-key", paths["ring"]],
                               capture_output=True, text=True, timeout=120)
        assert again.stdout.startswith("rekey: 0 objects"), again.stdout
        serving("new", lambda ddb: (
            len(ddb.scan(TableName="rotated", ConsistentRead=True)["Items"]) == 25 or pytest.fail("lost items")))
        # A store written without a key is encrypted by rekey too.
        plain = os.path.join(d, "plain")
        proc, url = start_server(["--data", plain])
        try:
            ddb = make_client(url)
            table(ddb, "clear")
            ddb.put_item(TableName="clear", Item={"k": {"S": MARKER}})
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        assert files_containing(plain, MARKER.encode())
        out = subprocess.run([STRATA_BIN, "rekey", "--data", plain, "--encryption-key", paths["new"]],
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert files_containing(plain, MARKER.encode()) == []
        proc, url = start_server(["--data", plain, "--encryption-key", paths["new"]])
        try:
            assert make_client(url).get_item(TableName="clear", Key={"k": {"S": MARKER}},
                                             ConsistentRead=True)["Item"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_encryption_asked_of_a_store_without_any_is_refused():
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(["--data", d])
        try:
            ddb = make_client(url)
            with pytest.raises(botocore.exceptions.ClientError) as e:
                table(ddb, "plain", SSESpecification={"Enabled": True, "SSEType": "KMS"})
            assert e.value.response["Error"]["Code"] == "ValidationException"
            assert "does not encrypt at rest" in e.value.response["Error"]["Message"]
            table(ddb, "plain")
            assert "SSEDescription" not in ddb.describe_table(TableName="plain")["Table"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.mark.skipif(not os.environ.get("STRATA_E2E_S3_ENDPOINT"), reason="needs LocalStack (the test command runs it)")
def test_an_s3_store_asks_s3_to_encrypt_every_object():
    endpoint, bucket = os.environ["STRATA_E2E_S3_ENDPOINT"], os.environ["STRATA_E2E_BUCKET"]
    prefix = f"sse-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    proc, url = start_server(["--store", f"s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&sse=AES256"],
                             env=env)
    try:
        ddb = make_client(url)
        table(ddb, "sse")
        ddb.put_item(TableName="sse", Item={"k": {"S": "a"}})
        assert ddb.describe_table(TableName="sse")["Table"]["SSEDescription"] == {"Status": "ENABLED",
                                                                                  "SSEType": "AES256"}
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                          aws_secret_access_key="test")
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"{prefix}/tables/")["Contents"]]
        segments = [k for k in keys if k.endswith(".seg")]
        assert segments, keys
        for k in segments:
            assert s3.head_object(Bucket=bucket, Key=k).get("ServerSideEncryption") == "AES256", k
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.skipif(not os.environ.get("STRATA_E2E_MOTO_ENDPOINT"), reason="needs moto (the test command runs it)")
def test_each_table_is_written_with_its_own_kms_key():
    """A KMS key per table on S3: a table whose SSESpecification names a
    key has every object (log segments, SSTs, manifests, its index's)
    written with that key, its descriptors and other tables with the store's;
    UpdateTable changes the key for what is written next; DescribeTable
    names the table's key. (moto keeps each object's SSE headers.)"""
    endpoint, bucket = os.environ["STRATA_E2E_MOTO_ENDPOINT"], os.environ["STRATA_E2E_BUCKET"]
    prefix = f"kms-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    store = f"s3://{bucket}/{prefix}?endpoint={endpoint}&region=us-east-1&sse=aws:kms&sse_kms_key_id=store-key"
    proc, url = start_server(["--store", store, "--maintenance-secs", "1"], env=env)
    s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="test",
                      aws_secret_access_key="test")

    def keys_of(table_prefix, since=()):
        found = {}
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/tables/{table_prefix}"):
            for o in page.get("Contents", []):
                if o["Key"] not in since:
                    found[o["Key"]] = s3.head_object(Bucket=bucket, Key=o["Key"]).get("SSEKMSKeyId")
        return found

    try:
        ddb = make_client(url)
        sse = {"Enabled": True, "SSEType": "KMS", "KMSMasterKeyId": "table-key"}
        ddb.create_table(TableName="secret", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                                               {"AttributeName": "g", "AttributeType": "S"}],
                         GlobalSecondaryIndexes=[{"IndexName": "byG",
                                                  "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                                  "Projection": {"ProjectionType": "ALL"}}],
                         BillingMode="PAY_PER_REQUEST", SSESpecification=sse)
        table(ddb, "plain")
        for i in range(30):
            ddb.put_item(TableName="secret", Item={"k": {"S": f"k{i}"}, "g": {"S": "x"}})
            ddb.put_item(TableName="plain", Item={"k": {"S": f"k{i}"}})
        desc = ddb.describe_table(TableName="secret")["Table"]["SSEDescription"]
        assert desc == {"Status": "ENABLED", "SSEType": "KMS",
                        "KMSMasterKeyArn": "arn:aws:kms:us-east-1:000000000000:key/table-key"}, desc
        assert ddb.describe_table(TableName="plain")["Table"]["SSEDescription"]["KMSMasterKeyArn"].endswith(
            "key/store-key")
        # The index is maintained (its table's objects appear) and compaction runs.
        assert until(lambda: ddb.query(TableName="secret", IndexName="byG", KeyConditionExpression="g = :g",
                                       ExpressionAttributeValues={":g": {"S": "x"}})["Count"] == 30, timeout=30)
        secret = keys_of("secret")
        assert any(k.endswith(".seg") for k in secret) and any("!byG" in k for k in secret), list(secret)
        # Items are under the table's key; its descriptors (settings) are the store's.
        assert {v for k, v in secret.items() if "/schema/" not in k} == {"table-key"}, secret
        assert {v for k, v in secret.items() if "/schema/" in k} == {"store-key"}, secret
        plain = keys_of("plain/")
        assert plain and set(plain.values()) == {"store-key"}, plain
        # Another key from now on.
        ddb.update_table(TableName="secret", SSESpecification={"Enabled": True, "SSEType": "KMS",
                                                               "KMSMasterKeyId": "table-key-2"})
        for i in range(5):
            ddb.put_item(TableName="secret", Item={"k": {"S": f"n{i}"}, "g": {"S": "y"}})
        # The log segments written since (a compaction that began before
        # the change may still finish with the key it began with).
        later = {k: v for k, v in keys_of("secret", since=secret).items() if k.endswith(".seg")}
        assert later and set(later.values()) == {"table-key-2"}, {k: v for k, v in later.items() if v != "table-key-2"}
        assert ddb.describe_table(TableName="secret")["Table"]["SSEDescription"]["KMSMasterKeyArn"].endswith(
            "key/table-key-2")
        got = ddb.get_item(TableName="secret", Key={"k": {"S": "k3"}}, ConsistentRead=True)["Item"]
        assert got["g"] == {"S": "x"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
