"""Requests DynamoDB refuses, refused the same way (the expected answers are
DynamoDB Local 3.3.0's, checked side by side), and nothing written."""
import json

from test_protocol import call

T = "DynamoDB_20120810."


def error(endpoint, op, body):
    status, _, raw = call(endpoint, T + op, body)
    j = json.loads(raw) if raw else {}
    return status, j.get("__type", "").split("#")[-1], j.get("message")


def key(pk="a", sk="1"):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def cases(table):
    return [
        ("BatchWriteItem", {"RequestItems": {table: []}},
         f"The batch write request list for a table cannot be null or empty: {table}"),
        ("GetItem", {"TableName": "a b", "Key": key()},
         "Invalid table/index name.  Table/index names must be between 3 and 255 characters long, and may contain only the characters a-z, A-Z, 0-9, '_', '-', and '.'"),
        ("DescribeTable", {"TableName": "ab"},
         "Invalid table/index name.  Table/index names must be between 3 and 255 characters long, and may contain only the characters a-z, A-Z, 0-9, '_', '-', and '.'"),
        ("DescribeTable", {"TableName": "abc\u0000"},
         "Invalid table/index name.  Table/index names must be between 3 and 255 characters long, and may contain only the characters a-z, A-Z, 0-9, '_', '-', and '.'"),
        ("GetItem", {"TableName": table, "Key": key(), "ProjectionExpression": "#a", "ExpressionAttributeNames": {"#a": ""}},
         "ExpressionAttributeNames contains invalid value: Empty attribute name for key #a"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionalOperator": "AND"},
         "ConditionalOperator cannot be used without Filter or Expected"),
        ("Scan", {"TableName": table, "ConditionalOperator": "OR"},
         "ConditionalOperator cannot be used without Filter or Expected"),
        ("PutItem", {"TableName": table, "Item": key("b"),
                     "Expected": {"s": {"Exists": True, "ComparisonOperator": "EQ", "AttributeValueList": [{"S": "x"}]}}},
         "One or more parameter values were invalid: Exists and ComparisonOperator cannot be used together for Attribute: s"),
        ("PutItem", {"TableName": table, "Item": dict(key("b"), n={"N": " 4"})},
         "A value provided cannot be converted into a number"),
        ("PutItem", {"TableName": table, "Item": dict(key("b"), x={"Q": "1"})},
         "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes"),
        ("Query", {"TableName": table, "KeyConditionExpression": "pk = :p", "FilterExpression": "attribute_exists(pk) AND sk > :s",
                   "ExpressionAttributeValues": {":p": {"S": "a"}, ":s": {"S": "0"}}},
         "Filter Expression can only contain non-primary key attributes: Primary key attribute: pk"),
        ("Query", {"TableName": table, "KeyConditions": {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}},
                   "QueryFilter": {"sk": {"ComparisonOperator": "GT", "AttributeValueList": [{"S": "0"}]}}},
         "QueryFilter can only contain non-primary key attributes: Primary key attribute: sk"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "s < :v", "ExpressionAttributeValues": {":v": {"L": []}}},
         "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: <, operand type: L"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "s BETWEEN :a AND :b",
                     "ExpressionAttributeValues": {":a": {"M": {}}, ":b": {"S": "z"}}},
         "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: BETWEEN, operand type: M"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "ATTRIBUTE_EXISTS(s)"},
         "Invalid ConditionExpression: Invalid function name; function: ATTRIBUTE_EXISTS"),
        ("UpdateItem", {"TableName": table, "Key": key(), "UpdateExpression": "SET l = LIST_APPEND(l, :v)", "ExpressionAttributeValues": {":v": {"L": []}}},
         "Invalid UpdateExpression: Invalid function name; function: LIST_APPEND"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "attribute_not_exists(s) AND ((attribute_not_exists(q)))"},
         "Invalid ConditionExpression: The expression has redundant parentheses;"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "contains(s, s)"},
         "Invalid ConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: contains, first operand: [s]"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "size(:v) > :n",
                     "ExpressionAttributeValues": {":v": {"N": "3"}, ":n": {"N": "1"}}},
         "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: size, operand type: N"),
        ("Query", {"TableName": table, "KeyConditionExpression": "pk = :p AND :s <> sk",
                   "ExpressionAttributeValues": {":p": {"S": "a"}, ":s": {"S": "1"}}},
         "Invalid operator used in KeyConditionExpression: <>"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "attribute_type(s, S)"},
         "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: "
         "{BOOL,HD,DECIMALSET,INTSET,DOUBLE,L,DICT,S,FS,M,N,NS,DECIMAL,SS,DOUBLESET,BS,NULL,FLOAT,B,HDS,INT}"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "attribute_type(s, :t)",
                     "ExpressionAttributeValues": {":t": {"N": "1"}}},
         "Invalid ConditionExpression: Incorrect operand type for operator or function; operator or function: attribute_type, operand type: N"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "attribute_type(s, :t)",
                     "ExpressionAttributeValues": {":t": {"S": "Q"}}},
         "Invalid ConditionExpression: Invalid attribute type name found; type: Q, valid types: {N,BS,L,B,NULL,M,S,SS,NS,BOOL}"),
        ("UpdateItem", {"TableName": table, "Key": key(), "UpdateExpression": "SET n = if_not_exists(n, :a + :b)",
                        "ExpressionAttributeValues": {":a": {"N": "1"}, ":b": {"N": "2"}}},
         'Invalid UpdateExpression: Syntax error; token: "+", near: ":a + :b"'),
        ("Scan", {"TableName": table, "FilterExpression": " AND ".join(["n = :z"] * 151), "ExpressionAttributeValues": {":z": {"N": "0"}}},
         "Invalid FilterExpression: The expression contains too many operators; operator count: 301"),
        ("Scan", {"TableName": table, "FilterExpression": "NOT " * 301 + "n = :z", "ExpressionAttributeValues": {":z": {"N": "0"}}},
         "Invalid FilterExpression: The expression contains too many operators; operator count: 301"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ReturnItemCollectionMetrics": "BOGUS"},
         "1 validation error detected: Value 'BOGUS' at 'returnItemCollectionMetrics' failed to satisfy constraint: Member must satisfy enum value set: [SIZE, NONE]"),
        # Found by the differential test (tests/differential), in DynamoDB Local's words.
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "a = :nope AND"},
         'Invalid ConditionExpression: Syntax error; token: "<EOF>", near: "AND"'),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "a = :nope"},
         "Invalid ConditionExpression: An expression attribute value used in expression is not defined; attribute value: :nope"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "a <= a"},
         "Invalid ConditionExpression: The first operand must be distinct from the remaining operands for this operator or function; operator: <=, first operand: [a]"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "a BETWEEN :s AND :n",
                     "ExpressionAttributeValues": {":s": {"S": "x"}, ":n": {"N": "1"}}},
         "Invalid ConditionExpression: The BETWEEN operator requires same data type for lower and upper bounds; lower bound operand: AttributeValue: {S:x}, upper bound operand: AttributeValue: {N:1}"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ConditionExpression": "begins_with(a, :s) = :s",
                     "ExpressionAttributeValues": {":s": {"S": "x"}}},
         "Invalid ConditionExpression: The function is not allowed to be used this way in an expression; function: begins_with"),
        ("UpdateItem", {"TableName": table, "Key": key(), "UpdateExpression": "ADD a :s DELETE b :n",
                        "ExpressionAttributeValues": {":s": {"S": "x"}, ":n": {"N": "1"}}},
         "Invalid UpdateExpression: Incorrect operand type for operator or function; operator: DELETE, operand type: NUMBER, typeSet: ALLOWED_FOR_DELETE_OPERAND"),
        ("UpdateItem", {"TableName": table, "Key": key(), "UpdateExpression": "SET a = :s", "ConditionExpression": "sk[0] = :s",
                        "ExpressionAttributeValues": {":s": {"S": "x"}}},
         "Key attributes must be scalars; list random access '[]' and map lookup '.' are not allowed: Key: sk"),
        ("UpdateItem", {"TableName": table, "Key": key(), "UpdateExpression": "REMOVE nope.x"},
         "The document path provided in the update expression is invalid for update"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ExpressionAttributeValues": {":u": {"S": "x"}}},
         "ExpressionAttributeValues can only be specified when using expressions: ConditionExpression is null"),
        ("PutItem", {"TableName": table, "Item": key("b"), "ReturnValues": "ALL_NEW"}, "Return values set to invalid value"),
        # The legacy parameters' operand types.
        ("PutItem", {"TableName": table, "Item": key("b"), "Expected": {"a": {"ComparisonOperator": "GE", "AttributeValueList": [{"L": []}]}}},
         "One or more parameter values were invalid: ComparisonOperator GE is not valid for L AttributeValue type"),
        ("Scan", {"TableName": table, "ScanFilter": {"a": {"ComparisonOperator": "IN", "AttributeValueList": [{"S": "a"}, {"N": "1"}]}}},
         "One or more parameter values were invalid: AttributeValues inside AttributeValueList must be of same type"),
        ("Scan", {"TableName": table, "ScanFilter": {"a": {"ComparisonOperator": "NULL"}}, "ConditionalOperator": "OR"},
         "ConditionalOperator can only be used when Filter or Expected has two or more elements"),
        ("PutItem", {"TableName": table, "Item": key("b"), "Expected": {"a": {"ComparisonOperator": "NE"}, "b": {"Exists": False}}},
         "One or more parameter values were invalid: Value or AttributeValueList must be used with ComparisonOperator: NE for Attribute: a"),
        ("UpdateItem", {"TableName": table, "Key": key(), "AttributeUpdates": {"a": {"Action": "ADD", "Value": {"S": "x"}}}},
         "One or more parameter values were invalid: ADD action is not supported for the type STRING"),
        ("GetItem", {"TableName": table, "Key": key(), "ProjectionExpression": ".".join(["a"] * 33)},
         "Invalid ProjectionExpression: The document path has too many nesting levels; nesting levels: 33"),
        ("GetItem", {"TableName": table, "Key": key(), "ProjectionExpression": "l[2147483648]"},
         "Invalid ProjectionExpression: List index is not within the allowable range; index: [2147483648]"),
        ("PutItem", {"TableName": table, "Item": dict(key("b"), **{"x" * 65536: {"S": "v"}})},
         "1 validation error detected: Attribute name is too large, must be less than 65536 bytes"),
        ("Scan", {"TableName": table, "AttributesToGet": []},
         "1 validation error detected: Value '[]' at 'attributesToGet' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ]


def test_refused_as_dynamodb_refuses_and_nothing_written(endpoint, ddb, table):
    for op, body, message in cases(table):
        assert error(endpoint, op, body) == (400, "ValidationException", message), (op, body)
    assert ddb.scan(TableName=table)["Count"] == 0


def test_what_dynamodb_accepts_still_works(endpoint, ddb, table):
    status, _, _ = call(endpoint, T + "PutItem", {"TableName": table, "Item": dict(key(), x={"S": "y", "Q": 1}),
                                                    "ReturnItemCollectionMetrics": "SIZE"})
    assert status == 200
    status, _, _ = call(endpoint, T + "PutItem", {"TableName": table, "Item": key("c"),
                                                    "ConditionExpression": "(attribute_not_exists(s)) AND (attribute_not_exists(q))"})
    assert status == 200
    assert ddb.get_item(TableName=table, Key=key())["Item"]["x"] == {"S": "y"}
    # size() of a value, and a key condition with the value first.
    status, _, _ = call(endpoint, T + "PutItem", {"TableName": table, "Item": key("d"), "ConditionExpression": "size(:v) = :n",
                                                    "ExpressionAttributeValues": {":v": {"S": "abc"}, ":n": {"N": "3"}}})
    assert status == 200
    got = ddb.query(TableName=table, KeyConditionExpression=":p = pk AND :s >= sk",
                    ExpressionAttributeValues={":p": {"S": "d"}, ":s": {"S": "1"}})
    assert got["Count"] == 1
    # A Scan may filter on key attributes; only a Query may not.
    assert ddb.scan(TableName=table, FilterExpression="sk = :s", ExpressionAttributeValues={":s": {"S": "1"}})["Count"] == 3
    # attribute_type of a value; 300 operators are allowed.
    got = ddb.scan(TableName=table, FilterExpression="attribute_type(:v, :t)",
                   ExpressionAttributeValues={":v": {"S": "x"}, ":t": {"S": "S"}})
    assert got["Count"] == 3
    got = ddb.scan(TableName=table, FilterExpression=" AND ".join(["sk = :s"] * 150),
                   ExpressionAttributeValues={":s": {"S": "1"}})
    assert got["Count"] == 3
    got = ddb.scan(TableName=table, FilterExpression="NOT NOT attribute_type(x, :t)", ExpressionAttributeValues={":t": {"S": "S"}})
    assert got["Count"] == 1
    # Expected may give a comparison's one value as Value.
    status, _, _ = call(endpoint, T + "PutItem", {"TableName": table, "Item": dict(key(), x={"S": "y"}),
                                                    "Expected": {"x": {"ComparisonOperator": "EQ", "Value": {"S": "y"}}}})
    assert status == 200
    # KeyConditions may come with a FilterExpression and a ProjectionExpression.
    got = ddb.query(TableName=table, KeyConditions={"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [{"S": "a"}]}},
                    FilterExpression="attribute_exists(x)", ProjectionExpression="x")
    assert got["Items"] == [{"x": {"S": "y"}}]
    # An update that only removes creates no item.
    assert ddb.update_item(TableName=table, Key=key("gone"), UpdateExpression="REMOVE x", ReturnValues="ALL_NEW").get("Attributes") is None
    assert "Item" not in ddb.get_item(TableName=table, Key=key("gone"), ConsistentRead=True)


def test_ttl_tags_and_segments_as_dynamodb_checks_them(endpoint, ddb, table):
    # The raw calls are signed for eu-west-3: the ARN names that region.
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"].replace(":us-east-1:", ":eu-west-3:")
    ttl = lambda enabled, name: error(endpoint, "UpdateTimeToLive", {
        "TableName": table, "TimeToLiveSpecification": {"Enabled": enabled, "AttributeName": name}})
    assert ttl(True, "exp")[0] == 200
    assert ttl(False, "other") == (400, "ValidationException", "TimeToLive is active on a different AttributeName")
    assert ttl(True, "exp2") == (400, "ValidationException", "TimeToLive is active on a different AttributeName")
    assert ttl(True, "x" * 256)[2].startswith("Names of key attributes and attributes projected into an index")
    assert ttl(False, "exp")[0] == 200
    tag = lambda tags: error(endpoint, "TagResource", {"ResourceArn": arn, "Tags": tags})
    assert tag([])[1] == "ValidationException"
    assert tag([{"Key": "aws:x", "Value": "v"}])[1] == "ValidationException"
    assert tag([{"Key": "a*b", "Value": "v"}])[1] == "ValidationException"
    assert tag([{"Key": f"k{i}", "Value": "v"} for i in range(51)])[1] == "LimitExceededException"
    # Lengths count characters, not bytes.
    assert tag([{"Key": "é" * 128, "Value": "é" * 256}])[0] == 200
    assert tag([{"Key": "é" * 129, "Value": "v"}])[1] == "ValidationException"
    assert error(endpoint, "UntagResource", {"ResourceArn": arn, "TagKeys": []})[1] == "ValidationException"
    # A resource of another region is invalid; of another account, denied.
    assert error(endpoint, "TagResource", {"ResourceArn": arn.replace(":eu-west-3:", ":eu-west-1:"),
                                  "Tags": [{"Key": "a", "Value": "b"}]})[1] == "ValidationException"
    assert error(endpoint, "ListTagsOfResource", {"ResourceArn": arn.replace(":000000000000:", ":123456789012:")})[1] \
        == "AccessDeniedException"
    # A parallel Scan's start key must lie within its segment.
    keys = [{"pk": {"S": f"p{i}"}, "sk": {"S": "s"}} for i in range(40)]
    for k in keys:
        ddb.put_item(TableName=table, Item=k)
    first = ddb.scan(TableName=table, Segment=0, TotalSegments=2, Limit=1)
    got = error(endpoint, "Scan", {"TableName": table, "Segment": 1, "TotalSegments": 2,
                                   "ExclusiveStartKey": first["LastEvaluatedKey"]})
    assert got == (400, "ValidationException", "Exclusive start key must lie within the segment")
