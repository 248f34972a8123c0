"""Table operations through boto3."""
import uuid

from conftest import new_table
from helpers import error_of


def test_create_describe_list_delete_with_waiters(ddb):
    name = new_table(ddb, Tags=[{"Key": "team", "Value": "storage"}])
    ddb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    t = ddb.describe_table(TableName=name)["Table"]
    assert t["TableStatus"] == "ACTIVE"
    assert t["KeySchema"] == [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}]
    assert t["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert t["TableArn"].endswith(f":table/{name}")
    assert name in ddb.list_tables()["TableNames"]
    tags = ddb.list_tags_of_resource(ResourceArn=t["TableArn"])["Tags"]
    assert tags == [{"Key": "team", "Value": "storage"}]
    assert ddb.delete_table(TableName=name)["TableDescription"]["TableStatus"] == "DELETING"
    ddb.get_waiter("table_not_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 5})
    code, _, _ = error_of(ddb.describe_table, TableName=name)
    assert code == "ResourceNotFoundException"


def test_create_existing_table_is_resource_in_use(ddb, table):
    code, msg, _ = error_of(
        ddb.create_table, TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    assert code == "ResourceInUseException"


def test_create_table_validation(ddb):
    name = "v_" + uuid.uuid4().hex[:10]
    code, msg, _ = error_of(
        ddb.create_table, TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "other", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST",
    )
    assert code == "ValidationException" and "AttributeDefinitions" in msg
    code, msg, _ = error_of(
        ddb.create_table, TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
    )
    assert code == "ValidationException" and "ReadCapacityUnits" in msg
    # Provisioned with throughput works and is reported back.
    ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "N"}],
        ProvisionedThroughput={"ReadCapacityUnits": 5, "WriteCapacityUnits": 7},
    )
    pt = ddb.describe_table(TableName=name)["Table"]["ProvisionedThroughput"]
    assert (pt["ReadCapacityUnits"], pt["WriteCapacityUnits"]) == (5, 7)
    out = ddb.update_table(TableName=name, BillingMode="PAY_PER_REQUEST")["TableDescription"]
    assert out["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"


def test_list_tables_paginates(ddb):
    names = sorted(new_table(ddb, range_type=None) for _ in range(3))
    seen, start = [], None
    while True:
        kwargs = {"Limit": 2}
        if start:
            kwargs["ExclusiveStartTableName"] = start
        page = ddb.list_tables(**kwargs)
        seen += page["TableNames"]
        start = page.get("LastEvaluatedTableName")
        if not start:
            break
    assert all(n in seen for n in names)
    assert seen == sorted(seen)
    assert sum(1 for n in ddb.get_paginator("list_tables").paginate() for _ in n["TableNames"]) == len(seen)


def test_tags_ttl_limits_endpoints(ddb, table):
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "a", "Value": "1"}, {"Key": "b", "Value": "2"}])
    ddb.untag_resource(ResourceArn=arn, TagKeys=["a"])
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == [{"Key": "b", "Value": "2"}]
    assert ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]["TimeToLiveStatus"] == "DISABLED"
    ddb.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    d = ddb.describe_time_to_live(TableName=table)["TimeToLiveDescription"]
    # ENABLING until the server's expiry sweep takes the change up (test_ttl.py).
    assert d in ({"TimeToLiveStatus": "ENABLING", "AttributeName": "expires"},
                 {"TimeToLiveStatus": "ENABLED", "AttributeName": "expires"})
    code, msg, _ = error_of(ddb.update_time_to_live, TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires"})
    assert code == "ValidationException" and "already enabled" in msg
    assert ddb.describe_limits()["TableMaxReadCapacityUnits"] > 0
    assert ddb.describe_endpoints()["Endpoints"][0]["CachePeriodInMinutes"] == 1440


def test_commit_window_tag_sets_a_tables_window(ddb, table):
    import time

    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"]

    def put_secs():
        t = time.monotonic()
        ddb.put_item(TableName=table, Item={"pk": {"S": "w"}, "sk": {"S": "1"}})
        return time.monotonic() - t

    for bad in ["-1", "1001", "soon", "2.5"]:
        code, msg, _ = error_of(ddb.tag_resource, ResourceArn=arn, Tags=[{"Key": "strata:commit-window-ms", "Value": bad}])
        assert code == "ValidationException" and "0 to 1000" in msg, (bad, msg)
    assert ddb.list_tags_of_resource(ResourceArn=arn)["Tags"] == []
    ddb.tag_resource(ResourceArn=arn, Tags=[{"Key": "strata:commit-window-ms", "Value": "300"}])
    assert put_secs() >= 0.3  # the write waited out its table's window
    ddb.untag_resource(ResourceArn=arn, TagKeys=["strata:commit-window-ms"])
    put_secs()  # the first write may still meet the old descriptor
    assert put_secs() < 0.3
    name = new_table(ddb, Tags=[{"Key": "strata:commit-window-ms", "Value": "300"}])
    t = time.monotonic()
    ddb.put_item(TableName=name, Item={"pk": {"S": "w"}, "sk": {"S": "1"}})
    assert time.monotonic() - t >= 0.3
    code, _, _ = error_of(new_table, ddb, Tags=[{"Key": "strata:commit-window-ms", "Value": "x"}])
    assert code == "ValidationException"


def test_streams_and_deletion_protection_settings(ddb):
    name = new_table(ddb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"}, DeletionProtectionEnabled=True)
    t = ddb.describe_table(TableName=name)["Table"]
    assert t["StreamSpecification"]["StreamViewType"] == "NEW_AND_OLD_IMAGES"
    assert t["LatestStreamArn"].startswith(t["TableArn"] + "/stream/")
    code, msg, _ = error_of(ddb.delete_table, TableName=name)
    assert code == "ValidationException" and "protected" in msg
    ddb.update_table(TableName=name, DeletionProtectionEnabled=False)
    ddb.delete_table(TableName=name)


def test_recreated_table_is_empty(ddb):
    name = new_table(ddb)
    ddb.put_item(TableName=name, Item={"pk": {"S": "a"}, "sk": {"S": "b"}})
    ddb.delete_table(TableName=name)
    ddb.create_table(
        TableName=name, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert ddb.scan(TableName=name, ConsistentRead=True)["Count"] == 0
