"""Query, Scan and the batch operations through boto3."""
from conftest import new_table
from helpers import N, S, error_of


def fill(ddb, table, pk, count, pad=0):
    for i in range(count):
        item = {"pk": S(pk), "sk": N(i), "even": {"BOOL": i % 2 == 0}}
        if pad:
            item["pad"] = S("x" * pad)
        ddb.put_item(TableName=table, Item=item)


def test_query_orders_pages_and_filters(ddb, ntable):
    fill(ddb, ntable, "q", 25)
    fill(ddb, ntable, "other", 3)
    items, start, pages = [], None, 0
    while True:
        kwargs = dict(TableName=ntable, KeyConditionExpression="pk = :p AND sk >= :lo", ExpressionAttributeValues={":p": S("q"), ":lo": N(5)}, Limit=7)
        if start:
            kwargs["ExclusiveStartKey"] = start
        r = ddb.query(**kwargs)
        items += r["Items"]
        pages += 1
        start = r.get("LastEvaluatedKey")
        if not start:
            break
    assert [int(i["sk"]["N"]) for i in items] == list(range(5, 25)) and pages == 3
    r = ddb.query(TableName=ntable, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("q"), ":t": {"BOOL": True}},
                  FilterExpression="even = :t", ScanIndexForward=False, Limit=10)
    assert r["ScannedCount"] == 10 and r["Count"] == 5
    assert [int(i["sk"]["N"]) for i in r["Items"]] == [24, 22, 20, 18, 16]
    r = ddb.query(TableName=ntable, KeyConditionExpression="pk = :p AND sk BETWEEN :a AND :b", ExpressionAttributeValues={":p": S("q"), ":a": N(3), ":b": N(6)},
                  Select="COUNT")
    assert r["Count"] == 4 and "Items" not in r
    r = ddb.query(TableName=ntable, KeyConditionExpression="#k = :p", ExpressionAttributeNames={"#k": "pk", "#e": "even"},
                  ExpressionAttributeValues={":p": S("other")}, ProjectionExpression="#e")
    assert r["Items"] == [{"even": {"BOOL": True}}, {"even": {"BOOL": False}}, {"even": {"BOOL": True}}]
    r = ddb.query(TableName=ntable, KeyConditions={"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("q")]},
                                                  "sk": {"ComparisonOperator": "LT", "AttributeValueList": [N(3)]}},
                  QueryFilter={"even": {"ComparisonOperator": "EQ", "AttributeValueList": [{"BOOL": True}]}})
    assert [int(i["sk"]["N"]) for i in r["Items"]] == [0, 2]
    total = sum(p["Count"] for p in ddb.get_paginator("query").paginate(
        TableName=ntable, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("q")}, PaginationConfig={"PageSize": 4}))
    assert total == 25


def test_query_begins_with_and_key_condition_errors(ddb, table):
    for sk in ["a#1", "a#2", "b#1", "a", "ab"]:
        ddb.put_item(TableName=table, Item={"pk": S("p"), "sk": S(sk)})
    r = ddb.query(TableName=table, KeyConditionExpression="pk = :p AND begins_with(sk, :a)", ExpressionAttributeValues={":p": S("p"), ":a": S("a#")})
    assert [i["sk"]["S"] for i in r["Items"]] == ["a#1", "a#2"]
    for expr, values in [
        ("sk = :a", {":a": S("a")}),
        ("pk = :p OR sk = :a", {":p": S("p"), ":a": S("a")}),
        ("pk > :p", {":p": S("p")}),
        ("pk = :p AND other = :a", {":p": S("p"), ":a": S("a")}),
        ("pk = :p AND sk = :n", {":p": S("p"), ":n": N(1)}),
        ("pk = :p AND sk <> :a", {":p": S("p"), ":a": S("a")}),
    ]:
        code, msg, _ = error_of(ddb.query, TableName=table, KeyConditionExpression=expr, ExpressionAttributeValues=values)
        assert code == "ValidationException", (expr, msg)
    code, _, _ = error_of(ddb.query, TableName=table, IndexName="gsi1", KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("p")})
    assert code == "ValidationException"
    for conds in [
        {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p")]}, "sk": {"ComparisonOperator": "NE", "AttributeValueList": [S("a")]}},
        {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [S("p")]}, "sk": {"ComparisonOperator": "BETWEEN", "AttributeValueList": [S("z"), S("a")]}},
    ]:
        code, msg, _ = error_of(ddb.query, TableName=table, KeyConditions=conds)
        assert code == "ValidationException", msg
    code, msg, _ = error_of(ddb.query, TableName=table, KeyConditionExpression="pk = :p AND sk < :m", ExpressionAttributeValues={":p": S("p"), ":m": S("b")},
                            ExclusiveStartKey={"pk": S("p"), "sk": S("z")})
    assert code == "ValidationException" and "outside query boundaries" in msg


def test_scan_segments_cover_the_table_once(ddb, ntable):
    for p in range(10):
        fill(ddb, ntable, f"p{p}", 5)
    seen = []
    for seg in range(3):
        for page in ddb.get_paginator("scan").paginate(TableName=ntable, Segment=seg, TotalSegments=3, PaginationConfig={"PageSize": 4}):
            seen += [(i["pk"]["S"], i["sk"]["N"]) for i in page["Items"]]
    assert len(seen) == 50 and len(set(seen)) == 50
    r = ddb.scan(TableName=ntable, ScanFilter={"sk": {"ComparisonOperator": "GE", "AttributeValueList": [N(3)]}}, ConsistentRead=True)
    assert r["Count"] == 20 and r["ScannedCount"] == 50
    code, msg, _ = error_of(ddb.scan, TableName=ntable, Segment=3, TotalSegments=3)
    assert code == "ValidationException"


def test_pages_stop_at_one_megabyte(ddb, ntable):
    fill(ddb, ntable, "big", 30, pad=100_000)  # ~3 MB
    r = ddb.scan(TableName=ntable)
    assert "LastEvaluatedKey" in r and 5 <= r["Count"] <= 12
    r = ddb.query(TableName=ntable, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("big")})
    assert "LastEvaluatedKey" in r and r["Count"] < 30
    assert sum(p["Count"] for p in ddb.get_paginator("scan").paginate(TableName=ntable)) == 30


def test_batch_write_and_get(ddb, table):
    puts = [{"PutRequest": {"Item": {"pk": S("b"), "sk": S(str(i)), "v": N(i)}}} for i in range(25)]
    assert ddb.batch_write_item(RequestItems={table: puts})["UnprocessedItems"] == {}
    keys = [{"pk": S("b"), "sk": S(str(i))} for i in range(25)] + [{"pk": S("b"), "sk": S("missing")}]
    r = ddb.batch_get_item(RequestItems={table: {"Keys": keys, "ProjectionExpression": "v", "ConsistentRead": True}})
    assert sorted(int(i["v"]["N"]) for i in r["Responses"][table]) == list(range(25)) and r["UnprocessedKeys"] == {}
    deletes = [{"DeleteRequest": {"Key": {"pk": S("b"), "sk": S(str(i))}}} for i in range(10)]
    ddb.batch_write_item(RequestItems={table: deletes})
    assert ddb.query(TableName=table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": S("b")}, ConsistentRead=True)["Count"] == 15
    code, msg, _ = error_of(ddb.batch_write_item, RequestItems={table: puts + puts[:1]})
    assert code == "ValidationException"
    code, msg, _ = error_of(ddb.batch_write_item, RequestItems={table: puts[:2] + puts[:1]})
    assert code == "ValidationException" and "duplicates" in msg
    code, msg, _ = error_of(ddb.batch_get_item, RequestItems={table: {"Keys": keys[:2] + keys[:1]}})
    assert code == "ValidationException" and "duplicates" in msg
    code, msg, _ = error_of(ddb.batch_get_item, RequestItems={table: {"Keys": [{"pk": S("b"), "sk": S(str(i))} for i in range(101)]}})
    assert code == "ValidationException"
    # A bad item anywhere in the batch writes nothing.
    bad = [{"PutRequest": {"Item": {"pk": S("bad"), "sk": S("1")}}}, {"PutRequest": {"Item": {"pk": S("bad")}}}]
    code, _, _ = error_of(ddb.batch_write_item, RequestItems={table: bad})
    assert code == "ValidationException"
    assert "Item" not in ddb.get_item(TableName=table, Key={"pk": S("bad"), "sk": S("1")}, ConsistentRead=True)


def test_batch_across_tables(ddb):
    a, b = new_table(ddb, range_type=None), new_table(ddb, range_type=None)
    ddb.batch_write_item(RequestItems={a: [{"PutRequest": {"Item": {"pk": S("1")}}}], b: [{"PutRequest": {"Item": {"pk": S("2")}}}]})
    r = ddb.batch_get_item(RequestItems={a: {"Keys": [{"pk": S("1")}]}, b: {"Keys": [{"pk": S("2")}]}})
    assert r["Responses"][a] == [{"pk": S("1")}] and r["Responses"][b] == [{"pk": S("2")}]
