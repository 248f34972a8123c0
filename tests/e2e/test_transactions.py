"""TransactWriteItems and TransactGetItems through boto3: every error and
limit DynamoDB answers (checked against DynamoDB Local 3.3.0's words),
idempotent tokens, conflicts with single-item writes, streams, and bank
transfers from two `strata serve` instances on one store."""
import concurrent.futures
import os
import random
import tempfile
import threading
import time
import uuid

import botocore
import pytest

from conftest import make_client, new_table, start_server

def put(table, pk, sk="0", **attrs):
    item = {"pk": {"S": pk}, "sk": {"S": sk}}
    for k, v in attrs.items():
        item[k] = {"N": str(v)} if isinstance(v, int) else {"S": v}
    return {"Put": {"TableName": table, "Item": item}}


def key(pk, sk="0"):
    return {"pk": {"S": pk}, "sk": {"S": sk}}


def error_of(call):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        call()
    return e.value.response


def test_commits_every_action_of_two_tables(ddb, table):
    other = new_table(ddb)
    ddb.put_item(TableName=table, Item={**key("a"), "n": {"N": "10"}})
    ddb.put_item(TableName=table, Item={**key("gone")})
    out = ddb.transact_write_items(TransactItems=[
        put(table, "b", n=1),
        put(other, "c", n=2),
        {"Update": {"TableName": table, "Key": key("a"), "UpdateExpression": "SET n = n - :d",
                    "ConditionExpression": "n >= :d", "ExpressionAttributeValues": {":d": {"N": "3"}}}},
        {"Delete": {"TableName": table, "Key": key("gone")}},
        {"ConditionCheck": {"TableName": other, "Key": key("x"), "ConditionExpression": "attribute_not_exists(pk)"}},
    ], ReturnConsumedCapacity="TOTAL")
    assert sorted(c["TableName"] for c in out["ConsumedCapacity"]) == sorted([table, other])
    # Twice a single write's units for each action written.
    assert {c["TableName"]: c["CapacityUnits"] for c in out["ConsumedCapacity"]}[table] == 6.0
    got = ddb.transact_get_items(TransactItems=[
        {"Get": {"TableName": table, "Key": key("a")}},
        {"Get": {"TableName": table, "Key": key("b"), "ProjectionExpression": "n"}},
        {"Get": {"TableName": other, "Key": key("c")}},
        {"Get": {"TableName": table, "Key": key("gone")}},
    ], ReturnConsumedCapacity="TOTAL")
    r = got["Responses"]
    assert r[0]["Item"]["n"] == {"N": "7"}
    assert r[1]["Item"] == {"n": {"N": "1"}}
    assert r[2]["Item"]["n"] == {"N": "2"}
    assert r[3] == {}
    assert {c["TableName"]: c["CapacityUnits"] for c in got["ConsumedCapacity"]} == {table: 6.0, other: 2.0}


def test_a_failed_condition_cancels_every_action(ddb, table):
    ddb.put_item(TableName=table, Item={**key("a"), "n": {"N": "1"}})
    err = error_of(lambda: ddb.transact_write_items(TransactItems=[
        put(table, "new"),
        {"ConditionCheck": {"TableName": table, "Key": key("a"), "ConditionExpression": "n = :z",
                            "ExpressionAttributeValues": {":z": {"N": "0"}},
                            "ReturnValuesOnConditionCheckFailure": "ALL_OLD"}},
        {"Delete": {"TableName": table, "Key": key("nope"), "ConditionExpression": "attribute_exists(pk)"}},
    ]))
    assert err["Error"]["Code"] == "TransactionCanceledException"
    assert err["Error"]["Message"] == ("Transaction cancelled, please refer cancellation reasons for specific "
                                       "reasons [None, ConditionalCheckFailed, ConditionalCheckFailed]")
    reasons = err["CancellationReasons"]
    assert reasons[0] == {"Code": "None"}
    assert reasons[1]["Code"] == "ConditionalCheckFailed"
    assert reasons[1]["Message"] == "The conditional request failed."
    assert reasons[1]["Item"] == {**key("a"), "n": {"N": "1"}}
    assert reasons[2] == {"Code": "ConditionalCheckFailed", "Message": "The conditional request failed"}
    assert "Item" not in ddb.get_item(TableName=table, Key=key("new"), ConsistentRead=True)
    # A key attribute updated: that action's ValidationError.
    err = error_of(lambda: ddb.transact_write_items(TransactItems=[
        {"Update": {"TableName": table, "Key": key("a"), "UpdateExpression": "SET sk = :v",
                    "ExpressionAttributeValues": {":v": {"S": "b"}}}}]))
    assert err["CancellationReasons"][0]["Code"] == "ValidationError"
    assert "part of the key" in err["CancellationReasons"][0]["Message"]


@pytest.mark.parametrize("items,message", [
    ("empty", "Value [] at 'transactItems' failed to satisfy constraint: Member must have length greater than or equal to 1"),
    ("dup", "Transaction request cannot include multiple operations on one item"),
    ("101", "Member must have length less than or equal to 100"),
    ("none", "Invalid Request: TransactWriteRequest should contain Delete or Put or Update request"),
    ("two", "TransactItems can only contain one of Check, Put, Update or Delete"),
    ("nokey", "One of the required keys was not given a value"),
    ("big", "Item size has exceeded the maximum allowed size"),
    ("cc", "Value null at 'transactItems.1.member.conditionCheck.conditionExpression' failed to satisfy "
           "constraint: Member must not be null"),
    ("type", "An operand in the update expression has an incorrect data type"),
    ("4mb", "Transaction payload size cannot exceed 4MB. Payload Size: 4290089"),
])
def test_validation_errors_write_nothing(ddb, table, items, message):
    ddb.put_item(TableName=table, Item={**key("s"), "s": {"S": "str"}})
    items = {
        "empty": [],
        "none": [{}],
        "dup": [put(table, "a"), put(table, "a")],
        "101": [put(table, f"k{i}") for i in range(101)],
        "two": [{**put(table, "a"), "Delete": {"TableName": table, "Key": key("a")}}],
        "nokey": [{"Put": {"TableName": table, "Item": {"pk": {"S": "a"}}}}],
        "big": [put(table, "a", v="x" * 410_000)],
        # 11 items of 390,008 or 390,009 bytes (DynamoDB's sizes).
        "4mb": [put(table, f"b{i}", v="x" * 390_000) for i in range(11)],
        "cc": [{"ConditionCheck": {"TableName": table, "Key": key("a")}}],
        "type": [put(table, "a"), {"Update": {"TableName": table, "Key": key("s"), "UpdateExpression": "SET s = s + :one",
                                              "ExpressionAttributeValues": {":one": {"N": "1"}}}}],
    }[items]
    raw = botocore.session.get_session().create_client(
        "dynamodb", endpoint_url=ddb.meta.endpoint_url, region_name="us-east-1", aws_access_key_id="AKIDSTRATA",
        aws_secret_access_key="secret",
        config=botocore.config.Config(parameter_validation=False, retries={"total_max_attempts": 1}))
    err = error_of(lambda: raw.transact_write_items(TransactItems=items))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == ("ValidationException", message)
    assert "Item" not in ddb.get_item(TableName=table, Key=key("a"), ConsistentRead=True)


def test_missing_tables_and_tokens(ddb, table):
    err = error_of(lambda: ddb.transact_write_items(TransactItems=[put("no_such_table", "a")]))
    assert (err["Error"]["Code"], err["Error"]["Message"]) == (
        "ResourceNotFoundException", "Cannot do operations on a non-existent table")
    err = error_of(lambda: ddb.transact_get_items(TransactItems=[{"Get": {"TableName": "no_such_table", "Key": key("a")}}]))
    assert err["Error"]["Code"] == "ResourceNotFoundException"
    err = error_of(lambda: ddb.transact_write_items(TransactItems=[put(table, "a")], ClientRequestToken="x" * 37))
    assert err["Error"]["Code"] == "ValidationException"
    err = error_of(lambda: ddb.transact_get_items(TransactItems=[{"Get": {"TableName": table, "Key": key("a")}}] * 2))
    assert err["Error"]["Message"] == "Transaction request cannot include multiple operations on one item"


def test_a_token_makes_a_retry_idempotent(ddb, table):
    inc = {"Update": {"TableName": table, "Key": key("c"), "UpdateExpression": "ADD n :one",
                      "ExpressionAttributeValues": {":one": {"N": "1"}}}}
    token = uuid.uuid4().hex
    for _ in range(3):
        ddb.transact_write_items(TransactItems=[inc], ClientRequestToken=token)
    assert ddb.get_item(TableName=table, Key=key("c"), ConsistentRead=True)["Item"]["n"] == {"N": "1"}
    err = error_of(lambda: ddb.transact_write_items(TransactItems=[inc, put(table, "other")], ClientRequestToken=token))
    assert err["Error"]["Code"] == "IdempotentParameterMismatchException"
    # A cancelled request may be sent again with its token: it runs again.
    check = {"ConditionCheck": {"TableName": table, "Key": key("later"), "ConditionExpression": "attribute_exists(pk)"}}
    token = uuid.uuid4().hex
    err = error_of(lambda: ddb.transact_write_items(TransactItems=[check, inc], ClientRequestToken=token))
    assert err["Error"]["Code"] == "TransactionCanceledException"
    ddb.put_item(TableName=table, Item=key("later"))
    ddb.transact_write_items(TransactItems=[check, inc], ClientRequestToken=token)
    assert ddb.get_item(TableName=table, Key=key("c"), ConsistentRead=True)["Item"]["n"] == {"N": "2"}


def test_a_transactions_writes_are_ordinary_stream_records(ddb):
    table = new_table(ddb, StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.put_item(TableName=table, Item={**key("a"), "n": {"N": "1"}})
    ddb.transact_write_items(TransactItems=[
        put(table, "b", n=2),
        {"Update": {"TableName": table, "Key": key("a"), "UpdateExpression": "SET n = :v",
                    "ExpressionAttributeValues": {":v": {"N": "5"}}}},
    ])
    arn = ddb.describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = make_client(ddb.meta.endpoint_url, "dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        it = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                        ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        records += streams.get_records(ShardIterator=it)["Records"]
    seen = sorted((r["eventName"], r["dynamodb"]["Keys"]["pk"]["S"]) for r in records)
    assert seen == [("INSERT", "a"), ("INSERT", "b"), ("MODIFY", "a")]
    modify = next(r for r in records if r["eventName"] == "MODIFY")
    assert modify["dynamodb"]["OldImage"]["n"] == {"N": "1"}
    assert modify["dynamodb"]["NewImage"]["n"] == {"N": "5"}


def stores():
    out = ["file"]
    if os.environ.get("STRATA_E2E_S3_ENDPOINT"):
        out.append("localstack")
    if os.environ.get("STRATA_E2E_MOTO_ENDPOINT"):
        out.append("moto")
    return out


def store_args(store, tmp):
    env = dict(os.environ)
    if store == "file":
        return ["--data", tmp], env
    endpoint = os.environ["STRATA_E2E_S3_ENDPOINT" if store == "localstack" else "STRATA_E2E_MOTO_ENDPOINT"]
    env.update(AWS_ENDPOINT_URL=endpoint, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test",
               AWS_REGION="us-east-1")
    return ["--store", f"s3://{os.environ['STRATA_E2E_BUCKET']}/txn-{uuid.uuid4().hex}"], env


@pytest.mark.parametrize("store", stores())
def test_bank_transfers_from_two_servers_keep_the_total(store):
    """Transfers between 20 accounts in two tables from two servers on one
    store, each through its own client threads: every TransactGetItems
    snapshot sums to the start's total; a single-item write that meets a
    transaction in flight is refused with TransactionConflictException."""
    tmp = tempfile.TemporaryDirectory()
    args, env = store_args(store, tmp.name)
    servers = [start_server(args, env) for _ in range(2)]
    try:
        clients = [make_client(url) for _, url in servers]
        c0 = clients[0]
        tables = [new_table(c0), new_table(c0)]
        accounts = [(tables[i % 2], f"acct-{i}") for i in range(20)]
        for t, a in accounts:
            c0.put_item(TableName=t, Item={**key(a), "n": {"N": "100"}})
        stop = threading.Event()
        conflicts = []

        def transfers(client, seed):
            rng = random.Random(seed)
            done = 0
            while not stop.is_set():
                (ft, fa), (tt, ta) = rng.sample(accounts, 2)
                amount = str(rng.randint(1, 20))
                try:
                    client.transact_write_items(TransactItems=[
                        {"Update": {"TableName": ft, "Key": key(fa), "UpdateExpression": "SET n = n - :a",
                                    "ConditionExpression": "n >= :a", "ExpressionAttributeValues": {":a": {"N": amount}}}},
                        {"Update": {"TableName": tt, "Key": key(ta), "UpdateExpression": "SET n = n + :a",
                                    "ExpressionAttributeValues": {":a": {"N": amount}}}},
                    ])
                    done += 1
                except botocore.exceptions.ClientError as e:
                    assert e.response["Error"]["Code"] == "TransactionCanceledException", e.response
            return done

        def pokes(client):
            # Single-item writes that change nothing (n + 0) on busy accounts.
            rng = random.Random(7)
            while not stop.is_set():
                t, a = rng.choice(accounts)
                try:
                    client.update_item(TableName=t, Key=key(a), UpdateExpression="SET n = n + :z",
                                       ExpressionAttributeValues={":z": {"N": "0"}})
                except botocore.exceptions.ClientError as e:
                    assert e.response["Error"]["Code"] == "TransactionConflictException", e.response
                    conflicts.append(1)

        snapshots = 0
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            workers = [pool.submit(transfers, make_client(servers[i % 2][1]), i) for i in range(6)]
            poker = pool.submit(pokes, make_client(servers[1][1]))
            reader = make_client(servers[1][1])
            gets = [{"Get": {"TableName": t, "Key": key(a)}} for t, a in accounts]
            # Snapshots for a while (each may be cancelled by transfers in
            # flight, as DynamoDB cancels them), at least one taken.
            deadline = time.monotonic() + 8
            while snapshots < 5 and time.monotonic() < deadline:
                try:
                    r = reader.transact_get_items(TransactItems=gets)["Responses"]
                except botocore.exceptions.ClientError as e:
                    assert e.response["Error"]["Code"] == "TransactionCanceledException"
                    continue
                assert sum(int(x["Item"]["n"]["N"]) for x in r) == 2000
                snapshots += 1
            stop.set()
            done = sum(w.result() for w in workers)
            poker.result()
        assert done > 0 and snapshots > 0
        r = clients[0].transact_get_items(TransactItems=gets)["Responses"]
        assert sum(int(x["Item"]["n"]["N"]) for x in r) == 2000
        print(f"[{store}] {done} transfers, {snapshots} snapshots, {len(conflicts)} single-item conflicts")
    finally:
        for p, _ in servers:
            p.terminate()
            p.wait()
