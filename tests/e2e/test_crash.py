"""Crash test (issue 19): three `strata serve` processes on one store take
concurrent load from six clients — appends to lists (unique values),
writes (single and in batches), compare-and-sets and strongly consistent
reads of registers —
while a killer `kill -9`s a random server every second or so (mid group
commit, mid compaction: the maintenance pass runs every second) and
restarts it. Clients record every operation (ok / fail / unknown) and the
history is checked afterwards: every acknowledged append is in its list
exactly once and no failed one is, every read was a prefix of the final
list and saw what was acknowledged before it (history.list_append_anomalies);
each register's history is linearizable (history.linearizable). Clients do
not retry, so an unknown outcome is the server's to settle, not hidden by a
resend. On the local store, and on LocalStack's S3 when it runs. The same
load and checks on a store that injects errors, timeouts and lost
responses (the store URL's `faults=`)."""
import os
import random
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
import uuid

import boto3
import botocore
import pytest
from botocore.config import Config

from conftest import STORES, STRATA_BIN, free_port
from history import History, linearizable, list_append_anomalies

SERVERS, CLIENTS, SECONDS = 3, 6, 15
LISTS = [f"list{i}" for i in range(4)]
REGISTERS = [f"reg{i}" for i in range(16)]


class Server:
    def __init__(self, store_args, env, port):
        self.args, self.env, self.port, self.proc = store_args, env, port, None
        self.url = f"http://127.0.0.1:{port}"

    def start(self):
        # Maintenance every second, and partitions that split at 5 commits a
        # second over 2 s: kills land mid compaction and mid split too.
        self.proc = subprocess.Popen([STRATA_BIN, "serve", "--port", str(self.port), "--maintenance-secs", "1",
                                      "--split-commits-per-sec", "5", "--split-window-secs", "2", *self.args], env=self.env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        for _ in range(400):
            try:
                urllib.request.urlopen(self.url + "/", timeout=0.5)
                return
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"strata serve exited with {self.proc.returncode}")
                time.sleep(0.05)
        raise RuntimeError("strata serve did not start")

    def kill(self):
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def client_for(url):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, connect_timeout=1,
                                      read_timeout=10))


def outcome(error):
    """fail: certainly not applied; unknown: may have been."""
    if isinstance(error, botocore.exceptions.EndpointConnectionError):
        return "fail"  # refused before anything was sent
    if isinstance(error, botocore.exceptions.ClientError):
        code = error.response["Error"]["Code"]
        status = error.response["ResponseMetadata"].get("HTTPStatusCode", 500)
        return "unknown" if status >= 500 else "fail"
    return "unknown"


def run_client(n, urls, history, stop, seen):
    rnd = random.Random(n)
    clients = [client_for(u) for u in urls]
    count = 0
    while not stop.is_set():
        c = rnd.choice(clients)
        r = rnd.random()
        count += 1
        if 0.6 <= r < 0.7:
            # A batch of two register writes: each is applied or listed unprocessed.
            keys = rnd.sample(REGISTERS, 2)
            values = [n * 1_000_000 + count * 10 + j for j in range(2)]
            batch = [history.invoke(n, "write", k, v) for k, v in zip(keys, values)]
            try:
                resp = c.batch_write_item(RequestItems={"crash": [
                    {"PutRequest": {"Item": {"pk": {"S": k}, "v": {"N": str(v)}}}} for k, v in zip(keys, values)]})
                unprocessed = {i["PutRequest"]["Item"]["pk"]["S"] for i in resp.get("UnprocessedItems", {}).get("crash", [])}
                for o in batch:
                    History.end(o, "fail" if o.key in unprocessed else "ok")
                    if o.status == "ok":
                        seen[(n, o.key)] = o.value
            except Exception as e:
                for o in batch:
                    History.end(o, outcome(e))
                    o.error = f"{type(e).__name__}: {e}"[:300]
            continue
        if r < 0.4:
            key, value = rnd.choice(LISTS), f"c{n}-{count}"
            o = history.invoke(n, "append", key, value)
            call = lambda: c.update_item(
                TableName="crash", Key={"pk": {"S": key}},
                UpdateExpression="SET l = list_append(if_not_exists(l, :e), :v)",
                ExpressionAttributeValues={":e": {"L": []}, ":v": {"L": [{"S": value}]}})
            result = lambda _: None
        elif r < 0.55:
            key = rnd.choice(LISTS)
            o = history.invoke(n, "read-list", key)
            call = lambda: c.get_item(TableName="crash", Key={"pk": {"S": key}}, ConsistentRead=True)
            result = lambda resp: [v["S"] for v in resp.get("Item", {}).get("l", {}).get("L", [])]
        elif r < 0.7:
            key, value = rnd.choice(REGISTERS), n * 1_000_000 + count
            o = history.invoke(n, "write", key, value)
            call = lambda: c.put_item(TableName="crash", Item={"pk": {"S": key}, "v": {"N": str(value)}})
            result = lambda _: None
        elif r < 0.85 and seen:
            key = rnd.choice(REGISTERS)
            expected = seen.get((n, key))
            if expected is None:
                continue
            new = n * 1_000_000 + count
            o = history.invoke(n, "cas", key, (expected, new))
            call = lambda: c.update_item(
                TableName="crash", Key={"pk": {"S": key}}, UpdateExpression="SET v = :new",
                ConditionExpression="v = :old",
                ExpressionAttributeValues={":new": {"N": str(new)}, ":old": {"N": str(expected)}})
            result = lambda _: None
        else:
            key = rnd.choice(REGISTERS)
            o = history.invoke(n, "read", key)
            call = lambda: c.get_item(TableName="crash", Key={"pk": {"S": key}}, ConsistentRead=True)
            result = lambda resp: int(resp["Item"]["v"]["N"]) if "Item" in resp else None
        try:
            resp = call()
            History.end(o, "ok", True if o.f == "cas" else result(resp))
            if o.f == "read":
                seen[(n, key)] = o.result
            elif o.f == "write":
                seen[(n, key)] = o.value
            elif o.f == "cas":
                seen[(n, key)] = o.value[1]
        except Exception as e:  # every failure is recorded, none ends the run
            if o.f == "cas" and isinstance(e, botocore.exceptions.ClientError) \
                    and e.response["Error"]["Code"] == "ConditionalCheckFailedException":
                History.end(o, "ok", False)  # the condition, observed false
                continue
            History.end(o, outcome(e))
            o.error = f"{type(e).__name__}: {e}"[:300]


def store_args(store, faults=None):
    """The server's store arguments and environment for one of STORES."""
    env = dict(os.environ)
    tmp = tempfile.TemporaryDirectory()
    query = f"?faults={faults}" if faults else ""
    if store == "localstack":
        env.update(AWS_ENDPOINT_URL=os.environ["STRATA_E2E_S3_ENDPOINT"], AWS_ACCESS_KEY_ID="test",
                   AWS_SECRET_ACCESS_KEY="test", AWS_REGION="us-east-1")
        return ["--store", f"s3://{os.environ['STRATA_E2E_BUCKET']}/crash-{uuid.uuid4().hex}{query}"], env, tmp
    return (["--store", f"file://{tmp.name}{query}"] if faults else ["--data", tmp.name]), env, tmp


def run(servers, kill):
    """Six clients for SECONDS against `servers`, killing one now and then
    if `kill`; the history and the number of kills."""
    client_for(servers[0].url).create_table(
        TableName="crash", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST")
    history, stop, seen = History(), threading.Event(), {}
    clients = [threading.Thread(target=run_client, args=(n, [s.url for s in servers], history, stop, seen))
               for n in range(CLIENTS)]
    for t in clients:
        t.start()
    rnd, kills, ends = random.Random(7), 0, time.time() + SECONDS
    while time.time() < ends:
        time.sleep(rnd.uniform(0.3, 1.2))
        if kill:
            victim = rnd.choice(servers)
            victim.kill()
            kills += 1
            time.sleep(rnd.uniform(0.0, 0.3))
            victim.start()
    stop.set()
    for t in clients:
        t.join(timeout=60)
    return history, kills


def check(history, url, retries=1):
    """Reads the final state strongly (a faulty store may need a retry) and
    checks the history: list-append anomalies and register linearizability."""
    c = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="x", config=Config(retries={"mode": "standard",
                                                                      "total_max_attempts": 1 + retries}))
    final = {}
    for key in LISTS:
        item = c.get_item(TableName="crash", Key={"pk": {"S": key}}, ConsistentRead=True).get("Item", {})
        final[key] = [v["S"] for v in item.get("l", {}).get("L", [])]
    ops = list(history.ops)
    statuses = {s: sum(1 for o in ops if o.status == s) for s in ("ok", "fail", "unknown")}
    errors = {}
    for o in ops:
        if o.error:
            kind = o.error.split(":")[0] + " " + o.status
            errors[kind] = errors.get(kind, 0) + 1
    print(f"{len(ops)} operations {statuses}; errors: {errors}")
    anomalies = list_append_anomalies(ops, final)
    by_value = {o.value: o for o in ops if o.f == "append"}
    assert anomalies == [], [(a, by_value.get(a[2]) and by_value[a[2]].error) for a in anomalies]
    for key in REGISTERS:
        last = c.get_item(TableName="crash", Key={"pk": {"S": key}}, ConsistentRead=True).get("Item")
        final_read = history.invoke(99, "read", key)
        History.end(final_read, "ok", int(last["v"]["N"]) if last else None)
        key_ops = history.of_key(key, ("write", "cas", "read"))
        ok, why = linearizable(key_ops)
        if not ok:
            with open(os.path.join(os.environ.get("STRATA_CRASH_DUMP", "/tmp"), f"crash-{key}.txt"), "w") as f:
                for o in sorted(key_ops, key=lambda o: o.invoked):
                    f.write(f"{o.invoked:.4f} {o.completed:.4f} p{o.process} {o.f} {o.value} -> {o.result} "
                            f"{o.status} {o.error}\n")
        assert ok, (key, why)
    return statuses


@pytest.mark.parametrize("store", STORES)
def test_acknowledged_writes_survive_kill_9_and_the_history_checks(store):
    args, env, tmp = store_args(store)
    servers = [Server(args, env, free_port()) for _ in range(SERVERS)]
    try:
        for s in servers:
            s.start()
        history, kills = run(servers, kill=True)
        statuses = check(history, servers[0].url)
        print(f"{kills} kills")
        assert kills >= 5 and statuses["ok"] > 200, statuses
    finally:
        for s in servers:
            s.stop()
        tmp.cleanup()


@pytest.mark.parametrize("store", STORES)
def test_a_faulty_store_keeps_the_history_consistent(store):
    """The same load on a store that fails 3 % of the tables' requests
    before they reach it, times 1 % out, and loses 2 % of responses after
    the request took effect (a conditional create among them: the store
    then reports a conflict, as an S3 client retrying a 500 does)."""
    args, env, tmp = store_args(store, faults="error:0.03,timeout:0.01,lost:0.02,conflict:0.01,seed:19")
    servers = [Server(args, env, free_port()) for _ in range(SERVERS)]
    try:
        for s in servers:
            s.start()
        history, _ = run(servers, kill=False)
        statuses = check(history, servers[0].url, retries=5)
        assert statuses["ok"] > 200, statuses
    finally:
        for s in servers:
            s.stop()
        tmp.cleanup()
