"""The wire protocol itself, without an SDK in the way."""
import gzip
import json
import urllib.error
import urllib.request
import zlib


def raw(endpoint, method, path="/", body=None, headers=None):
    """One HTTP request: (status, lower-cased headers, body), errors included."""
    req = urllib.request.Request(endpoint + path, data=body, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def call(endpoint, target, body, content_type="application/x-amz-json-1.0"):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": content_type,
               "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20240101/eu-west-3/dynamodb/aws4_request, SignedHeaders=host, Signature=0"}
    if target:
        headers["X-Amz-Target"] = target
    return raw(endpoint, "POST", body=data, headers=headers)


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
    status, _, body = call(endpoint, "DynamoDB_20120810.GetItem", {"TableName": "xyz", "Key": {"a": {"S": 1}}})
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


def test_paths_and_methods_that_are_not_operations(endpoint):
    status, headers, body = raw(endpoint, "GET", "/")
    assert status == 200 and body.startswith(b"healthy: ")
    assert int(headers["x-amz-crc32"]) == zlib.crc32(body)
    assert raw(endpoint, "GET", "/healthz")[0] == 200
    for method, path in [("GET", "/index.html"), ("PUT", "/"), ("DELETE", "/"), ("OPTIONS", "/")]:
        status, headers, body = raw(endpoint, method, path)
        assert (status, body) == (404, b"<UnknownOperationException/>\n"), (method, path)
        assert int(headers["x-amz-crc32"]) == zlib.crc32(body)


def test_cors_as_dynamodb_answers_browsers(endpoint):
    # No Origin: no CORS headers.
    _, headers, _ = call(endpoint, "DynamoDB_20120810.ListTables", {})
    assert "access-control-allow-origin" not in headers
    # A preflight is answered before anything else, with what was asked.
    status, headers, body = raw(endpoint, "OPTIONS", "/", headers={
        "Origin": "https://app.example", "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type,x-amz-target,authorization"})
    assert status == 200 and body == b""
    assert headers["access-control-allow-origin"] == "*"
    assert headers["access-control-allow-methods"] == "POST"
    assert headers["access-control-allow-headers"] == "content-type,x-amz-target,authorization"
    assert headers["access-control-max-age"] == "172800"
    # The call itself: any origin, the request id and error headers readable.
    status, headers, _ = raw(endpoint, "POST", "/", json.dumps({}).encode(), {
        "Origin": "https://app.example", "Content-Type": "application/x-amz-json-1.0",
        "X-Amz-Target": "DynamoDB_20120810.ListTables"})
    assert status == 200
    assert headers["access-control-allow-origin"] == "*"
    assert "x-amzn-RequestId" in headers["access-control-expose-headers"]


def gzip_members(*parts):
    return b"".join(gzip.compress(p) for p in parts)


def test_compressed_requests_and_responses(endpoint):
    ddb = {"Content-Type": "application/x-amz-json-1.0"}
    create = json.dumps({
        "TableName": "protocol_gz", "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "k", "KeyType": "HASH"}],
        "AttributeDefinitions": [{"AttributeName": "k", "AttributeType": "S"}]}).encode()
    # Two gzip members make one body, as DynamoDB takes it.
    status, _, body = raw(endpoint, "POST", "/", gzip_members(create[:20], create[20:]), {
        **ddb, "X-Amz-Target": "DynamoDB_20120810.CreateTable", "Content-Encoding": "gzip"})
    assert status == 200, body
    put = json.dumps({"TableName": "protocol_gz", "Item": {"k": {"S": "a"}, "v": {"S": "x" * 6000}}}).encode()
    status, _, body = raw(endpoint, "POST", "/", zlib.compress(put), {
        **ddb, "X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Encoding": "deflate"})
    assert status == 200, body
    get = json.dumps({"TableName": "protocol_gz", "Key": {"k": {"S": "a"}}}).encode()
    # A response of 4 KB or more comes compressed when asked, its CRC of the bytes sent.
    for accept, coding, unpack in [("gzip", "gzip", gzip.decompress), ("br, deflate", "deflate", zlib.decompress)]:
        status, headers, body = raw(endpoint, "POST", "/", get, {
            **ddb, "X-Amz-Target": "DynamoDB_20120810.GetItem", "Accept-Encoding": accept})
        assert status == 200 and headers["content-encoding"] == coding
        assert int(headers["x-amz-crc32"]) == zlib.crc32(body)
        assert json.loads(unpack(body))["Item"]["v"]["S"] == "x" * 6000
    status, headers, body = raw(endpoint, "POST", "/", get, {
        **ddb, "X-Amz-Target": "DynamoDB_20120810.GetItem", "Accept-Encoding": "identity"})
    assert "content-encoding" not in headers and json.loads(body)["Item"]["v"]["S"] == "x" * 6000
    # Small responses stay plain.
    status, headers, body = raw(endpoint, "POST", "/", json.dumps({}).encode(), {
        **ddb, "X-Amz-Target": "DynamoDB_20120810.ListTables", "Accept-Encoding": "gzip"})
    assert status == 200 and "content-encoding" not in headers
    # What does not decode is refused as DynamoDB refuses it, and nothing is written.
    bad = json.dumps({"TableName": "protocol_gz", "Item": {"k": {"S": "bad"}}}).encode()
    for encoding, data in [("gzip", bad), ("gzip", gzip.compress(bad)[:-6]), ("gzip", b""), ("compress", bad)]:
        status, _, body = raw(endpoint, "POST", "/", data, {
            **ddb, "X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Encoding": encoding})
        assert status == 500 and json.loads(body)["__type"].endswith("#InternalServerError"), (encoding, body)
    # A small body that would expand past 16 MB is refused, not expanded.
    bomb = gzip.compress(b" " * (17 << 20))
    assert len(bomb) < 1 << 20
    status, _, body = raw(endpoint, "POST", "/", bomb, {
        **ddb, "X-Amz-Target": "DynamoDB_20120810.PutItem", "Content-Encoding": "gzip"})
    assert status == 413 and json.loads(body)["__type"].endswith("#RequestEntityTooLarge")
    status, _, body = call(endpoint, "DynamoDB_20120810.GetItem", {"TableName": "protocol_gz", "Key": {"k": {"S": "bad"}}})
    assert status == 200 and "Item" not in json.loads(body)


def test_tagging_answers_with_an_empty_body_and_endpoints_name_this_server(endpoint, ddb, table):
    # `call` signs for eu-west-3: the ARN names that region, as DynamoDB requires.
    arn = ddb.describe_table(TableName=table)["Table"]["TableArn"].replace(":us-east-1:", ":eu-west-3:")
    status, headers, body = call(endpoint, "DynamoDB_20120810.TagResource",
                                 {"ResourceArn": arn, "Tags": [{"Key": "k", "Value": "v"}]})
    assert (status, body, headers.get("content-length")) == (200, b"", "0")
    status, _, body = call(endpoint, "DynamoDB_20120810.UntagResource", {"ResourceArn": arn, "TagKeys": ["k"]})
    assert (status, body) == (200, b"")
    assert ddb.list_tags_of_resource(ResourceArn=arn.replace(":eu-west-3:", ":us-east-1:"))["Tags"] == []
    # An SDK doing endpoint discovery must come back to this server, not go to AWS.
    host = endpoint.split("://", 1)[1].rstrip("/")
    assert ddb.describe_endpoints()["Endpoints"] == [{"Address": host, "CachePeriodInMinutes": 1440}]
