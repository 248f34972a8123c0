"""Point-in-time recovery, Parquet exports read back with DuckDB and pyarrow,
incremental exports, and restores — through boto3 against `strata serve`."""
import decimal
import glob
import io
import json
import os
import threading
import time
import uuid

import boto3
import botocore.exceptions
import duckdb
import pyarrow.parquet as pq
import pytest

from conftest import SERVERS, new_table


def pitr_table(ddb):
    t = new_table(ddb)
    r = ddb.update_continuous_backups(TableName=t, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    assert r["ContinuousBackupsDescription"]["PointInTimeRecoveryDescription"]["PointInTimeRecoveryStatus"] == "ENABLED"
    return t


def fill(ddb, t, n, tag):
    for i in range(n):
        ddb.put_item(TableName=t, Item={
            "pk": {"S": f"c{i % 7}"}, "sk": {"S": f"{tag}{i:04}"},
            "price": {"N": f"{i}.{i % 100:02}"}, "name": {"S": f"name {i}"}, "active": {"BOOL": i % 2 == 0},
            "tags": {"SS": ["a", f"t{i % 3}"]}, "raw": {"B": bytes([i % 256])},
        })


def snapshot(ddb, t):
    """Every item (DynamoDB JSON) by a consistent scan, keyed by (pk, sk)."""
    out, kwargs = {}, {}
    while True:
        page = ddb.scan(TableName=t, ConsistentRead=True, **kwargs)
        for item in page["Items"]:
            out[(item["pk"]["S"], item["sk"]["S"])] = item
        if "LastEvaluatedKey" not in page:
            return out
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def normalize(item):
    """DynamoDB JSON as boto3 returns it (bytes for B) -> comparable JSON."""
    def value(v):
        (k, x), = v.items()
        if k == "B":
            import base64
            return {"B": base64.b64encode(x).decode() if isinstance(x, (bytes, bytearray)) else x}
        if k == "BS":
            import base64
            return {"BS": sorted(base64.b64encode(b).decode() if isinstance(b, (bytes, bytearray)) else b for b in x)}
        if k in ("SS", "NS"):
            return {k: sorted(x)}
        if k == "M":
            return {"M": {a: value(b) for a, b in x.items()}}
        if k == "L":
            return {"L": [value(b) for b in x]}
        return {k: x}
    return {a: value(v) for a, v in item.items()}


def wait_export(ddb, arn):
    for _ in range(300):
        d = ddb.describe_export(ExportArn=arn)["ExportDescription"]
        if d["ExportStatus"] != "IN_PROGRESS":
            assert d["ExportStatus"] == "COMPLETED", d
            return d
        time.sleep(0.1)
    raise AssertionError("export did not finish")


def export_dir(endpoint, desc):
    return os.path.join(SERVERS[endpoint]["exports_dir"], desc["S3Prefix"], "AWSDynamoDB", desc["ExportArn"].rsplit("/", 1)[1])


def exported_items(path):
    table = pq.read_table(glob.glob(os.path.join(path, "data", "*.parquet")))
    return table, {(json.loads(s)["pk"]["S"], json.loads(s)["sk"]["S"]): json.loads(s) for s in table.column("item").to_pylist()}


def test_full_export_is_exactly_the_moment_and_reads_in_duckdb_and_pyarrow(ddb, endpoint):
    t = pitr_table(ddb)
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    fill(ddb, t, 120, "a")
    ddb.delete_item(TableName=t, Key={"pk": {"S": "c0"}, "sk": {"S": "a0000"}})
    time.sleep(1.1)
    at = time.time()
    before = snapshot(ddb, t)
    time.sleep(1.1)

    # Writes continue while the export runs; they are after T, so not in it.
    stop = threading.Event()

    def writer():
        i = 0
        while not stop.is_set():
            ddb.put_item(TableName=t, Item={"pk": {"S": "late"}, "sk": {"S": f"{i:05}"}, "price": {"N": "1"}})
            ddb.update_item(TableName=t, Key={"pk": {"S": "c1"}, "sk": {"S": "a0001"}},
                            UpdateExpression="SET price = :p", ExpressionAttributeValues={":p": {"N": "999"}})
            i += 1

    th = threading.Thread(target=writer)
    th.start()
    try:
        r = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="local-exports", S3Prefix="full",
                                              ExportTime=at, ExportFormat="PARQUET")
        desc = wait_export(ddb, r["ExportDescription"]["ExportArn"])
    finally:
        stop.set()
        th.join()
    assert desc["ItemCount"] == len(before) == 119
    assert desc["ExportFormat"] == "PARQUET" and desc["ExportType"] == "FULL_EXPORT"
    path = export_dir(endpoint, desc)
    assert os.path.exists(os.path.join(path, "_started"))
    summary = json.load(open(os.path.join(path, "manifest-summary.json")))
    assert summary["itemCount"] == 119 and summary["outputFormat"] == "PARQUET"
    files = [json.loads(l) for l in open(os.path.join(path, "manifest-files.json"))]
    assert sum(f["itemCount"] for f in files) == 119
    for f in files:
        assert os.path.exists(os.path.join(SERVERS[endpoint]["exports_dir"], f["dataFileS3Key"]))

    # pyarrow: typed columns and every item equal to the consistent read at T.
    table, items = exported_items(path)
    assert table.num_rows == 119
    schema = {f.name: str(f.type) for f in table.schema}
    assert schema["pk"] == "string" and schema["sk"] == "string"
    assert schema["price"] == "decimal128(38, 2)"
    assert schema["active"] == "bool" and schema["raw"] == "binary" and schema["name"] == "string"
    assert "tags" not in schema  # a set: only in the item column
    assert schema["item"] == "string"
    assert {k: normalize(v) for k, v in before.items()} == {k: normalize(v) for k, v in items.items()}
    prices = dict(zip(zip(table.column("pk").to_pylist(), table.column("sk").to_pylist()), table.column("price").to_pylist()))
    assert prices[("c1", "a0001")] == decimal.Decimal("1.01")

    # DuckDB reads the same files directly.
    con = duckdb.connect()
    n, total, actives = con.execute(
        f"SELECT count(*), sum(price), count(*) FILTER (WHERE active) FROM read_parquet('{path}/data/*.parquet')").fetchone()
    assert n == 119
    assert total == sum(decimal.Decimal(v["price"]["N"]) for v in before.values())
    assert actives == sum(1 for v in before.values() if v["active"]["BOOL"])
    (late,) = con.execute(f"SELECT count(*) FROM read_parquet('{path}/data/*.parquet') WHERE pk = 'late'").fetchone()
    assert late == 0

    listed = ddb.list_exports(TableArn=arn)["ExportSummaries"]
    assert [e["ExportArn"] for e in listed] == [desc["ExportArn"]]
    assert listed[0]["ExportStatus"] == "COMPLETED"


def test_incremental_export_equals_the_difference_of_two_full_exports(ddb, endpoint):
    t = pitr_table(ddb)
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    fill(ddb, t, 40, "a")
    time.sleep(1.1)
    t1 = time.time()
    time.sleep(1.1)
    fill(ddb, t, 10, "b")  # inserts
    ddb.update_item(TableName=t, Key={"pk": {"S": "c2"}, "sk": {"S": "a0002"}}, UpdateExpression="SET price = :p",
                    ExpressionAttributeValues={":p": {"N": "7"}})  # modify
    ddb.delete_item(TableName=t, Key={"pk": {"S": "c3"}, "sk": {"S": "a0003"}})  # remove
    ddb.put_item(TableName=t, Item={"pk": {"S": "tmp"}, "sk": {"S": "x"}})
    ddb.delete_item(TableName=t, Key={"pk": {"S": "tmp"}, "sk": {"S": "x"}})  # in and out: no change
    time.sleep(1.1)
    t2 = time.time()

    def full(at):
        r = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="local-exports", S3Prefix="inc", ExportTime=at,
                                              ExportFormat="PARQUET")
        return exported_items(export_dir(endpoint, wait_export(ddb, r["ExportDescription"]["ExportArn"])))[1]

    a, b = full(t1), full(t2)
    r = ddb.export_table_to_point_in_time(
        TableArn=arn, S3Bucket="local-exports", S3Prefix="inc", ExportFormat="PARQUET", ExportType="INCREMENTAL_EXPORT",
        IncrementalExportSpecification={"ExportFromTime": t1, "ExportToTime": t2, "ExportViewType": "NEW_AND_OLD_IMAGES"})
    desc = wait_export(ddb, r["ExportDescription"]["ExportArn"])
    table = pq.read_table(glob.glob(os.path.join(export_dir(endpoint, desc), "data", "*.parquet")))
    rows = table.to_pylist()
    got = {(r["pk"], r["sk"]): (r["change"], r["new_item"] and json.loads(r["new_item"]), r["old_item"] and json.loads(r["old_item"]))
           for r in rows}
    expected = {}
    for k in set(a) | set(b):
        if k not in a:
            expected[k] = ("INSERT", b[k], None)
        elif k not in b:
            expected[k] = ("REMOVE", None, a[k])
        elif a[k] != b[k]:
            expected[k] = ("MODIFY", b[k], a[k])
    assert got == expected
    assert sorted(c for c, _, _ in got.values()).count("INSERT") == 10
    assert str(table.schema.field("commit_time").type) == "timestamp[us, tz=UTC]"
    assert all(r["commit_time"] is not None for r in rows)


def test_restore_to_a_moment_equals_the_snapshot_then(ddb):
    t = pitr_table(ddb)
    fill(ddb, t, 60, "a")
    time.sleep(1.1)
    at = time.time()
    before = snapshot(ddb, t)
    time.sleep(1.1)
    fill(ddb, t, 20, "z")
    ddb.delete_item(TableName=t, Key={"pk": {"S": "c1"}, "sk": {"S": "a0001"}})
    target = t + "_restored"
    r = ddb.restore_table_to_point_in_time(SourceTableName=t, TargetTableName=target, RestoreDateTime=at)
    assert r["TableDescription"]["TableStatus"] == "CREATING"
    ddb.get_waiter("table_exists").wait(TableName=target, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    d = ddb.describe_table(TableName=target)["Table"]
    assert d["TableStatus"] == "ACTIVE"
    assert d["RestoreSummary"]["RestoreInProgress"] is False
    assert snapshot(ddb, target) == before
    backups = ddb.describe_continuous_backups(TableName=t)["ContinuousBackupsDescription"]
    pitr = backups["PointInTimeRecoveryDescription"]
    assert pitr["RecoveryPeriodInDays"] == 35
    assert pitr["EarliestRestorableDateTime"] <= pitr["LatestRestorableDateTime"]


def error_code(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response["Error"]["Code"]


def test_errors_like_dynamodb(ddb):
    t = new_table(ddb)
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    assert error_code(lambda: ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="local-exports")) \
        == "PointInTimeRecoveryUnavailableException"
    assert error_code(lambda: ddb.restore_table_to_point_in_time(SourceTableName=t, TargetTableName=t + "_r")) \
        == "PointInTimeRecoveryUnavailableException"
    ddb.update_continuous_backups(TableName=t, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True,
                                                                                "RecoveryPeriodInDays": 7})
    assert error_code(lambda: ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="local-exports",
                                                                ExportTime=time.time() - 86400)) == "InvalidExportTimeException"
    assert error_code(lambda: ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="local-exports",
                                                                ExportFormat="ION")) == "ValidationException"
    assert error_code(lambda: ddb.update_continuous_backups(TableName=t, PointInTimeRecoverySpecification={
        "PointInTimeRecoveryEnabled": True, "RecoveryPeriodInDays": 36})) == "ValidationException"
    assert error_code(lambda: ddb.restore_table_to_point_in_time(SourceTableName=t, TargetTableName=t)) \
        == "TableAlreadyExistsException"
    assert error_code(lambda: ddb.describe_export(ExportArn=arn + "/export/01234-nope")) == "ExportNotFoundException"
    assert error_code(lambda: ddb.describe_continuous_backups(TableName="nosuch_" + uuid.uuid4().hex[:6])) \
        == "TableNotFoundException"


def test_export_to_another_s3_server_in_dynamodb_json(ddb, endpoint):
    info = SERVERS[endpoint]
    if "moto_endpoint" not in info:
        pytest.skip("needs moto (the test command runs it)")
    t = pitr_table(ddb)
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    fill(ddb, t, 30, "a")
    time.sleep(1.1)
    before = snapshot(ddb, t)
    r = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket="moto-exports", S3Prefix="json")
    desc = wait_export(ddb, r["ExportDescription"]["ExportArn"])
    assert desc["ExportFormat"] == "DYNAMODB_JSON"
    s3 = boto3.client("s3", endpoint_url=info["moto_endpoint"], region_name="us-east-1",
                      aws_access_key_id="test", aws_secret_access_key="test")
    base = f"{info['moto_prefix']}/json/AWSDynamoDB/{desc['ExportArn'].rsplit('/', 1)[1]}"
    lines = s3.get_object(Bucket=info["moto_bucket"], Key=f"{base}/manifest-files.json")["Body"].read().decode().splitlines()
    import gzip
    items = {}
    for line in lines:
        f = json.loads(line)
        body = s3.get_object(Bucket=info["moto_bucket"], Key=f"{info['moto_prefix']}/{f['dataFileS3Key']}")["Body"].read()
        rows = [json.loads(l)["Item"] for l in gzip.decompress(body).decode().splitlines()]
        assert len(rows) == f["itemCount"]
        for it in rows:
            items[(it["pk"]["S"], it["sk"]["S"])] = it
    assert {k: normalize(v) for k, v in before.items()} == {k: normalize(v) for k, v in items.items()}


def test_an_export_to_a_bucket_nothing_can_reach_fails_at_once():
    """No store configured for the bucket and no AWS credentials: refused when
    asked, not minutes later after asking the instance metadata address."""
    import tempfile

    from botocore.config import Config

    from conftest import start_server

    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(["--data", d], env=env)
        try:
            c = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                             aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))
            c.create_table(TableName="unreachable", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                           AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                           BillingMode="PAY_PER_REQUEST")
            c.update_continuous_backups(TableName="unreachable",
                                        PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
            arn = c.describe_table(TableName="unreachable")["Table"]["TableArn"]
            started = time.time()
            with pytest.raises(botocore.exceptions.ClientError) as e:
                c.export_table_to_point_in_time(TableArn=arn, S3Bucket="nobody-configured-this-bucket")
            assert time.time() - started < 5
            assert "no store is configured for bucket nobody-configured-this-bucket" in e.value.response["Error"]["Message"]
        finally:
            proc.terminate()
            proc.wait(timeout=10)
