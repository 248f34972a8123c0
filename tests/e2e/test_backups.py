"""On-demand backups through boto3: CreateBackup pins the table's state (no
copy), DescribeBackup, ListBackups (filters, pagination), DeleteBackup, and
RestoreTableFromBackup into a new table equal to the snapshot item for item,
with index and billing overrides; backups outlive their table."""
import time
import uuid

from conftest import new_table
from helpers import N, S, error_of, until


def scan(ddb, t):
    items, kw = [], {}
    while True:
        page = ddb.scan(TableName=t, ConsistentRead=True, **kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return sorted(items, key=lambda i: (i["pk"]["S"], i["sk"]["S"]))
        kw = {"ExclusiveStartKey": page["LastEvaluatedKey"]}


def active(ddb, t, timeout=60):
    return until(lambda: ddb.describe_table(TableName=t)["Table"]["TableStatus"] == "ACTIVE", timeout=timeout)


def test_backup_then_writes_then_restore_equals_the_snapshot(ddb):
    t = new_table(ddb)
    for i in range(60):
        ddb.put_item(TableName=t, Item={"pk": S(f"p{i % 7}"), "sk": S(f"{i:03}"), "v": N(i), "g": S(f"g{i % 3}")})
    snapshot = scan(ddb, t)
    name = "nightly-" + uuid.uuid4().hex[:6]
    details = ddb.create_backup(TableName=t, BackupName=name)["BackupDetails"]
    assert details["BackupStatus"] == "AVAILABLE" and details["BackupType"] == "USER"
    assert details["BackupName"] == name and details["BackupArn"].startswith(
        f"arn:aws:dynamodb:us-east-1:000000000000:table/{t}/backup/")
    arn = details["BackupArn"]
    # Later writes are not in the backup.
    for i in range(10):
        ddb.delete_item(TableName=t, Key={"pk": S(f"p{i % 7}"), "sk": S(f"{i:03}")})
    ddb.put_item(TableName=t, Item={"pk": S("late"), "sk": S("1")})

    desc = ddb.describe_backup(BackupArn=arn)["BackupDescription"]
    assert desc["BackupDetails"]["BackupArn"] == arn
    src = desc["SourceTableDetails"]
    assert src["TableName"] == t and src["ItemCount"] == 60 and src["TableSizeBytes"] > 0
    assert [k["AttributeName"] for k in src["KeySchema"]] == ["pk", "sk"]

    target = t + "_restored"
    r = ddb.restore_table_from_backup(TargetTableName=target, BackupArn=arn)["TableDescription"]
    assert r["TableName"] == target and r["TableStatus"] in ("CREATING", "ACTIVE")
    assert r["RestoreSummary"]["SourceBackupArn"] == arn
    assert active(ddb, target)
    assert scan(ddb, target) == snapshot
    code, _, _ = error_of(ddb.restore_table_from_backup, TargetTableName=target, BackupArn=arn)
    assert code == "TableAlreadyExistsException"

    # With an index override and another billing mode.
    target2 = t + "_indexed"
    ddb.restore_table_from_backup(
        TargetTableName=target2, BackupArn=arn, BillingModeOverride="PAY_PER_REQUEST",
        GlobalSecondaryIndexOverride=[{"IndexName": "byG", "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                                       "Projection": {"ProjectionType": "ALL"}}])
    assert active(ddb, target2)
    d2 = ddb.describe_table(TableName=target2)["Table"]
    assert d2["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert [g["IndexName"] for g in d2["GlobalSecondaryIndexes"]] == ["byG"]
    got = until(lambda: ddb.query(TableName=target2, IndexName="byG", KeyConditionExpression="pk = :p",
                                  ExpressionAttributeValues={":p": S("p0")})["Count"] == 9, timeout=30)
    assert got

    # The backup outlives its table; once deleted it is gone.
    ddb.delete_table(TableName=t)
    assert any(b["BackupArn"] == arn for b in ddb.list_backups(TableName=t)["BackupSummaries"])
    target3 = t + "_after"
    ddb.restore_table_from_backup(TargetTableName=target3, BackupArn=arn)
    assert active(ddb, target3)
    assert scan(ddb, target3) == snapshot
    deleted = ddb.delete_backup(BackupArn=arn)["BackupDescription"]
    assert deleted["BackupDetails"]["BackupStatus"] == "DELETED"
    for call in (lambda: ddb.describe_backup(BackupArn=arn), lambda: ddb.delete_backup(BackupArn=arn),
                 lambda: ddb.restore_table_from_backup(TargetTableName=t + "_x", BackupArn=arn)):
        code, _, _ = error_of(call)
        assert code == "BackupNotFoundException"


def test_list_backups_filters_and_pages(ddb):
    t = new_table(ddb)
    ddb.put_item(TableName=t, Item={"pk": S("a"), "sk": S("1")})
    arns = [ddb.create_backup(TableName=t, BackupName=f"backup{i}")["BackupDetails"]["BackupArn"] for i in range(3)]
    listed = ddb.list_backups(TableName=t)["BackupSummaries"]
    assert [b["BackupArn"] for b in listed] == arns
    assert {b["TableName"] for b in listed} == {t} and all(b["BackupStatus"] == "AVAILABLE" for b in listed)
    seen, kw = [], {}
    while True:
        page = ddb.list_backups(TableName=t, Limit=2, **kw)
        seen += [b["BackupArn"] for b in page["BackupSummaries"]]
        if "LastEvaluatedBackupArn" not in page:
            break
        kw = {"ExclusiveStartBackupArn": page["LastEvaluatedBackupArn"]}
    assert seen == arns
    future = time.time() + 3600
    assert ddb.list_backups(TableName=t, TimeRangeLowerBound=future)["BackupSummaries"] == []
    assert ddb.list_backups(TableName=t, BackupType="SYSTEM")["BackupSummaries"] == []
    for a in arns:
        ddb.delete_backup(BackupArn=a)
    assert ddb.list_backups(TableName=t)["BackupSummaries"] == []


def test_backup_errors(ddb):
    code, _, _ = error_of(ddb.create_backup, TableName="no_such_table_" + uuid.uuid4().hex[:6], BackupName="backup1")
    assert code == "TableNotFoundException"
    t = new_table(ddb)
    code, _, _ = error_of(ddb.create_backup, TableName=t, BackupName="bad name!")
    assert code == "ValidationException"
    code, _, _ = error_of(ddb.describe_backup, BackupArn="arn:aws:dynamodb:us-east-1:000000000000:table/x/nothing-here")
    assert code == "ValidationException"
    missing = f"arn:aws:dynamodb:us-east-1:000000000000:table/{t}/backup/01700000000000-0000abcd"
    code, _, _ = error_of(ddb.describe_backup, BackupArn=missing)
    assert code == "BackupNotFoundException"
    code, _, _ = error_of(ddb.list_backups, TimeRangeLowerBound=2000, TimeRangeUpperBound=1000)
    assert code == "ValidationException"


def test_a_gigabyte_table_restores_from_a_backup_in_seconds(tmp_path):
    """A 1 GB table (2,700 items of 390 KB, loaded with `strata import`): its
    backup is AVAILABLE at once, and the table restored from it is ACTIVE in
    seconds (its SSTs are copied by the store, hard links here, not read)."""
    import shutil
    import subprocess

    from conftest import STRATA_BIN, make_client, start_server

    try:
        src = tmp_path / "big.csv"
        with open(src, "w") as f:
            f.write("pk,v\n")
            blob = "x" * 390_000
            for i in range(2700):
                f.write(f"k{i:05},{blob}\n")
        data = tmp_path / "data"
        out = subprocess.run([STRATA_BIN, "import", "--data", str(data), "--table", "big", "--key", "pk:S",
                              "--from", str(src), "--format", "csv"], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr
        src.unlink()
        proc, url = start_server(["--data", str(data)])
        try:
            ddb = make_client(url)
            t0 = time.monotonic()
            arn = ddb.create_backup(TableName="big", BackupName="big-backup")["BackupDetails"]["BackupArn"]
            took_backup = time.monotonic() - t0
            src_details = ddb.describe_backup(BackupArn=arn)["BackupDescription"]["SourceTableDetails"]
            assert src_details["ItemCount"] == 2700 and src_details["TableSizeBytes"] > 1_000_000_000
            t0 = time.monotonic()
            ddb.restore_table_from_backup(TargetTableName="big_restored", BackupArn=arn)
            assert active(ddb, "big_restored", timeout=60)
            took_restore = time.monotonic() - t0
            print(f"1 GB: CreateBackup {took_backup:.2f} s, restore to ACTIVE {took_restore:.2f} s")
            assert took_backup < 10 and took_restore < 10, (took_backup, took_restore)
            for k in ("k00000", "k01350", "k02699"):
                got = ddb.get_item(TableName="big_restored", Key={"pk": S(k)})["Item"]
                assert len(got["v"]["S"]) == 390_000
        finally:
            proc.terminate()
            proc.wait(timeout=10)
    finally:
        shutil.rmtree(tmp_path, ignore_errors=True)
