"""The wire protocol itself, without an SDK in the way."""
import json
import urllib.request
import zlib


def call(endpoint, target, body, content_type="application/x-amz-json-1.0"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type,
               "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-3/dynamodb/aws4_request, SignedHeaders=host, Signature=0"}
    if target:
        headers["X-Amz-Target"] = target
    req = urllib.request.Request(endpoint + "/", data=data, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def test_health_check(endpoint):
    with urllib.request.urlopen(endpoint + "/") as r:
        assert r.status == 200


def test_unknown_operation_and_bad_bodies(endpoint):
    status, _, body = call(endpoint, "DynamoDB_20120810.Frobnicate", {})
    assert status == 400 and json.loads(body)["__type"].endswith("#UnknownOperationException")
    status, _, body = call(endpoint, None, {})
    assert status == 400 and json.loads(body)["__type"].endswith("#UnknownOperationException")
    status, _, body = call(endpoint, "DynamoDB_20120810.ListTables", b"{not json")
    assert status == 400 and json.loads(body)["__type"].endswith("#SerializationException")
    status, _, body = call(endpoint, "DynamoDB_20120810.GetItem", {"TableName": "x", "Key": {"a": {"S": 1}}})
    assert status == 400 and json.loads(body)["__type"].endswith("#SerializationException")
    status, _, body = call(endpoint, "DynamoDB_20120810.GetItem", {"Key": {}})
    err = json.loads(body)
    assert status == 400 and err["__type"] == "com.amazon.coral.validate#ValidationException" and "tableName" in err["message"]


def test_json_1_1_crc_and_region_from_signature(endpoint):
    status, headers, body = call(endpoint, "DynamoDB_20120810.CreateTable", {
        "TableName": "protocol_t", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}],
    }, content_type="application/x-amz-json-1.1")
    assert status == 200, body
    assert headers["content-type"] == "application/x-amz-json-1.1"
    assert int(headers["x-amz-crc32"]) == zlib.crc32(body)
    assert json.loads(body)["TableDescription"]["TableArn"].startswith("arn:aws:dynamodb:eu-west-3:")
