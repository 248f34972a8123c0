"""PartiQL through boto3: ExecuteStatement and BatchExecuteStatement, with the
answers DynamoDB Local 3.3.0 gives for the same statements."""
import uuid

from helpers import N, S, error_of


def run(ddb, statement, *params, **kwargs):
    if params:
        kwargs["Parameters"] = list(params)
    return ddb.execute_statement(Statement=statement, **kwargs)


def test_insert_select_update_delete(ddb, ntable):
    t = f'"{ntable}"'
    assert run(ddb, f"INSERT INTO {t} VALUE {{'pk': 'a', 'sk': 1, 'n': 5, 'l': [1, 2], 'm': {{'x': 'y'}}, "
                    f"'ss': <<'p', 'q'>>, 'b': true, 'z': null, 'it''s': 'o''k'}}")["Items"] == []
    run(ddb, f"INSERT INTO {ntable} VALUE {{'pk': ?, 'sk': ?, 'n': ?}}", S("a"), N(2), N(7))
    run(ddb, f"insert into {t} value {{'pk': 'a', 'sk': 3, 'bin': ?}}", {"B": b"\x00\x01"})
    code, msg, _ = error_of(run, ddb, f"INSERT INTO {t} VALUE {{'pk': 'a', 'sk': 1}}")
    assert (code, msg) == ("DuplicateItemException", "Duplicate primary key exists in table")

    # Stored exactly as the JSON API stores it.
    item = ddb.get_item(TableName=ntable, Key={"pk": S("a"), "sk": N(1)})["Item"]
    assert item["ss"] == {"SS": ["p", "q"]} and item["m"] == {"M": {"x": S("y")}} and item["it's"] == S("o'k")
    assert item["z"] == {"NULL": True} and item["l"] == {"L": [N(1), N(2)]}

    sks = lambda r: [int(i["sk"]["N"]) for i in r["Items"]]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE pk = 'a' AND sk > 1 ORDER BY sk DESC")) == [3, 2]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE pk = ?", S("a"), ConsistentRead=True)) == [1, 2, 3]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE n = 7")) == [2]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE n IS MISSING")) == [3]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE z IS NULL")) == [1]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE begins_with(pk, 'a') AND contains(l, 2) AND size(l) = 2")) == [1]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE sk BETWEEN 2 AND 3")) == [2, 3]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE pk = 'a' AND sk IN [1, 3]")) == [1, 3]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE NOT (n = 7) OR sk = 3")) == [1, 3]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE ss = <<'q', 'p'>> AND m = {{'x': 'y'}}")) == [1]
    assert sks(run(ddb, f"SELECT * FROM {t} WHERE attribute_type(m, 'M') AND \"it's\" = 'o''k'")) == [1]
    r = run(ddb, f"SELECT pk, n, m.x, l[1] FROM {t} WHERE pk = 'a' AND sk = 1")
    assert r["Items"] == [{"pk": S("a"), "n": N(5), "x": S("y"), "l[1]": N(2)}]

    # Limit and NextToken page through, as a Query does.
    pages, token = [], None
    while True:
        kwargs = {"Limit": 2}
        if token:
            kwargs["NextToken"] = token
        r = run(ddb, f"SELECT sk FROM {t} WHERE pk = 'a'", **kwargs)
        pages.append(sks(r))
        token = r.get("NextToken")
        if not token:
            break
    assert pages[:2] == [[1, 2], [3]]

    r = run(ddb, f"UPDATE {t} SET n = n + 1 SET q = 'new' REMOVE z WHERE pk = 'a' AND sk = 1 RETURNING ALL NEW *")
    assert r["Items"][0]["n"] == N(6) and r["Items"][0]["q"] == S("new") and "z" not in r["Items"][0]
    r = run(ddb, f"UPDATE {t} SET l = list_append(l, [3]) SET ss = set_add(ss, <<'r'>>) "
                 "WHERE pk = 'a' AND sk = 1 RETURNING MODIFIED OLD *")
    assert r["Items"] == [{"l": {"L": [N(1), N(2)]}, "ss": {"SS": ["p", "q"]}}]
    r = run(ddb, f"UPDATE {t} SET ss = set_delete(ss, <<'p'>>), m.x = 'w', l[0] = 9 "
                 "WHERE pk = 'a' AND sk = 1 RETURNING MODIFIED NEW *")
    assert r["Items"] == [{"ss": {"SS": ["q", "r"]}, "m": {"M": {"x": S("w")}}, "l": {"L": [N(9)]}}]
    code, _, _ = error_of(run, ddb, f"UPDATE {t} SET n = 1 WHERE pk = 'a' AND sk = 99")
    assert code == "ConditionalCheckFailedException"
    code, _, e = error_of(run, ddb, f"UPDATE {t} SET n = 1 WHERE pk = 'a' AND sk = 2 AND n = 1000",
                          ReturnValuesOnConditionCheckFailure="ALL_OLD")
    assert code == "ConditionalCheckFailedException" and e["Item"]["n"] == N(7)
    assert ddb.get_item(TableName=ntable, Key={"pk": S("a"), "sk": N(99)}).get("Item") is None

    r = run(ddb, f"DELETE FROM {t} WHERE pk = 'a' AND sk = 3 RETURNING ALL OLD *")
    assert r["Items"] == [{"pk": S("a"), "sk": N(3), "bin": {"B": b"\x00\x01"}}]
    assert run(ddb, f"DELETE FROM {t} WHERE pk = 'a' AND sk = 3")["Items"] == []
    code, _, _ = error_of(run, ddb, f"DELETE FROM {t} WHERE pk = 'a' AND sk = 2 AND n = 8")
    assert code == "ConditionalCheckFailedException"
    assert sks(run(ddb, f"SELECT * FROM {t}")) == [1, 2]


def test_statement_errors_as_dynamodb_words_them(ddb, ntable):
    t = f'"{ntable}"'
    run(ddb, f"INSERT INTO {t} VALUE {{'pk': 'a', 'sk': 1}}")
    for statement, params, message in [
        ("SELEC * FROM x", [], "Statement wasn't well formed, can't be processed: SELEC * FROM x"),
        (f"SELECT * FROM {t} WHERE", [], f"Statement wasn't well formed, can't be processed: SELECT * FROM {t} WHERE"),
        (f"INSERT INTO {t} VALUE {{'pk': ?, 'sk': ?}}", [S("a")], "Number of parameters in request and statement don't match."),
        (f"INSERT INTO {t} VALUE {{'pk': 'b'}}", [], "Key attribute should be present in the item: Key sk"),
        (f"INSERT INTO {t} VALUE {{'pk': 5, 'sk': 1}}", [], "Key attribute's data type should match its data type in table's schema: Key pk"),
        (f"INSERT INTO {t} VALUE {{'pk': 'a', 'sk': 9, 'x': <<1, 'a'>>}}", [], "Unsupported data type in Bag. DynamoDB only supports either numbers or strings in bags"),
        (f"INSERT INTO {t} VALUE 5", [], "Unsupported format in item expression. Please use struct format {...} to express item values for insert statement."),
        (f"SELECT * FROM {t}.\"nope\" WHERE pk = 'a'", [], "The table does not have the specified index: nope"),
        (f"SELECT * FROM {t} WHERE pk = 'a' ORDER BY n", [], "Variable reference n in ORDER BY clause must be part of the primary key"),
        (f"SELECT * FROM {t} WHERE pk = 'a' AND foo(sk)", [], "Unrecognized function: foo"),
        (f"SELECT * FROM {t} WHERE pk = 'a' AND begins_with(sk, 1)", [], "Incorrect operand type for operator or function; operator or function: begins_with, operand type: N"),
        (f"UPDATE {t} SET n = 1 WHERE pk = 'a'", [], "Where clause does not contain a mandatory equality on all key attributes"),
        (f"UPDATE {t} SET x = 'a' + 1 WHERE pk = 'a' AND sk = 1", [], "Incorrect operand type for operator or function; operator or function: +, operand type: S"),
        (f"UPDATE {t} SET pk = 'c' WHERE pk = 'a' AND sk = 1", [], "One or more parameter values were invalid: Cannot update attribute pk. This attribute is part of the key"),
        (f"DELETE FROM {t} WHERE pk = 'a' AND sk = 1 RETURNING ALL NEW *", [], "Invalid returning clause: RETURNING ALL NEW *. Only RETURNING ALL OLD * is allowed in DELETE statements."),
        (f"EXISTS(SELECT * FROM {t} WHERE pk = 'a' AND sk = 1)", [], "EXISTS can only be used in ExecuteTransaction write requests."),
        ("SELECT * FROM \"x\"", [], "Table name should be within the length [3, 255] and only contain 'a-z', 'A-Z', '0-9', '-', '_', '.'."),
        (f"SELECT * FROM {t} WHERE pk = 'a' AND sk > 0 AND sk < 9 ORDER BY sk", [],
         "ORDER BY needs an equality on the partition key, and at most one condition on the sort key, in the WHERE clause"),
    ]:
        code, msg, _ = error_of(run, ddb, statement, *params)
        assert (code, msg) == ("ValidationException", message), statement
    code, msg, _ = error_of(run, ddb, "SELECT * FROM nothing_here WHERE pk = 'a'")
    assert (code, msg) == ("ResourceNotFoundException", "Cannot do operations on a non-existent table")
    code, msg, _ = error_of(run, ddb, f"SELECT * FROM {t}", NextToken="garbage")
    assert (code, msg) == ("ValidationException", "Invalid NextToken")
    # Nothing the refused statements named was written.
    assert [i["sk"]["N"] for i in ddb.scan(TableName=ntable)["Items"]] == ["1"]


def test_batch_execute_statement(ddb, ntable):
    t = f'"{ntable}"'
    r = ddb.batch_execute_statement(Statements=[
        {"Statement": f"INSERT INTO {t} VALUE {{'pk': 'x', 'sk': 1}}"},
        {"Statement": f"INSERT INTO {t} VALUE {{'pk': 'a', 'sk': 2, 'n': 1}}"},
        {"Statement": f"INSERT INTO {t} VALUE {{'pk': 'a', 'sk': 3}}"},
    ])
    assert r["Responses"] == [{"TableName": ntable}] * 3
    r = ddb.batch_execute_statement(Statements=[
        {"Statement": f"INSERT INTO {t} VALUE {{'pk': 'x', 'sk': 1}}"},
        {"Statement": f"UPDATE {t} SET n = 5 WHERE pk = 'x' AND sk = 2"},
        {"Statement": f"DELETE FROM {t} WHERE pk = 'a' AND sk = 2 AND n = 4", "ReturnValuesOnConditionCheckFailure": "ALL_OLD"},
        {"Statement": f"UPDATE {t} SET n = 5 WHERE pk = 'a'"},
        {"Statement": "INSERT INTO \"nothing_here\" VALUE {'pk': 'a', 'sk': 2}"},
        {"Statement": "garbage"},
        {"Statement": f"UPDATE {t} SET n = ? WHERE pk = 'a' AND sk = 3", "Parameters": [N(8)]},
    ])
    errors = [(x.get("Error", {}).get("Code"), x.get("TableName")) for x in r["Responses"]]
    assert errors == [("DuplicateItem", ntable), ("ConditionalCheckFailed", ntable), ("ConditionalCheckFailed", ntable),
                      ("ValidationError", None), ("ResourceNotFound", None), ("ValidationError", None), (None, ntable)]
    assert r["Responses"][2]["Error"]["Item"] == {"pk": S("a"), "sk": N(2), "n": N(1)}
    assert r["Responses"][5]["Error"]["Message"] == "Invalid operation. Only select, insert, update and delete operations are valid"

    r = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'a' AND sk = 3", "ConsistentRead": True},
        {"Statement": f"SELECT n FROM {t} WHERE pk = 'a' AND sk = 77"},
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'a'"},
    ])
    assert r["Responses"][0] == {"TableName": ntable, "Item": {"pk": S("a"), "sk": N(3), "n": N(8)}}
    assert r["Responses"][1] == {"TableName": ntable}
    assert r["Responses"][2]["Error"] == {"Code": "ValidationError", "Message": "Only single item select is supported"}

    for statements, message in [
        ([{"Statement": f"SELECT * FROM {t} WHERE pk = 'a' AND sk = 3"}, {"Statement": f"DELETE FROM {t} WHERE pk = 'a' AND sk = 3"}],
         "Read and write requests together in the same batch is not supported."),
        ([{"Statement": f"INSERT INTO {t} VALUE {{'pk': 'y', 'sk': 1}}"}, {"Statement": f"DELETE FROM {t} WHERE pk = 'y' AND sk = 1"}],
         "Provided list of item keys contains duplicates"),
        ([{"Statement": f"SELECT * FROM {t} WHERE pk = 'a' AND sk = 3"}] * 26, "BatchGetItem cannot fetch more than 25 items"),
    ]:
        code, msg, _ = error_of(ddb.batch_execute_statement, Statements=statements)
        assert (code, msg) == ("ValidationException", message)
    assert ddb.get_item(TableName=ntable, Key={"pk": S("y"), "sk": N(1)}).get("Item") is None
    # ReturnConsumedCapacity: the batch's capacity, summed per table.
    r = ddb.batch_execute_statement(Statements=[
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'a' AND sk = 3"},
        {"Statement": f"SELECT * FROM {t} WHERE pk = 'a' AND sk = 4"},
    ], ReturnConsumedCapacity="TOTAL")
    assert [c["TableName"] for c in r["ConsumedCapacity"]] == [ntable] and r["ConsumedCapacity"][0]["CapacityUnits"] > 0


def test_select_on_an_index(ddb):
    name = "t_partiql_ix_" + uuid.uuid4().hex[:8]
    ddb.create_table(
        TableName=name, BillingMode="PAY_PER_REQUEST",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": "N"},
                              {"AttributeName": "g", "AttributeType": "S"}],
        GlobalSecondaryIndexes=[{"IndexName": "by_g", "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                                 "Projection": {"ProjectionType": "ALL"}}])
    for i in range(4):
        run(ddb, f"INSERT INTO \"{name}\" VALUE {{'pk': 'a', 'sk': {i}, 'g': '{'x' if i % 2 else 'y'}'}}")
    r = run(ddb, f"SELECT sk FROM \"{name}\".\"by_g\" WHERE g = 'x'")
    assert sorted(int(i["sk"]["N"]) for i in r["Items"]) == [1, 3]
    code, msg, _ = error_of(run, ddb, f"SELECT * FROM \"{name}\".\"by_g\" WHERE g = 'x'", ConsistentRead=True)
    assert (code, msg) == ("ValidationException", "Consistent reads are not supported on global secondary indexes")
