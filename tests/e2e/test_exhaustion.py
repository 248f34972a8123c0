"""Running out (issue 19): the local store on a small filesystem that fills
up, and an S3 store that starts answering 503 SlowDown.

- Disk: `strata serve` on a 24 MB tmpfs takes writes until the disk is
  full; then writes fail with a retryable error that says why (nothing
  half-written, the server stays up), every write acknowledged before is
  still there, and once space returns (the filesystem grown in place) the
  same server takes writes again; after a restart everything acknowledged
  is still there. Needs permission to mount a tmpfs (root in the test
  command's container); skipped otherwise.
- SlowDown: a proxy in front of LocalStack answers a share of requests
  with S3's 503 SlowDown for a while; Strata's S3 client backs off and
  retries, clients see successes or retryable errors, and every
  acknowledged write is there afterwards.
"""
import http.client
import http.server
import os
import random
import socketserver
import subprocess
import tempfile
import threading
import time
import uuid

import boto3
import botocore
import pytest
from botocore.config import Config

from conftest import free_port, start_server


def client(url):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=30))


def create(c):
    c.create_table(TableName="full", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                   AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
                   BillingMode="PAY_PER_REQUEST")


def all_there(c, acked):
    for k, v in acked.items():
        item = c.get_item(TableName="full", Key={"pk": {"S": k}}, ConsistentRead=True).get("Item")
        assert item and item["v"]["S"] == v, (k, item)


def mount_tmpfs(path, mb):
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={mb}m", "tmpfs", path], capture_output=True)
    return out.returncode == 0


def test_a_full_disk_fails_writes_clearly_loses_nothing_and_recovers():
    with tempfile.TemporaryDirectory() as d:
        data = os.path.join(d, "data")
        os.makedirs(data)
        if os.geteuid() != 0 or not mount_tmpfs(data, 24):
            pytest.skip("cannot mount a tmpfs here (needs root)")
        proc = None
        try:
            proc, url = start_server(["--data", data])
            c = client(url)
            create(c)
            acked, refused, i = {}, [], 0
            blob = "x" * 8000
            while len(refused) < 20 and i < 20_000:
                i += 1
                k, v = f"k{i}", f"{i}-{blob}"
                try:
                    c.put_item(TableName="full", Item={"pk": {"S": k}, "v": {"S": v}})
                    acked[k] = v
                except botocore.exceptions.ClientError as e:
                    refused.append((e.response["ResponseMetadata"]["HTTPStatusCode"],
                                    e.response["Error"]["Code"], e.response["Error"]["Message"]))
            assert refused, "the disk never filled"
            status, code, message = refused[-1]
            assert status >= 500, refused[-1]  # retryable, as the SDKs retry 5xx
            assert "space" in message.lower(), refused[-1]
            assert proc.poll() is None, "the server stays up"
            all_there(c, acked)
            # Space returns: the same server takes writes again.
            subprocess.run(["mount", "-o", "remount,size=256m", data], check=True)
            for j in range(20):
                c.put_item(TableName="full", Item={"pk": {"S": f"after{j}"}, "v": {"S": "y"}})
                acked[f"after{j}"] = "y"
            all_there(c, acked)
            proc.terminate()
            proc.wait(timeout=10)
            proc, url = start_server(["--data", data])
            all_there(client(url), acked)
            print(f"{len(acked)} acknowledged, {len(refused)} refused: {refused[-1][:2]}")
        finally:
            if proc:
                proc.terminate()
                proc.wait(timeout=10)
            subprocess.run(["umount", data])


class SlowDownProxy(http.server.BaseHTTPRequestHandler):
    """Forwards to LocalStack; while `server.slow` is set, answers a share
    of requests with S3's 503 SlowDown instead."""
    protocol_version = "HTTP/1.1"

    def handle_one(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        if self.server.slow.is_set() and random.random() < 0.5:
            self.server.slowed += 1
            reply = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
                     b"<Message>Please reduce your request rate.</Message></Error>")
            self.send_response(503)
            self.send_header("Content-Type", "application/xml")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)
            return
        conn = http.client.HTTPConnection(self.server.target, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection",)}
        conn.request(self.command, self.path, body=body, headers=headers)
        r = conn.getresponse()
        data = r.read()
        self.send_response(r.status, r.reason)
        for k, v in r.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
        conn.close()

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = handle_one

    def log_message(self, *args):
        pass


@pytest.mark.skipif(not os.environ.get("STRATA_E2E_S3_ENDPOINT"), reason="needs LocalStack (the test command runs it)")
def test_an_s3_store_answering_slowdown_loses_no_acknowledged_write():
    target = os.environ["STRATA_E2E_S3_ENDPOINT"].split("//", 1)[1]
    proxy = socketserver.ThreadingTCPServer(("127.0.0.1", free_port()), SlowDownProxy)
    proxy.daemon_threads = True
    proxy.target, proxy.slow, proxy.slowed = target, threading.Event(), 0
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{proxy.server_address[1]}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
    store = f"s3://{os.environ['STRATA_E2E_BUCKET']}/slow-{uuid.uuid4().hex}?endpoint={endpoint}"
    proc, url = start_server(["--store", store], env)
    try:
        c = client(url)
        create(c)
        acked, errors = {}, {}
        proxy.slow.set()
        started = time.time()
        i = 0
        while time.time() < started + 8:
            i += 1
            try:
                c.put_item(TableName="full", Item={"pk": {"S": f"k{i}"}, "v": {"S": str(i)}})
                acked[f"k{i}"] = str(i)
            except botocore.exceptions.ClientError as e:
                status = e.response["ResponseMetadata"]["HTTPStatusCode"]
                assert status >= 500, e.response  # retryable
                errors[e.response["Error"]["Code"]] = errors.get(e.response["Error"]["Code"], 0) + 1
        proxy.slow.clear()
        print(f"{proxy.slowed} SlowDown answers; {len(acked)} writes acknowledged; client errors {errors}")
        assert proxy.slowed > 10 and len(acked) > 5
        all_there(c, acked)
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        proxy.shutdown()
