"""A property-based hostile-input run against a running `strata serve`:
valid requests of every operation, mutated (types, sizes, nesting, missing
and extra members, encodings, headers), thousands of times. Every answer is
a success or a DynamoDB-shaped 4xx (`__type` and `message`), the server
stays up, and the items of a table no request names are unchanged."""
import gzip
import http.client
import json
import tempfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import make_client, start_server

SCRATCH = "fuzz_scratch"
KEEP = "fuzz_keep"

ITEM = {"k": {"S": "a"}, "r": {"N": "1"}, "s": {"SS": ["x", "y"]}, "m": {"M": {"l": {"L": [{"N": "2"}, {"BOOL": True}]}}}}
KEY = {"k": {"S": "a"}, "r": {"N": "1"}}
TEMPLATES = {
    "PutItem": {"TableName": SCRATCH, "Item": ITEM, "ConditionExpression": "attribute_not_exists(k)",
                "ReturnValues": "ALL_OLD"},
    "GetItem": {"TableName": SCRATCH, "Key": KEY, "ProjectionExpression": "#m.l[0], s",
                "ExpressionAttributeNames": {"#m": "m"}, "ConsistentRead": True},
    "UpdateItem": {"TableName": SCRATCH, "Key": KEY, "UpdateExpression": "SET v = if_not_exists(v, :z) + :one ADD s :set",
                   "ExpressionAttributeValues": {":z": {"N": "0"}, ":one": {"N": "1"}, ":set": {"SS": ["q"]}},
                   "ReturnValues": "UPDATED_NEW"},
    "DeleteItem": {"TableName": SCRATCH, "Key": KEY, "ConditionExpression": "r = :r",
                   "ExpressionAttributeValues": {":r": {"N": "1"}}},
    "Query": {"TableName": SCRATCH, "KeyConditionExpression": "k = :k AND r BETWEEN :a AND :b",
              "ExpressionAttributeValues": {":k": {"S": "a"}, ":a": {"N": "0"}, ":b": {"N": "9"}},
              "Limit": 5, "ScanIndexForward": False},
    "Scan": {"TableName": SCRATCH, "FilterExpression": "size(s) > :n", "ExpressionAttributeValues": {":n": {"N": "1"}},
             "Segment": 0, "TotalSegments": 2},
    "BatchWriteItem": {"RequestItems": {SCRATCH: [{"PutRequest": {"Item": ITEM}}, {"DeleteRequest": {"Key": {"k": {"S": "b"}, "r": {"N": "2"}}}}]}},
    "BatchGetItem": {"RequestItems": {SCRATCH: {"Keys": [KEY], "ConsistentRead": True}}},
    "DescribeTable": {"TableName": SCRATCH},
    "ListTables": {"Limit": 3},
    "CreateTable": {"TableName": "fuzz_new", "KeySchema": [{"AttributeName": "h", "KeyType": "HASH"}],
                    "AttributeDefinitions": [{"AttributeName": "h", "AttributeType": "S"}], "BillingMode": "PAY_PER_REQUEST"},
    "UpdateTable": {"TableName": SCRATCH, "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "KEYS_ONLY"}},
    "ExecuteStatement": {"Statement": f'SELECT * FROM "{SCRATCH}" WHERE k = ?', "Parameters": [{"S": "a"}]},
    "UpdateTimeToLive": {"TableName": SCRATCH, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": "ttl"}},
    "TagResource": {"ResourceArn": f"arn:aws:dynamodb:us-east-1:000000000000:table/{SCRATCH}", "Tags": [{"Key": "a", "Value": "b"}]},
}

# Values a mutation puts somewhere: wrong types, big, deep, odd strings (never the kept table's name).
scalar = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=40).filter(lambda s: KEEP not in s),
    st.sampled_from(["", "S", "N", "NaN", "1e999", "-0", "ALL_NEW", "HASH", ":k", "#m", "a.b[1]", "\u0000",
                     "x" * 70000, "9" * 40, "attribute_exists(", "SET", SCRATCH]),
)


def deep(n):
    v = []
    for _ in range(n):
        v = [v]
    return v


attribute_value = st.one_of(
    st.fixed_dictionaries({"S": st.text(max_size=20)}), st.fixed_dictionaries({"N": st.text(max_size=20)}),
    st.fixed_dictionaries({"B": st.text(max_size=20)}), st.fixed_dictionaries({"SS": st.lists(st.text(max_size=5), max_size=5)}),
    st.fixed_dictionaries({"NS": st.lists(st.sampled_from(["1", "1", "2", "x"]), max_size=5)}),
    st.fixed_dictionaries({"L": st.just(deep(60))}), st.fixed_dictionaries({"M": st.just({})}),
    st.just({"S": "a", "N": "1"}), st.just({}), st.just({"NULL": False}), st.just({"BOOL": "yes"}),
)
replacement = st.one_of(scalar, attribute_value, st.lists(scalar, max_size=4), st.dictionaries(st.text(max_size=8), scalar, max_size=3),
                        st.just(deep(200)), st.just([ITEM] * 30))


def paths(v, prefix=()):
    yield prefix
    if isinstance(v, dict):
        for k, x in v.items():
            yield from paths(x, prefix + (k,))
    elif isinstance(v, list):
        for i, x in enumerate(v):
            yield from paths(x, prefix + (i,))


def mutate(v, path, how, new):
    if not path:
        return new if how == "replace" else v
    head, rest = path[0], path[1:]
    if isinstance(v, dict):
        v = dict(v)
        if not rest and how == "delete":
            v.pop(head, None)
        elif not rest and how == "add":
            v[str(new)[:20] or "extra"] = new
        else:
            v[head] = mutate(v[head], rest, how, new)
    elif isinstance(v, list):
        v = list(v)
        if not rest and how == "delete":
            v.pop(head)
        else:
            v[head] = mutate(v[head], rest, how, new)
    return v


@st.composite
def requests(draw):
    op = draw(st.sampled_from(sorted(TEMPLATES)))
    body = TEMPLATES[op]
    for _ in range(draw(st.integers(0, 3))):
        ps = list(paths(body))
        path = draw(st.sampled_from(ps))
        body = mutate(body, path, draw(st.sampled_from(["replace", "delete", "add"])), draw(replacement))
    raw = json.dumps(body).encode()
    encoding = draw(st.sampled_from(["json", "json", "json", "truncated", "not-utf8", "gzip", "gzip-lie", "empty"]))
    headers = {"Content-Type": draw(st.sampled_from(["application/x-amz-json-1.0", "application/x-amz-json-1.1",
                                                      "text/plain", "application/json"])),
               "X-Amz-Target": draw(st.sampled_from([f"DynamoDB_20120810.{op}", op, f"DynamoDB_20120810.{op}x",
                                                     "DynamoDBStreams_20120810.GetRecords", ""]))}
    if encoding == "truncated":
        raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
    elif encoding == "not-utf8":
        raw = raw[:10] + b"\xff\xfe" + raw[10:]
    elif encoding == "gzip":
        raw = gzip.compress(raw)
        headers["Content-Encoding"] = "gzip"
    elif encoding == "gzip-lie":
        headers["Content-Encoding"] = "gzip"
    elif encoding == "empty":
        raw = b""
    return headers, raw


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(["--data", d])
        ddb = make_client(url)
        for name in (SCRATCH, KEEP):
            ddb.create_table(TableName=name, KeySchema=[{"AttributeName": "k", "KeyType": "HASH"},
                                                        {"AttributeName": "r", "KeyType": "RANGE"}],
                             AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"},
                                                   {"AttributeName": "r", "AttributeType": "N"}],
                             BillingMode="PAY_PER_REQUEST")
        for i in range(20):
            ddb.put_item(TableName=KEEP, Item={"k": {"S": f"k{i % 4}"}, "r": {"N": str(i)}, "v": {"S": "kept"}})
        try:
            yield proc, url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def kept(url):
    items = make_client(url).scan(TableName=KEEP, ConsistentRead=True)["Items"]
    return sorted(json.dumps(i, sort_keys=True) for i in items)


def test_mutated_requests_get_dynamodb_shaped_answers_and_change_nothing_else(server):
    proc, url = server
    before = kept(url)
    host, port = url.split("//")[1].split(":")
    conn = {"c": http.client.HTTPConnection(host, int(port), timeout=30)}
    seen = {}

    @settings(max_examples=3000, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    @given(requests())
    def one(req):
        headers, raw = req
        try:
            conn["c"].request("POST", "/", body=raw, headers=headers)
            r = conn["c"].getresponse()
            status, body = r.status, r.read()
        except (http.client.HTTPException, OSError):
            # The server closed the connection (allowed for a body it refused); reconnect.
            conn["c"].close()
            conn["c"] = http.client.HTTPConnection(host, int(port), timeout=30)
            assert proc.poll() is None, "the server died"
            return
        # A body that does not decode as its Content-Encoding says is DynamoDB's one 500
        # (InternalServerError, as DynamoDB answers it: http/encoding.rs); nothing else is.
        undecodable = status == 500 and "Content-Encoding" in headers and b"InternalServerError" in body
        assert status < 500 or undecodable, (status, body[:300], headers, raw[:300])
        if status != 200:
            j = json.loads(body)
            assert "__type" in j and ("message" in j or "Message" in j), (status, body[:300])
            seen[j["__type"].split("#")[-1]] = seen.get(j["__type"].split("#")[-1], 0) + 1
        else:
            seen["200"] = seen.get("200", 0) + 1
        assert len(body) < 1 << 20, f"an answer of {len(body)} bytes echoes its input"

    one()
    assert proc.poll() is None
    assert kept(url) == before
    assert seen.get("ValidationException", 0) > 100 and seen.get("200", 0) > 50, seen
