"""`strata serve --auth FILE`: SigV4 authentication and IAM-style policies.

boto3 and the aws CLI sign as they do for DynamoDB. Bad signatures are made
with a small reference signer (below, from the SigV4 documentation) so each
can be wrong in exactly one way; after every refused write the store is
read to check nothing was written.
"""
import datetime
import hashlib
import hmac
import json
import os
import subprocess
import tempfile
import urllib.error
import urllib.request

import boto3
import botocore
import pytest
from botocore.config import Config

from conftest import start_server

REGION = "us-east-1"
USERS = {
    "admin": ("AKIAADMIN0000000001", "admin-secret",
              {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}),
    "reader": ("AKIAREADER000000001", "reader-secret",
               {"Statement": [{"Effect": "Allow",
                               "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable"],
                               "Resource": "arn:aws:dynamodb:*:*:table/books"}]}),
    "alice": ("AKIAALICE0000000001", "alice-secret",
              {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                              "Action": ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:Query",
                                         "dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
                              "Resource": "arn:aws:dynamodb:*:*:table/docs",
                              "Condition": {"ForAllValues:StringEquals": {"dynamodb:LeadingKeys": ["${aws:username}"]}}}]}),
    "indexer": ("AKIAINDEXER00000001", "indexer-secret",
                {"Statement": [{"Effect": "Allow", "Action": "dynamodb:Query",
                                "Resource": "arn:aws:dynamodb:*:*:table/books/index/*"}]}),
    "scores": ("AKIASCORES000000001", "scores-secret",
               {"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
                "Action": ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:PutItem", "dynamodb:UpdateItem"],
                "Resource": "arn:aws:dynamodb:*:*:table/docs",
                "Condition": {"ForAllValues:StringEquals": {"dynamodb:Attributes": ["owner", "id", "score"]},
                              "StringEqualsIfExists": {"dynamodb:Select": "SPECIFIC_ATTRIBUTES",
                                                       "dynamodb:ReturnValues": ["NONE", "UPDATED_NEW"]}}}]}),
    "nodelete": ("AKIANODELETE0000001", "nodelete-secret",
                 {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"},
                                {"Effect": "Deny", "Action": ["dynamodb:Delete*", "dynamodb:PartiQLDelete"],
                                 "Resource": "*"}]}),
}


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as d:
        users = {"users": [{"name": n, "access_key_id": k, "secret_access_key": s, "policy": p}
                           for n, (k, s, p) in USERS.items()]}
        path = os.path.join(d, "users.json")
        with open(path, "w") as f:
            json.dump(users, f)
        proc, url = start_server(["--data", os.path.join(d, "data"), "--auth", path])
        try:
            admin = client(url, "admin")
            admin.create_table(TableName="books", KeySchema=[{"AttributeName": "isbn", "KeyType": "HASH"}],
                               AttributeDefinitions=[{"AttributeName": "isbn", "AttributeType": "S"},
                                                     {"AttributeName": "author", "AttributeType": "S"}],
                               GlobalSecondaryIndexes=[{"IndexName": "byAuthor",
                                                        "KeySchema": [{"AttributeName": "author", "KeyType": "HASH"}],
                                                        "Projection": {"ProjectionType": "ALL"}}],
                               BillingMode="PAY_PER_REQUEST")
            admin.create_table(TableName="docs", KeySchema=[{"AttributeName": "owner", "KeyType": "HASH"},
                                                            {"AttributeName": "id", "KeyType": "RANGE"}],
                               AttributeDefinitions=[{"AttributeName": "owner", "AttributeType": "S"},
                                                     {"AttributeName": "id", "AttributeType": "S"}],
                               BillingMode="PAY_PER_REQUEST")
            admin.put_item(TableName="books", Item={"isbn": {"S": "1"}, "author": {"S": "le guin"}})
            admin.put_item(TableName="docs", Item={"owner": {"S": "bob"}, "id": {"S": "b1"}})
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def client(url, user=None, key=None, secret=None):
    if user:
        key, secret = USERS[user][0], USERS[user][1]
    return boto3.client("dynamodb", endpoint_url=url, region_name=REGION, aws_access_key_id=key,
                        aws_secret_access_key=secret, config=Config(retries={"max_attempts": 1}))


def error_code(fn):
    with pytest.raises(botocore.exceptions.ClientError) as e:
        fn()
    return e.value.response["Error"]["Code"]


# ------------------------------------------------------------ a reference signer

def sign(url, target, body, key, secret, when=None, headers=None, service="dynamodb", region=REGION,
         drop=(), presign=False):
    """Returns (url, headers) of a SigV4-signed POST, as the SigV4 docs specify."""
    when = when or datetime.datetime.now(datetime.timezone.utc)
    amz = when.strftime("%Y%m%dT%H%M%SZ")
    date = amz[:8]
    host = url.split("//", 1)[1]
    scope = f"{date}/{region}/{service}/aws4_request"
    h = {"host": host, "content-type": "application/x-amz-json-1.0", "x-amz-target": target}
    if not presign:
        h["x-amz-date"] = amz
    h.update(headers or {})
    names = sorted(h)
    query = ""
    if presign:
        params = {"X-Amz-Algorithm": "AWS4-HMAC-SHA256", "X-Amz-Credential": f"{key}/{scope}",
                  "X-Amz-Date": amz, "X-Amz-Expires": "300", "X-Amz-SignedHeaders": ";".join(names)}
        from urllib.parse import quote
        query = "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in sorted(params.items()))
    canonical = "\n".join(["POST", "/", query, "".join(f"{n}:{h[n]}\n" for n in names), ";".join(names),
                           hashlib.sha256(body).hexdigest()])
    sts = "\n".join(["AWS4-HMAC-SHA256", amz, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    k = ("AWS4" + secret).encode()
    for part in [date, region, service, "aws4_request"]:
        k = hmac.new(k, part.encode(), hashlib.sha256).digest()
    sig = hmac.new(k, sts.encode(), hashlib.sha256).hexdigest()
    out = {n: v for n, v in h.items() if n != "host" and n not in drop}
    if presign:
        return f"{url}/?{query}&X-Amz-Signature={sig}", out
    out["authorization"] = f"AWS4-HMAC-SHA256 Credential={key}/{scope}, SignedHeaders={';'.join(names)}, Signature={sig}"
    for d in drop:
        out.pop(d, None)
    return f"{url}/", out


def post(url, headers, body):
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def kind(resp):
    return resp[1].get("__type", "").split("#")[-1]


def doc_exists(url, owner, id_):
    got = client(url, "admin").get_item(TableName="docs", Key={"owner": {"S": owner}, "id": {"S": id_}},
                                        ConsistentRead=True)
    return "Item" in got


PUT_TARGET = "DynamoDB_20120810.PutItem"


def put_body(id_):
    return json.dumps({"TableName": "docs", "Item": {"owner": {"S": "mallory"}, "id": {"S": id_}}}).encode()


# ------------------------------------------------------------ authentication

def test_boto3_and_the_aws_cli_with_good_keys_work_unchanged(server):
    c = client(server, "admin")
    assert "books" in c.list_tables()["TableNames"]
    c.put_item(TableName="docs", Item={"owner": {"S": "carol"}, "id": {"S": "c1"}})
    assert doc_exists(server, "carol", "c1")
    aws = os.environ.get("STRATA_AWS_CLI")
    if aws and os.path.exists(aws):
        env = {**os.environ, "AWS_ACCESS_KEY_ID": USERS["admin"][0], "AWS_SECRET_ACCESS_KEY": USERS["admin"][1],
               "AWS_DEFAULT_REGION": REGION}
        out = subprocess.run([aws, "dynamodb", "list-tables", "--endpoint-url", server], capture_output=True,
                             text=True, env=env, timeout=60)
        assert out.returncode == 0, out.stderr
        assert "books" in json.loads(out.stdout)["TableNames"]
        env["AWS_SECRET_ACCESS_KEY"] = "wrong"
        out = subprocess.run([aws, "dynamodb", "list-tables", "--endpoint-url", server], capture_output=True,
                             text=True, env=env, timeout=60)
        assert out.returncode != 0 and "InvalidSignatureException" in out.stderr


def test_bad_credentials_get_dynamodbs_errors_and_write_nothing(server):
    assert error_code(lambda: client(server, key=USERS["admin"][0], secret="wrong").put_item(
        TableName="docs", Item={"owner": {"S": "mallory"}, "id": {"S": "w1"}})) == "InvalidSignatureException"
    assert error_code(lambda: client(server, key="AKIANOBODY000000000", secret="x").put_item(
        TableName="docs", Item={"owner": {"S": "mallory"}, "id": {"S": "w2"}})) == "UnrecognizedClientException"
    key, secret = USERS["admin"][:2]
    now = datetime.datetime.now(datetime.timezone.utc)
    cases = {
        "unsigned": (f"{server}/", {"content-type": "application/x-amz-json-1.0", "x-amz-target": PUT_TARGET},
                     put_body("w3"), "MissingAuthenticationTokenException"),
        "expired": (*sign(server, PUT_TARGET, put_body("w4"), key, secret, when=now - datetime.timedelta(minutes=16)),
                    put_body("w4"), "InvalidSignatureException"),
        "future": (*sign(server, PUT_TARGET, put_body("w5"), key, secret, when=now + datetime.timedelta(minutes=16)),
                   put_body("w5"), "InvalidSignatureException"),
        "tampered body": (*sign(server, PUT_TARGET, put_body("w6"), key, secret), put_body("w7"),
                          "InvalidSignatureException"),
        "no date header": (*sign(server, PUT_TARGET, put_body("w8"), key, secret, drop=("x-amz-date",)),
                           put_body("w8"), "IncompleteSignatureException"),
        "wrong service": (*sign(server, PUT_TARGET, put_body("w9"), key, secret, service="s3"), put_body("w9"),
                          "InvalidSignatureException"),
        "another region": (*sign(server, PUT_TARGET, put_body("w11"), key, secret, region="eu-west-1"),
                           put_body("w11"), "InvalidSignatureException"),
        "a payload hash header that lies": (*sign(server, PUT_TARGET, put_body("w12"), key, secret,
                                                  headers={"x-amz-content-sha256": hashlib.sha256(put_body("w12")).hexdigest()}),
                                            put_body("w13"), "InvalidSignatureException"),
    }
    for name, (url, headers, body, expected) in cases.items():
        status, resp = post(url, headers, body)
        assert (status, kind((status, resp))) == (400, expected), (name, resp)
        assert "message" in resp or "Message" in resp, (name, resp)
    malformed = {"content-type": "application/x-amz-json-1.0", "x-amz-target": PUT_TARGET,
                 "x-amz-date": now.strftime("%Y%m%dT%H%M%SZ"), "authorization": "AWS4-HMAC-SHA256 Signature=abc"}
    assert kind(post(f"{server}/", malformed, put_body("w10"))) == "IncompleteSignatureException"
    for i in range(1, 14):
        assert not doc_exists(server, "mallory", f"w{i}"), i


def test_a_tampered_signed_header_is_refused(server):
    """A GetItem's signature reused on a DeleteItem: refused, the item stays."""
    client(server, "admin").put_item(TableName="docs", Item={"owner": {"S": "dave"}, "id": {"S": "d1"}})
    body = json.dumps({"TableName": "docs", "Key": {"owner": {"S": "dave"}, "id": {"S": "d1"}}}).encode()
    url, headers = sign(server, "DynamoDB_20120810.GetItem", body, *USERS["admin"][:2])
    headers["x-amz-target"] = "DynamoDB_20120810.DeleteItem"
    assert kind(post(url, headers, body)) == "InvalidSignatureException"
    assert doc_exists(server, "dave", "d1")
    # The same request untampered, replayed within the window, is served (as AWS serves it).
    url, headers = sign(server, "DynamoDB_20120810.GetItem", body, *USERS["admin"][:2])
    assert post(url, headers, body)[0] == 200
    assert post(url, headers, body)[0] == 200


def test_presigned_query_string_requests_verify(server):
    body = json.dumps({"TableName": "docs", "Item": {"owner": {"S": "erin"}, "id": {"S": "e1"}}}).encode()
    url, headers = sign(server, PUT_TARGET, body, *USERS["admin"][:2], presign=True)
    status, resp = post(url, headers, body)
    assert status == 200, resp
    assert doc_exists(server, "erin", "e1")
    bad = url.replace("X-Amz-Signature=", "X-Amz-Signature=0")
    assert kind(post(bad, headers, body)) == "InvalidSignatureException"


# ------------------------------------------------------------ authorization

def test_policies_decide_per_action_table_index_and_leading_key(server):
    books_get = lambda c: c.get_item(TableName="books", Key={"isbn": {"S": "1"}})  # noqa: E731
    cases = [
        # (user, what, call, allowed)
        ("reader", "GetItem on books", books_get, True),
        ("reader", "PutItem on books", lambda c: c.put_item(TableName="books", Item={"isbn": {"S": "r1"}}), False),
        ("reader", "GetItem on docs", lambda c: c.get_item(TableName="docs", Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}), False),
        ("reader", "ListTables", lambda c: c.list_tables(), False),
        ("reader", "Query on the books index", lambda c: c.query(
            TableName="books", IndexName="byAuthor", KeyConditionExpression="author = :a",
            ExpressionAttributeValues={":a": {"S": "le guin"}}), False),
        ("indexer", "Query on the books index", lambda c: c.query(
            TableName="books", IndexName="byAuthor", KeyConditionExpression="author = :a",
            ExpressionAttributeValues={":a": {"S": "le guin"}}), True),
        ("indexer", "Query on the books table", lambda c: c.query(
            TableName="books", KeyConditionExpression="isbn = :i", ExpressionAttributeValues={":i": {"S": "1"}}), False),
        ("alice", "PutItem of her own item", lambda c: c.put_item(TableName="docs", Item={"owner": {"S": "alice"}, "id": {"S": "a1"}}), True),
        ("alice", "GetItem of her own item", lambda c: c.get_item(TableName="docs", Key={"owner": {"S": "alice"}, "id": {"S": "a1"}}), True),
        ("alice", "PutItem as bob", lambda c: c.put_item(TableName="docs", Item={"owner": {"S": "bob"}, "id": {"S": "a2"}}), False),
        ("alice", "GetItem of bob's item", lambda c: c.get_item(TableName="docs", Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}), False),
        ("alice", "Query of her items", lambda c: c.query(
            TableName="docs", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "alice"}}), True),
        ("alice", "Query of bob's items", lambda c: c.query(
            TableName="docs", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "bob"}}), False),
        ("alice", "BatchWriteItem with one of bob's", lambda c: c.batch_write_item(RequestItems={"docs": [
            {"PutRequest": {"Item": {"owner": {"S": "alice"}, "id": {"S": "a3"}}}},
            {"PutRequest": {"Item": {"owner": {"S": "bob"}, "id": {"S": "a4"}}}}]}), False),
        ("alice", "Scan (not allowed)", lambda c: c.scan(TableName="docs"), False),
        # dynamodb:Attributes, Select and ReturnValues (the AWS docs' fine-grained example).
        ("scores", "GetItem projecting allowed attributes", lambda c: c.get_item(
            TableName="docs", Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}, ProjectionExpression="score"), True),
        ("scores", "GetItem of the whole item", lambda c: c.get_item(
            TableName="docs", Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}), False),
        ("scores", "GetItem projecting a secret", lambda c: c.get_item(
            TableName="docs", Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}, ProjectionExpression="score, secret"), False),
        ("scores", "Query with SPECIFIC_ATTRIBUTES", lambda c: c.query(
            TableName="docs", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "bob"}}, ProjectionExpression="id, score"), True),
        ("scores", "Query of whole items", lambda c: c.query(
            TableName="docs", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "bob"}}), False),
        ("scores", "Query filtering on a secret", lambda c: c.query(
            TableName="docs", KeyConditionExpression="#o = :o", ExpressionAttributeNames={"#o": "owner"},
            ExpressionAttributeValues={":o": {"S": "bob"}, ":s": {"S": "x"}}, ProjectionExpression="id",
            FilterExpression="secret = :s"), False),
        ("scores", "PutItem of allowed attributes", lambda c: c.put_item(
            TableName="docs", Item={"owner": {"S": "sc"}, "id": {"S": "s1"}, "score": {"N": "1"}}), True),
        ("scores", "PutItem with a secret", lambda c: c.put_item(
            TableName="docs", Item={"owner": {"S": "sc"}, "id": {"S": "s2"}, "secret": {"S": "x"}}), False),
        ("scores", "UpdateItem of the score", lambda c: c.update_item(
            TableName="docs", Key={"owner": {"S": "sc"}, "id": {"S": "s1"}}, UpdateExpression="SET score = score + :one",
            ExpressionAttributeValues={":one": {"N": "1"}}, ReturnValues="UPDATED_NEW"), True),
        ("scores", "UpdateItem returning the whole old item", lambda c: c.update_item(
            TableName="docs", Key={"owner": {"S": "sc"}, "id": {"S": "s1"}}, UpdateExpression="SET score = :z",
            ExpressionAttributeValues={":z": {"N": "0"}}, ReturnValues="ALL_OLD"), False),
        ("scores", "PutItem returning the whole item on a failed condition", lambda c: c.put_item(
            TableName="docs", Item={"owner": {"S": "sc"}, "id": {"S": "s1"}, "score": {"N": "9"}},
            ConditionExpression="attribute_not_exists(score)", ReturnValuesOnConditionCheckFailure="ALL_OLD"), False),
        ("nodelete", "PutItem", lambda c: c.put_item(TableName="docs", Item={"owner": {"S": "nd"}, "id": {"S": "n1"}}), True),
        ("nodelete", "DeleteItem (denied over allowed)", lambda c: c.delete_item(TableName="docs", Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}), False),
        ("nodelete", "DeleteTable", lambda c: c.delete_table(TableName="docs"), False),
        ("nodelete", "PartiQL DELETE", lambda c: c.execute_statement(Statement="DELETE FROM docs WHERE \"owner\" = 'bob' AND id = 'b1'"), False),
        ("nodelete", "PartiQL SELECT", lambda c: c.execute_statement(Statement="SELECT * FROM docs WHERE \"owner\" = 'bob'"), True),
        # A statement whose item is a parameter is authorized as it runs (parsed with its parameters).
        ("reader", "PartiQL INSERT with a parameter", lambda c: c.execute_statement(
            Statement='INSERT INTO "books" VALUE ?', Parameters=[{"M": {"isbn": {"S": "p1"}}}]), False),
        ("alice", "PartiQL INSERT of her own item (keys not known: refused)", lambda c: c.execute_statement(
            Statement='INSERT INTO "docs" VALUE ?', Parameters=[{"M": {"owner": {"S": "alice"}, "id": {"S": "p2"}}}]), False),
        # A table named by its ARN is the table, for the policy as for the operation.
        ("alice", "PutItem as bob, the table named by ARN", lambda c: c.put_item(
            TableName="arn:aws:dynamodb:us-east-1:000000000000:table/docs",
            Item={"owner": {"S": "bob"}, "id": {"S": "a5"}}), False),
        ("alice", "PutItem of her own, the table named by ARN", lambda c: c.put_item(
            TableName="arn:aws:dynamodb:us-east-1:000000000000:table/docs",
            Item={"owner": {"S": "alice"}, "id": {"S": "a6"}}), True),
        ("reader", "GetItem on docs named by a tricky ARN", lambda c: c.get_item(
            TableName="arn:aws:dynamodb:us-east-1:000000000000:table/books/index/x:table/docs",
            Key={"owner": {"S": "bob"}, "id": {"S": "b1"}}), False),
    ]
    failures = []
    for user, what, call, allowed in cases:
        c = client(server, user)
        try:
            call(c)
            ok, code = True, None
        except botocore.exceptions.ClientError as e:
            ok, code = False, e.response["Error"]["Code"]
            if not allowed and code == "AccessDeniedException":
                msg = e.response["Error"]["Message"]
                assert f"user/{user} is not authorized to perform: dynamodb:" in msg, msg
        if ok != allowed or (not allowed and code != "AccessDeniedException"):
            failures.append((user, what, allowed, code))
    assert not failures, failures
    # What was refused wrote nothing, and deleted nothing.
    assert not doc_exists(server, "bob", "a2") and not doc_exists(server, "alice", "a3")
    assert not doc_exists(server, "bob", "a4") and doc_exists(server, "bob", "b1")
    assert not doc_exists(server, "bob", "a5") and not doc_exists(server, "alice", "p2")
    assert not doc_exists(server, "sc", "s2")
    scored = client(server, "admin").get_item(TableName="docs", Key={"owner": {"S": "sc"}, "id": {"S": "s1"}},
                                              ConsistentRead=True)["Item"]
    assert scored["score"] == {"N": "2"}, "the refused ALL_OLD update changed nothing"
    assert "Item" not in client(server, "admin").get_item(TableName="books", Key={"isbn": {"S": "p1"}})
    assert "docs" in client(server, "admin").list_tables()["TableNames"]
    assert "Item" not in client(server, "admin").get_item(TableName="books", Key={"isbn": {"S": "r1"}})
