"""Item operations, expressions, return values and validation through boto3."""
from decimal import Decimal

from helpers import N, S, error_of


def key(pk, sk):
    return {"pk": S(pk), "sk": S(sk)}


def test_every_type_round_trips_and_numbers_are_canonical(ddb, table):
    item = {
        **key("a", "1"),
        "s": S("héllo"), "n": N("1.50"), "big": N("123456789012345678901234567890.12345678"),
        "tiny": N("1E-130"), "huge": N("9.9999999999999999999999999999999999999E+125"),
        "b": {"B": b"\x00\x01\xff"}, "t": {"BOOL": True}, "z": {"NULL": True}, "empty": S(""),
        "m": {"M": {"inner": {"L": [N(1), S("x"), {"M": {}}]}}},
        "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1", "2.5"]}, "bs": {"BS": [b"x", b"y"]},
    }
    ddb.put_item(TableName=table, Item=item)
    got = ddb.get_item(TableName=table, Key=key("a", "1"), ConsistentRead=True)["Item"]
    assert got["n"] == N("1.5")
    assert got["big"] == N("123456789012345678901234567890.12345678")
    assert got["huge"]["N"].startswith("99999999999999999999999999999999999999") and len(got["huge"]["N"]) == 126
    assert got["b"] == {"B": b"\x00\x01\xff"}
    assert sorted(got["ss"]["SS"]) == ["a", "b"] and sorted(got["ns"]["NS"]) == ["1", "2.5"]
    assert got["m"] == item["m"] and got["empty"] == S("")
    assert "Item" not in ddb.get_item(TableName=table, Key=key("a", "nope"))


def test_put_and_delete_return_old_values(ddb, table):
    ddb.put_item(TableName=table, Item={**key("a", "1"), "v": N(1)})
    out = ddb.put_item(TableName=table, Item={**key("a", "1"), "v": N(2)}, ReturnValues="ALL_OLD")
    assert out["Attributes"]["v"] == N(1)
    out = ddb.delete_item(TableName=table, Key=key("a", "1"), ReturnValues="ALL_OLD")
    assert out["Attributes"]["v"] == N(2)
    assert "Attributes" not in ddb.delete_item(TableName=table, Key=key("a", "1"), ReturnValues="ALL_OLD")
    code, msg, _ = error_of(ddb.put_item, TableName=table, Item=key("a", "1"), ReturnValues="ALL_NEW")
    assert code == "ValidationException"


def test_conditions(ddb, table):
    ddb.put_item(TableName=table, Item={**key("a", "1"), "n": N(5), "s": S("hello"), "tags": {"SS": ["x", "y"]}, "l": {"L": [S("p")]}})
    ok = [
        ("attribute_exists(n) AND n = :five", {":five": N(5)}),
        ("n BETWEEN :one AND :ten", {":one": N(1), ":ten": N(10)}),
        ("n IN (:one, :five)", {":one": N(1), ":five": N(5)}),
        ("begins_with(s, :he) AND contains(s, :ll)", {":he": S("he"), ":ll": S("ll")}),
        ("contains(tags, :x) AND contains(l, :p)", {":x": S("x"), ":p": S("p")}),
        ("size(s) = :five AND size(tags) < :five", {":five": N(5)}),
        ("attribute_type(s, :S)", {":S": S("S")}),
        ("NOT n > :ten OR n = :one", {":ten": N(10), ":one": N(1)}),
        ("absent_attr <> :x", {":x": S("x")}),
        ("n = :one OR n = :five AND s = :hello", {":one": N(1), ":five": N(5), ":hello": S("hello")}),
    ]
    for cond, values in ok:
        ddb.put_item(TableName=table, Item={**key("a", "1"), "n": N(5), "s": S("hello"), "tags": {"SS": ["x", "y"]}, "l": {"L": [S("p")]}},
                     ConditionExpression=cond, ExpressionAttributeValues=values)
    # AND binds tighter than OR: "false OR (true AND false)" is false.
    code, _, resp = error_of(
        ddb.put_item, TableName=table, Item=key("a", "1"),
        ConditionExpression="n = :one OR n = :five AND s = :nope",
        ExpressionAttributeValues={":one": N(1), ":five": N(5), ":nope": S("nope")},
        ReturnValuesOnConditionCheckFailure="ALL_OLD",
    )
    assert code == "ConditionalCheckFailedException"
    assert resp["Item"]["n"] == N(5), "ALL_OLD on failure returns the item"
    code, _, resp = error_of(ddb.delete_item, TableName=table, Key=key("a", "1"), ConditionExpression="attribute_not_exists(pk)")
    assert code == "ConditionalCheckFailedException" and "Item" not in resp
    # Put-if-absent.
    ddb.put_item(TableName=table, Item=key("b", "1"), ConditionExpression="attribute_not_exists(pk)")
    code, _, _ = error_of(ddb.put_item, TableName=table, Item=key("b", "1"), ConditionExpression="attribute_not_exists(pk)")
    assert code == "ConditionalCheckFailedException"


def test_update_expressions(ddb, table):
    k = key("u", "1")
    out = ddb.update_item(
        TableName=table, Key=k,
        UpdateExpression="SET n = if_not_exists(n, :zero) + :one, l = list_append(if_not_exists(l, :empty), :ab), m = :m ADD c :two, tags :t",
        ExpressionAttributeValues={":zero": N(0), ":one": N(1), ":empty": {"L": []}, ":ab": {"L": [S("a"), S("b"), S("c")]},
                                   ":m": {"M": {"x": N(1), "y": {"M": {"z": S("deep")}}}}, ":two": N(2), ":t": {"SS": ["p", "q"]}},
        ReturnValues="ALL_NEW",
    )["Attributes"]
    assert out["n"] == N(1) and out["c"] == N(2) and out["l"]["L"] == [S("a"), S("b"), S("c")]
    out = ddb.update_item(
        TableName=table, Key=k,
        UpdateExpression="SET m.y.z = :v, n = n - :one REMOVE l[0], l[2] DELETE tags :p ADD c :two",
        ExpressionAttributeValues={":v": S("changed"), ":one": N(1), ":p": {"SS": ["p"]}, ":two": N(2)},
        ReturnValues="UPDATED_NEW",
    )["Attributes"]
    # Only the updated paths, nested in their parents (what DynamoDB returns).
    assert out["m"] == {"M": {"y": {"M": {"z": S("changed")}}}}
    assert out["n"] == N(0) and out["c"] == N(4) and out["tags"] == {"SS": ["q"]}
    # REMOVE l[0], l[2] of [a, b, c]: the new l[0] is b, and l[2] is gone.
    assert out["l"] == {"L": [S("b")]}
    item = ddb.get_item(TableName=table, Key=k, ConsistentRead=True)["Item"]
    assert item["l"]["L"] == [S("b")]
    old = ddb.update_item(TableName=table, Key=k, UpdateExpression="REMOVE m.x", ReturnValues="UPDATED_OLD")["Attributes"]
    assert old == {"m": {"M": {"x": N(1)}}}
    r = ddb.update_item(TableName=table, Key=k, UpdateExpression="SET l[100] = :v", ExpressionAttributeValues={":v": S("z")},
                        ReturnValues="UPDATED_NEW")
    assert "Attributes" not in r, "an out-of-range SET appends: nothing is at l[100]"
    # Several out-of-range SETs append in index order, not action order.
    r = ddb.update_item(TableName=table, Key=k, UpdateExpression="SET l[10] = :a, l[5] = :b, l[7] = :c",
                        ExpressionAttributeValues={":a": S("a"), ":b": S("b"), ":c": S("c")}, ReturnValues="ALL_NEW")
    assert r["Attributes"]["l"]["L"][-3:] == [S("b"), S("c"), S("a")]
    old = ddb.update_item(TableName=table, Key=k, UpdateExpression="SET #n = :v", ExpressionAttributeNames={"#n": "name"},
                          ExpressionAttributeValues={":v": S("x")}, ReturnValues="ALL_OLD")["Attributes"]
    assert "name" not in old and old["n"] == N(0)


def test_update_errors(ddb, table):
    k = key("e", "1")
    ddb.put_item(TableName=table, Item={**k, "s": S("text"), "n": N(1)})
    cases = [
        ("SET pk = :v", {":v": S("x")}, "part of the key"),
        ("SET n = s + :v", {":v": N(1)}, "incorrect data type"),
        ("SET q = nope + :v", {":v": N(1)}, "does not exist"),
        ("ADD s :v", {":v": N(1)}, "incorrect data type"),
        ("SET a = :v, a = :v", {":v": N(1)}, "overlap"),
        ("SET n = :v SET s = :v", {":v": N(1)}, "only be used once"),
        ("SET m.x = :v", {":v": N(1)}, "document path provided in the update expression is invalid"),
    ]
    for expr, values, fragment in cases:
        code, msg, _ = error_of(ddb.update_item, TableName=table, Key=k, UpdateExpression=expr, ExpressionAttributeValues=values)
        assert code == "ValidationException" and fragment in msg, (expr, msg)
    assert ddb.get_item(TableName=table, Key=k, ConsistentRead=True)["Item"] == {**k, "s": S("text"), "n": N(1)}, "failed updates change nothing"


def test_validation_errors_leave_data_untouched(ddb, table):
    ddb.put_item(TableName=table, Item={**key("v", "1"), "keep": S("me")})
    bad_items = [
        ({"pk": S("v")}, "required keys" ),
        ({"pk": N(1), "sk": S("1")}, "Type mismatch"),
        ({"pk": S(""), "sk": S("1")}, "empty string"),
        ({**key("v", "1"), "x": {"SS": []}}, "may not be empty"),
        ({**key("v", "1"), "x": {"NS": ["1", "1.0"]}}, "duplicates"),
        ({**key("v", "1"), "x": N("1e126")}, "overflow"),
        ({**key("v", "1"), "x": N("1e-131")}, "underflow"),
        ({**key("v", "1"), "x": N("12345678901234567890123456789012345678901")}, "38 significant digits"),
        ({**key("v", "1"), "x": S("x" * (400 * 1024))}, "maximum allowed size"),
    ]
    for item, fragment in bad_items:
        code, msg, _ = error_of(ddb.put_item, TableName=table, Item=item)
        assert code == "ValidationException", (item.keys(), code, msg)
        assert fragment.lower() in msg.lower() or fragment == "required keys", (fragment, msg)
    deep = S("x")
    for _ in range(33):
        deep = {"L": [deep]}
    code, msg, _ = error_of(ddb.put_item, TableName=table, Item={**key("v", "1"), "d": deep})
    assert code == "ValidationException" and "Nesting" in msg
    for kwargs, fragment in [
        ({"ConditionExpression": "status = :v", "ExpressionAttributeValues": {":v": S("x")}}, "reserved keyword; reserved keyword: status"),
        ({"ConditionExpression": "a = :v", "ExpressionAttributeValues": {":v": S("x"), ":w": S("y")}}, "unused in expressions: keys: {:w}"),
        ({"ConditionExpression": "#a = :v", "ExpressionAttributeValues": {":v": S("x")}}, "not defined; attribute name: #a"),
        ({"ConditionExpression": "a = :nope", "ExpressionAttributeValues": {":v": S("x")}}, "not defined; attribute value: :nope"),
        ({"ConditionExpression": "a = = :v", "ExpressionAttributeValues": {":v": S("x")}}, "Syntax error"),
        ({"ConditionExpression": "frob(a)"}, "Invalid function name"),
        ({"ConditionExpression": "a BETWEEN :b AND :a", "ExpressionAttributeValues": {":a": N(1), ":b": N(5)}}, "BETWEEN operator requires upper bound"),
        ({"ConditionExpression": "a = :v", "ExpressionAttributeValues": {":v": S("x")}, "Expected": {"a": {"Exists": False}}}, "Can not use both expression and non-expression"),
        ({"ExpressionAttributeValues": {":v": S("x")}}, "can only be specified when using expressions"),
        ({"ConditionExpression": "a = :v" + " " * 4100, "ExpressionAttributeValues": {":v": S("x")}}, "Expression size has exceeded"),
    ]:
        code, msg, _ = error_of(ddb.put_item, TableName=table, Item=key("v", "1"), **kwargs)
        assert code == "ValidationException" and fragment in msg, (kwargs, msg)
    assert ddb.get_item(TableName=table, Key=key("v", "1"), ConsistentRead=True)["Item"]["keep"] == S("me")
    code, msg, _ = error_of(ddb.get_item, TableName=table, Key={"pk": S("v")})
    assert code == "ValidationException"
    code, _, _ = error_of(ddb.get_item, TableName="no_such_table", Key=key("a", "b"))
    assert code == "ResourceNotFoundException"


def test_legacy_parameters(ddb, table):
    k = key("l", "1")
    ddb.put_item(TableName=table, Item={**k, "n": N(1), "s": S("x")}, Expected={"pk": {"Exists": False}})
    code, _, _ = error_of(ddb.put_item, TableName=table, Item=k, Expected={"pk": {"Exists": False}})
    assert code == "ConditionalCheckFailedException"
    ddb.update_item(TableName=table, Key=k, AttributeUpdates={"n": {"Action": "ADD", "Value": N(4)}, "s": {"Action": "DELETE"}, "t": {"Value": S("new")}},
                    Expected={"n": {"ComparisonOperator": "EQ", "AttributeValueList": [N(1)]}})
    got = ddb.get_item(TableName=table, Key=k, AttributesToGet=["n", "t", "s"], ConsistentRead=True)["Item"]
    assert got == {"n": N(5), "t": S("new")}
    code, _, _ = error_of(ddb.delete_item, TableName=table, Key=k, Expected={"n": {"Value": N(1)}})
    assert code == "ConditionalCheckFailedException"
    ddb.delete_item(TableName=table, Key=k, Expected={"n": {"ComparisonOperator": "GT", "AttributeValueList": [N(1)]}, "zz": {"ComparisonOperator": "NULL"}},
                    ConditionalOperator="AND")
    assert "Item" not in ddb.get_item(TableName=table, Key=k, ConsistentRead=True)


def test_consumed_capacity(ddb, table):
    out = ddb.put_item(TableName=table, Item={**key("c", "1"), "blob": S("x" * 1500)}, ReturnConsumedCapacity="TOTAL")
    assert out["ConsumedCapacity"] == {"TableName": table, "CapacityUnits": 2.0}
    out = ddb.get_item(TableName=table, Key=key("c", "1"), ReturnConsumedCapacity="TOTAL")
    assert out["ConsumedCapacity"]["CapacityUnits"] == 0.5
    out = ddb.get_item(TableName=table, Key=key("c", "1"), ConsistentRead=True, ReturnConsumedCapacity="INDEXES")
    assert out["ConsumedCapacity"]["CapacityUnits"] == 1.0 and out["ConsumedCapacity"]["Table"]["CapacityUnits"] == 1.0


def test_resource_api_works_unchanged(resource, table):
    t = resource.Table(table)
    t.put_item(Item={"pk": "r", "sk": "1", "price": Decimal("9.99"), "tags": {"a", "b"}, "doc": {"nested": [1, "two"]}})
    got = t.get_item(Key={"pk": "r", "sk": "1"}, ConsistentRead=True)["Item"]
    assert got["price"] == Decimal("9.99") and got["tags"] == {"a", "b"} and got["doc"] == {"nested": [Decimal(1), "two"]}
    with t.batch_writer() as w:
        for i in range(60):
            w.put_item(Item={"pk": "batch", "sk": f"{i:03}", "i": i})
    from boto3.dynamodb.conditions import Key, Attr
    r = t.query(KeyConditionExpression=Key("pk").eq("batch") & Key("sk").between("010", "019"), FilterExpression=Attr("i").gte(15))
    assert [x["i"] for x in r["Items"]] == [15, 16, 17, 18, 19] and r["ScannedCount"] == 10
