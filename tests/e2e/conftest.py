"""End-to-end fixtures: a running `strata serve` and boto3 clients for it.

The server binary comes from STRATA_BIN (default: target/debug/strata). Each
store in STRATA_E2E_STORES (comma-separated; default "file") gets its own
server: "file" is a temporary directory; "localstack" is
s3://$STRATA_E2E_BUCKET/<random prefix> on LocalStack at $STRATA_E2E_S3_ENDPOINT.
"""
import os
import socket
import subprocess
import tempfile
import time
import urllib.request
import uuid

import boto3
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STORES = [s for s in os.environ.get("STRATA_E2E_STORES", "file").split(",") if s]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What each running server fixture was started with, by endpoint URL.
SERVERS = {}

STRATA_BIN = os.environ.get("STRATA_BIN", os.path.join(ROOT, "target", "debug", "strata"))


def start_server(args, env=None, output=subprocess.DEVNULL, tls=False):
    """Starts `strata serve ARGS` on a free loopback port and waits until it
    answers (with `tls`, until its port accepts); returns (process, url).
    Output (stdout and stderr) goes to `output`."""
    port = free_port()
    proc = subprocess.Popen([STRATA_BIN, "serve", "--port", str(port), *args], env=env, stdout=output,
                            stderr=subprocess.STDOUT, text=True)
    url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    for _ in range(200):
        try:
            if tls:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            else:
                urllib.request.urlopen(url + "/", timeout=0.5)
            return proc, url
        except OSError:
            if proc.poll() is not None:
                raise RuntimeError(f"strata serve exited with {proc.returncode}")
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("strata serve did not start")


@pytest.fixture(scope="session", params=STORES)
def endpoint(request):
    env = dict(os.environ)
    tmp = tempfile.TemporaryDirectory()
    if request.param == "file":
        args = ["--data", tmp.name]
    elif request.param == "localstack":
        env.update(
            AWS_ENDPOINT_URL=os.environ["STRATA_E2E_S3_ENDPOINT"],
            AWS_ACCESS_KEY_ID="test",
            AWS_SECRET_ACCESS_KEY="test",
            AWS_REGION="us-east-1",
        )
        args = ["--store", f"s3://{os.environ['STRATA_E2E_BUCKET']}/e2e-{uuid.uuid4().hex}"]
    else:
        raise ValueError(f"unknown store {request.param}")
    # Export destinations: a local directory, and (when the test command
    # runs moto) a bucket on moto, another S3 server than the table's.
    exports = os.path.join(tmp.name, "exports")
    info = {"exports_dir": exports}
    args += ["--export-bucket", f"local-exports=file://{exports}"]
    moto = os.environ.get("STRATA_E2E_MOTO_ENDPOINT")
    if moto:
        prefix = f"exp-{uuid.uuid4().hex[:8]}"
        args += ["--export-bucket",
                 f"moto-exports=s3://{os.environ['STRATA_E2E_BUCKET']}/{prefix}?endpoint={moto}&region=us-east-1"]
        env.setdefault("AWS_ACCESS_KEY_ID", "test")
        env.setdefault("AWS_SECRET_ACCESS_KEY", "test")
        info.update(moto_endpoint=moto, moto_bucket=os.environ["STRATA_E2E_BUCKET"], moto_prefix=prefix)
    log = open(os.path.join(tmp.name, "server.log"), "w")
    proc, url = start_server(args, env, output=log)
    SERVERS[url] = info
    yield url
    proc.terminate()
    proc.wait(timeout=10)
    tmp.cleanup()


def make_client(url, service="dynamodb"):
    return boto3.client(
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="AKIDSTRATA",
        aws_secret_access_key="secret",
    )


@pytest.fixture(scope="session")
def ddb(endpoint):
    return make_client(endpoint)


@pytest.fixture(scope="session")
def resource(endpoint):
    return boto3.resource(
        "dynamodb", endpoint_url=endpoint, region_name="us-east-1",
        aws_access_key_id="AKIDSTRATA", aws_secret_access_key="secret",
    )


def new_table(ddb, range_type="S", hash_type="S", **extra):
    name = "t_" + uuid.uuid4().hex[:12]
    keys = [{"AttributeName": "pk", "KeyType": "HASH"}]
    defs = [{"AttributeName": "pk", "AttributeType": hash_type}]
    if range_type:
        keys.append({"AttributeName": "sk", "KeyType": "RANGE"})
        defs.append({"AttributeName": "sk", "AttributeType": range_type})
    ddb.create_table(TableName=name, KeySchema=keys, AttributeDefinitions=defs, BillingMode="PAY_PER_REQUEST", **extra)
    return name


@pytest.fixture
def table(ddb):
    """A fresh table: pk (S) HASH, sk (S) RANGE."""
    return new_table(ddb)


@pytest.fixture
def ntable(ddb):
    """A fresh table: pk (S) HASH, sk (N) RANGE."""
    return new_table(ddb, range_type="N")
