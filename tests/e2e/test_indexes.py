"""Secondary indexes through boto3: CreateTable with global and local
indexes, DescribeTable, index-key validation, Query and Scan on indexes
(sparse, INCLUDE, pagination through equal index keys, local indexes
fetching from the table), UpdateTable creating and deleting an index on a
table with data while writers run. Messages are DynamoDB Local 3.3.0's."""
import threading
import time
import uuid

from helpers import N, S, error_of, until


def AD(*pairs):
    return [{"AttributeName": n, "AttributeType": t} for n, t in pairs]


def KS(h, r=None):
    out = [{"AttributeName": h, "KeyType": "HASH"}]
    if r:
        out.append({"AttributeName": r, "KeyType": "RANGE"})
    return out


def IX(name, h, r=None, projection="ALL", include=None):
    p = {"ProjectionType": projection}
    if include:
        p["NonKeyAttributes"] = include
    return {"IndexName": name, "KeySchema": KS(h, r), "Projection": p}


def name():
    return "ix_" + uuid.uuid4().hex[:12]


def indexed_table(ddb):
    t = name()
    ddb.create_table(
        TableName=t, BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=AD(("pk", "S"), ("sk", "N"), ("g", "S"), ("r", "N"), ("l", "N")),
        KeySchema=KS("pk", "sk"),
        GlobalSecondaryIndexes=[IX("byG", "g", "r", "INCLUDE", ["x"]), IX("byGk", "g", projection="KEYS_ONLY")],
        LocalSecondaryIndexes=[IX("byL", "pk", "l", "KEYS_ONLY")],
    )
    return t


def query_all(ddb, **kwargs):
    items, start = [], None
    while True:
        if start:
            kwargs["ExclusiveStartKey"] = start
        r = ddb.query(**kwargs)
        items += r["Items"]
        start = r.get("LastEvaluatedKey")
        if not start:
            return items


def test_create_and_describe_indexes(ddb):
    t = indexed_table(ddb)
    d = ddb.describe_table(TableName=t)["Table"]
    assert [a["AttributeName"] for a in d["AttributeDefinitions"]] == ["pk", "sk", "g", "r", "l"]
    gsis = {g["IndexName"]: g for g in d["GlobalSecondaryIndexes"]}
    assert gsis["byG"]["KeySchema"] == KS("g", "r")
    assert gsis["byG"]["Projection"] == {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["x"]}
    assert gsis["byG"]["IndexStatus"] == "ACTIVE"
    assert gsis["byG"]["IndexArn"].endswith(f"table/{t}/index/byG")
    assert gsis["byGk"]["Projection"] == {"ProjectionType": "KEYS_ONLY"}
    [lsi] = d["LocalSecondaryIndexes"]
    assert lsi["IndexName"] == "byL" and "IndexStatus" not in lsi
    assert {"IndexSizeBytes", "ItemCount"} <= set(lsi)
    # Index tables are not tables.
    assert not [n for n in ddb.list_tables()["TableNames"] if "!" in n]


def test_create_table_refuses_bad_indexes(ddb):
    def create(**kw):
        args = dict(TableName=name(), BillingMode="PAY_PER_REQUEST", KeySchema=KS("pk", "sk"),
                    AttributeDefinitions=AD(("pk", "S"), ("sk", "S"), ("g", "S")))
        args.update(kw)
        return error_of(ddb.create_table, **args)[:2]

    assert create(GlobalSecondaryIndexes=[IX("byG", "g"), IX("byG", "g")]) == (
        "ValidationException", "Two global secondary indices have the same name")
    assert create(GlobalSecondaryIndexes=[IX("byX", "g")], LocalSecondaryIndexes=[IX("byX", "pk", "g")]) == (
        "ValidationException", "Local Secondary Indices AND Global Secondary Indices must have different names")
    assert create(LocalSecondaryIndexes=[IX("byL", "g", "sk")]) == (
        "ValidationException", "Local Secondary indices must have the same hash key as the main table")
    assert create(KeySchema=KS("pk"), AttributeDefinitions=AD(("pk", "S"), ("g", "S")),
                  LocalSecondaryIndexes=[IX("byL", "pk", "g")]) == (
        "ValidationException", "Local Secondary indices are not allowed on hash tables, only hash and range tables")
    assert create(GlobalSecondaryIndexes=[IX("byG", "g", projection="INCLUDE")])[1].startswith(
        "If Projection type INCLUDE is specified")
    assert create(GlobalSecondaryIndexes=[IX("byG", "g", include=["a"])]) == (
        "ValidationException", "No attributes should be specified to be projected unless projection type is INCLUDE")
    code, msg = create(AttributeDefinitions=AD(("pk", "S"), ("sk", "S")), GlobalSecondaryIndexes=[IX("byG", "g")])
    assert code == "ValidationException" and "Some index key attributes are not defined" in msg
    code, msg = create(AttributeDefinitions=AD(("pk", "S"), ("sk", "S"), ("g", "S"), ("z", "S")),
                       GlobalSecondaryIndexes=[IX("byG", "g")])
    assert "Number of attributes in KeySchema does not exactly match" in msg
    assert create(BillingMode="PROVISIONED", ProvisionedThroughput={"ReadCapacityUnits": 1, "WriteCapacityUnits": 1},
                  GlobalSecondaryIndexes=[IX("byG", "g")]) == (
        "ValidationException", "No provisioned throughput specified for the global secondary index")
    many = [IX(f"i{i:02d}", "g") for i in range(21)]
    assert create(GlobalSecondaryIndexes=many) == (
        "ValidationException", "GlobalSecondaryIndex count exceeds the per-table limit")
    include = [f"a{i}" for i in range(101)]
    code, msg = create(GlobalSecondaryIndexes=[IX("byG", "g", projection="INCLUDE", include=include)])
    assert "exceeds limit of 100" in msg


def test_writes_check_index_keys(ddb):
    t = indexed_table(ddb)
    code, msg, _ = error_of(ddb.put_item, TableName=t, Item={"pk": S("a"), "sk": N(1), "g": N(5)})
    assert code == "ValidationException" and msg.startswith("One or more parameter values were invalid: Type mismatch for Index Key")
    code, msg, _ = error_of(ddb.put_item, TableName=t, Item={"pk": S("a"), "sk": N(1), "g": S("")})
    assert msg.endswith("IndexName: byG, IndexKey: g")
    ddb.put_item(TableName=t, Item={"pk": S("a"), "sk": N(1), "g": S("g1")})
    code, msg, _ = error_of(ddb.update_item, TableName=t, Key={"pk": S("a"), "sk": N(1)},
                            UpdateExpression="SET r = :v", ExpressionAttributeValues={":v": S("x")})
    assert "Type mismatch for Index Key" in msg
    # Nothing was stored by the refused writes.
    assert ddb.get_item(TableName=t, Key={"pk": S("a"), "sk": N(1)})["Item"] == {"pk": S("a"), "sk": N(1), "g": S("g1")}


def test_query_and_scan_global_index(ddb):
    t = indexed_table(ddb)
    put = lambda pk, sk, **a: ddb.put_item(TableName=t, Item={"pk": S(pk), "sk": N(sk), **a})
    put("a", 1, g=S("g1"), r=N(1), x=N(1), y=N(2), l=N(3))
    put("a", 2, g=S("g1"), r=N(1), x=N(1), y=N(2))
    put("b", 1, g=S("g1"), r=N(1), x=N(1), y=N(2))
    put("c", 1, r=N(1), x=N(1))  # sparse: no g, in no global index
    q = dict(TableName=t, IndexName="byG", KeyConditionExpression="g = :g", ExpressionAttributeValues={":g": S("g1")})
    r = until(lambda: (lambda r: r if r["Count"] == 3 else None)(ddb.query(**q)))
    # Equal index keys are ordered by the table's key; INCLUDE projects x, not y.
    assert [(i["pk"]["S"], i["sk"]["N"]) for i in r["Items"]] == [("a", "1"), ("a", "2"), ("b", "1")]
    assert r["Items"][0] == {"pk": S("a"), "sk": N(1), "g": S("g1"), "r": N(1), "x": N(1)}
    r = ddb.query(**q, Limit=1)
    assert r["LastEvaluatedKey"] == {"pk": S("a"), "sk": N(1), "g": S("g1"), "r": N(1)}
    r = ddb.query(**q, Limit=1, ExclusiveStartKey=r["LastEvaluatedKey"])
    assert (r["Items"][0]["pk"], r["Items"][0]["sk"]) == (S("a"), N(2))
    r = ddb.query(**q, ReturnConsumedCapacity="INDEXES")
    assert r["ConsumedCapacity"]["GlobalSecondaryIndexes"] == {"byG": {"CapacityUnits": 0.5}}
    assert r["ConsumedCapacity"]["Table"] == {"CapacityUnits": 0.0}
    assert ddb.query(**q, Select="COUNT")["Count"] == 3
    assert error_of(ddb.query, **q, ConsistentRead=True)[:2] == (
        "ValidationException", "Consistent reads are not supported on global secondary indexes")
    assert error_of(ddb.query, **q, Select="ALL_ATTRIBUTES")[1] == (
        "One or more parameter values were invalid: Select type ALL_ATTRIBUTES is not supported for global secondary index byG because its projection type is not ALL")
    assert error_of(ddb.query, **q, ProjectionExpression="y, x")[1] == (
        "One or more parameter values were invalid: Global secondary index byG does not project [y]")
    assert error_of(ddb.query, **{**q, "IndexName": "nope"})[1] == "The table does not have the specified index: nope"
    assert error_of(ddb.query, **{**q, "TableName": "no_such_table"})[0] == "ResourceNotFoundException"
    assert error_of(ddb.query, **{**q, "FilterExpression": "r > :r", "ExpressionAttributeValues": {":g": S("g1"), ":r": N(0)}})[1] == (
        "Filter Expression can only contain non-primary key attributes: Primary key attribute: r")
    r = ddb.query(**{**q, "FilterExpression": "x = :one", "ExpressionAttributeValues": {":g": S("g1"), ":one": N(1)}}, ScanIndexForward=False)
    assert [(i["pk"]["S"], i["sk"]["N"]) for i in r["Items"]] == [("b", "1"), ("a", "2"), ("a", "1")]
    # Scan of an index: every entry, in pages, and parallel segments.
    items = ddb.scan(TableName=t, IndexName="byGk")["Items"]
    assert sorted((i["pk"]["S"], i["sk"]["N"]) for i in items) == [("a", "1"), ("a", "2"), ("b", "1")]
    assert all(set(i) == {"pk", "sk", "g"} for i in items)
    r = ddb.scan(TableName=t, IndexName="byG", Limit=1)
    assert r["Count"] == 1 and set(r["LastEvaluatedKey"]) == {"pk", "sk", "g", "r"}
    seg = [ddb.scan(TableName=t, IndexName="byG", Segment=s, TotalSegments=3)["Items"] for s in range(3)]
    assert sum(len(s) for s in seg) == 3
    assert error_of(ddb.scan, TableName=t, IndexName="byG", ConsistentRead=True)[1] == (
        "Consistent reads are not supported on global secondary indexes")


def test_local_index_is_strongly_consistent_and_fetches(ddb):
    t = indexed_table(ddb)
    for sk, l in [(1, 30), (2, 10), (3, 20)]:
        ddb.put_item(TableName=t, Item={"pk": S("p"), "sk": N(sk), "l": N(l), "y": N(sk)})
    ddb.put_item(TableName=t, Item={"pk": S("p"), "sk": N(4), "y": N(4)})  # no l: not in the LSI
    q = dict(TableName=t, IndexName="byL", KeyConditionExpression="pk = :p AND l > :l",
             ExpressionAttributeValues={":p": S("p"), ":l": N(5)}, ConsistentRead=True)
    r = ddb.query(**q)
    assert [i["sk"]["N"] for i in r["Items"]] == ["2", "3", "1"]
    assert r["Items"][0] == {"pk": S("p"), "sk": N(2), "l": N(10)}
    # Beyond its projection a local index reads the table's items.
    r = ddb.query(**q, Select="ALL_ATTRIBUTES")
    assert r["Items"][0] == {"pk": S("p"), "sk": N(2), "l": N(10), "y": N(2)}
    r = ddb.query(**q, ProjectionExpression="y")
    assert r["Items"] == [{"y": N(2)}, {"y": N(3)}, {"y": N(1)}]
    # A write is in the next strongly consistent read of the index.
    ddb.update_item(TableName=t, Key={"pk": S("p"), "sk": N(1)}, UpdateExpression="SET l = :v",
                    ExpressionAttributeValues={":v": N(1)})
    r = ddb.query(**q)
    assert [i["sk"]["N"] for i in r["Items"]] == ["2", "3"]
    r = ddb.query(**q, ReturnConsumedCapacity="INDEXES")
    assert "byL" in r["ConsumedCapacity"]["LocalSecondaryIndexes"]


def test_pagination_through_many_equal_index_keys(ddb):
    t = indexed_table(ddb)
    for i in range(60):
        ddb.put_item(TableName=t, Item={"pk": S(f"k{i:03d}"), "sk": N(i % 3), "g": S("same"), "r": N(7)})
    q = dict(TableName=t, IndexName="byG", KeyConditionExpression="g = :g AND r = :r",
             ExpressionAttributeValues={":g": S("same"), ":r": N(7)}, Limit=7)
    until(lambda: ddb.query(**{**q, "Limit": 100})["Count"] == 60)
    items = query_all(ddb, **q)
    keys = [(i["pk"]["S"], int(i["sk"]["N"])) for i in items]
    assert keys == sorted(keys) and len(set(keys)) == 60


def test_online_index_creation_with_writers(ddb):
    t = name()
    ddb.create_table(TableName=t, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=AD(("pk", "S")), KeySchema=KS("pk"))
    # Enough items that the backfill is still running when the second index is asked for.
    base = 3000
    for start in range(0, base, 25):
        ddb.batch_write_item(RequestItems={t: [{"PutRequest": {"Item": {"pk": S(f"i{i}"), "c": S(f"c{i % 4}"), "n": N(i)}}}
                                               for i in range(start, start + 25)]})
    stop = threading.Event()
    written = []

    def writer():
        i = base
        while not stop.is_set():
            ddb.put_item(TableName=t, Item={"pk": S(f"i{i}"), "c": S(f"c{i % 4}"), "n": N(i)})
            written.append(i)
            i += 1

    w = threading.Thread(target=writer)
    w.start()
    try:
        r = ddb.update_table(TableName=t, AttributeDefinitions=AD(("c", "S"), ("n", "N")),
                             GlobalSecondaryIndexUpdates=[{"Create": IX("byC", "c", "n")}])
        [g] = r["TableDescription"]["GlobalSecondaryIndexes"]
        assert g["IndexStatus"] == "CREATING" and g["Backfilling"] is True
        code, msg, _ = error_of(ddb.update_table, TableName=t, AttributeDefinitions=AD(("n", "N")),
                                GlobalSecondaryIndexUpdates=[{"Create": IX("byN", "n")}])
        assert code == "LimitExceededException"
        status = until(lambda: ddb.describe_table(TableName=t)["Table"]["GlobalSecondaryIndexes"][0]["IndexStatus"] == "ACTIVE", 30)
        assert status, "the index never became ACTIVE"
        time.sleep(0.3)
    finally:
        stop.set()
        w.join()
    total = base + len(written)
    count = lambda: sum(ddb.query(TableName=t, IndexName="byC", KeyConditionExpression="c = :c",
                                  ExpressionAttributeValues={":c": S(f"c{k}")}, Select="COUNT")["Count"] for k in range(4))
    assert until(lambda: count() == total, 15), f"{count()} of {total} items indexed"
    d = ddb.describe_table(TableName=t)["Table"]
    assert {a["AttributeName"] for a in d["AttributeDefinitions"]} == {"pk", "c", "n"}
    # Deleting it: gone from the description and from reads.
    ddb.update_table(TableName=t, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "byC"}}])
    assert "GlobalSecondaryIndexes" not in ddb.describe_table(TableName=t)["Table"]
    assert error_of(ddb.query, TableName=t, IndexName="byC", KeyConditionExpression="c = :c",
                    ExpressionAttributeValues={":c": S("c1")})[1] == "The table does not have the specified index: byC"
    assert error_of(ddb.update_table, TableName=t, GlobalSecondaryIndexUpdates=[{"Delete": {"IndexName": "byC"}}])[0] == (
        "ResourceNotFoundException")


def test_restored_table_has_working_indexes(ddb):
    t = indexed_table(ddb)
    ddb.update_continuous_backups(TableName=t, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True})
    for i in range(30):
        ddb.put_item(TableName=t, Item={"pk": S(f"p{i % 3}"), "sk": N(i), "g": S(f"g{i % 2}"), "r": N(i), "l": N(100 - i)})
    time.sleep(1.1)
    target = t + "_r"
    ddb.restore_table_to_point_in_time(SourceTableName=t, TargetTableName=target, UseLatestRestorableTime=True)
    ddb.get_waiter("table_exists").wait(TableName=target, WaiterConfig={"Delay": 0.2, "MaxAttempts": 100})
    active = lambda: all(g["IndexStatus"] == "ACTIVE"
                         for g in ddb.describe_table(TableName=target)["Table"]["GlobalSecondaryIndexes"])
    assert until(active, 30)
    d = ddb.describe_table(TableName=target)["Table"]
    assert {g["IndexName"] for g in d["GlobalSecondaryIndexes"]} == {"byG", "byGk"}
    assert [l["IndexName"] for l in d["LocalSecondaryIndexes"]] == ["byL"]
    r = ddb.query(TableName=target, IndexName="byG", KeyConditionExpression="g = :g",
                  ExpressionAttributeValues={":g": S("g0")})
    assert [int(i["r"]["N"]) for i in r["Items"]] == list(range(0, 30, 2))
    r = ddb.query(TableName=target, IndexName="byL", KeyConditionExpression="pk = :p",
                  ExpressionAttributeValues={":p": S("p0")}, ConsistentRead=True)
    assert [int(i["l"]["N"]) for i in r["Items"]] == sorted(100 - i for i in range(0, 30, 3))


def test_one_server_reads_its_own_writes_through_indexes(ddb):
    # strata serve waits (up to 5 s) for its follower to reach the
    # writes it acknowledged before an index read, as DynamoDB Local's
    # synchronous indexes behave; no polling here.
    t = indexed_table(ddb)
    for i in range(20):
        ddb.put_item(TableName=t, Item={"pk": S(f"p{i}"), "sk": N(i), "g": S("now"), "r": N(i)})
        r = ddb.query(TableName=t, IndexName="byG", KeyConditionExpression="g = :g",
                      ExpressionAttributeValues={":g": S("now")}, Select="COUNT")
        assert r["Count"] == i + 1
    ddb.delete_item(TableName=t, Key={"pk": S("p0"), "sk": N(0)})
    assert ddb.scan(TableName=t, IndexName="byGk", Select="COUNT")["Count"] == 19


def test_writes_report_index_capacity(ddb):
    # DynamoDB Local's accounting: an entry put costs its size in units, a
    # delete 1, a move both; an index the write does not change costs 0.
    t = indexed_table(ddb)
    cap = lambda r: r["ConsumedCapacity"]
    r = ddb.put_item(TableName=t, Item={"pk": S("a"), "sk": N(1), "g": S("x"), "r": N(1), "l": N(1)},
                     ReturnConsumedCapacity="INDEXES")
    assert cap(r)["CapacityUnits"] == 4.0
    assert cap(r)["GlobalSecondaryIndexes"] == {"byG": {"CapacityUnits": 1.0}, "byGk": {"CapacityUnits": 1.0}}
    assert cap(r)["LocalSecondaryIndexes"] == {"byL": {"CapacityUnits": 1.0}}
    # g moves: each global index deletes and puts; the local index is unchanged (keys only).
    r = ddb.put_item(TableName=t, Item={"pk": S("a"), "sk": N(1), "g": S("y"), "r": N(1), "l": N(1)},
                     ReturnConsumedCapacity="TOTAL")
    assert cap(r) == {"TableName": t, "CapacityUnits": 5.0}
    r = ddb.put_item(TableName=t, Item={"pk": S("b"), "sk": N(1)}, ReturnConsumedCapacity="INDEXES")
    assert cap(r) == {"TableName": t, "CapacityUnits": 1.0, "Table": {"CapacityUnits": 1.0}}
    r = ddb.batch_write_item(RequestItems={t: [{"DeleteRequest": {"Key": {"pk": S("a"), "sk": N(1)}}}]},
                             ReturnConsumedCapacity="INDEXES")
    assert r["ConsumedCapacity"][0]["CapacityUnits"] == 4.0


def test_index_tables_cannot_be_reached_by_name(ddb):
    t = indexed_table(ddb)
    hidden = f"{t}!byG"
    code, _, _ = error_of(ddb.batch_write_item, RequestItems={hidden: [{"PutRequest": {"Item": {"g": S("x")}}}]})
    assert code in ("ValidationException", "ResourceNotFoundException")
    code, _, _ = error_of(ddb.batch_get_item, RequestItems={hidden: {"Keys": [{"g": S("x")}]}})
    assert code in ("ValidationException", "ResourceNotFoundException")
    assert error_of(ddb.get_item, TableName=hidden, Key={"g": S("x")})[0] == "ValidationException"
    assert error_of(ddb.create_table, TableName=f"{t}!other", BillingMode="PAY_PER_REQUEST",
                    AttributeDefinitions=AD(("pk", "S")), KeySchema=KS("pk"))[0] == "ValidationException"


def test_item_collection_metrics_on_tables_with_local_indexes(ddb):
    t = indexed_table(ddb)
    r = ddb.put_item(TableName=t, Item={"pk": S("a"), "sk": N(1), "l": N(1)}, ReturnItemCollectionMetrics="SIZE")
    assert r["ItemCollectionMetrics"] == {"ItemCollectionKey": {"pk": S("a")}, "SizeEstimateRangeGB": [0.0, 1.0]}
    r = ddb.update_item(TableName=t, Key={"pk": S("a"), "sk": N(1)}, UpdateExpression="SET l = :v",
                        ExpressionAttributeValues={":v": N(2)}, ReturnItemCollectionMetrics="SIZE")
    assert r["ItemCollectionMetrics"]["ItemCollectionKey"] == {"pk": S("a")}
    r = ddb.batch_write_item(RequestItems={t: [{"PutRequest": {"Item": {"pk": S("b"), "sk": N(1)}}}]},
                             ReturnItemCollectionMetrics="SIZE")
    assert r["ItemCollectionMetrics"][t][0]["ItemCollectionKey"] == {"pk": S("b")}
    assert "ItemCollectionMetrics" not in ddb.put_item(TableName=t, Item={"pk": S("a"), "sk": N(3)})
    # No local index: no item collections.
    plain = name()
    ddb.create_table(TableName=plain, BillingMode="PAY_PER_REQUEST", AttributeDefinitions=AD(("pk", "S")), KeySchema=KS("pk"))
    r = ddb.put_item(TableName=plain, Item={"pk": S("a")}, ReturnItemCollectionMetrics="SIZE")
    assert "ItemCollectionMetrics" not in r
