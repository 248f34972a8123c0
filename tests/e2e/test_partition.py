"""Regions cut off from each other (issue 19): two regions of a global table,
each a `strata serve` on its own store, replicating to each other through
a replica store whose link a test cuts and heals (the replica URL's
`faults=cut:FILE`: every request to the other region's store fails while
FILE exists), and now and then a region's server is killed (mid
replication) and restarted. Both regions take writes throughout — to keys
of their own and to keys both write. After the link is healed for good both regions
converge item for item, and each region's history of its own keys (writes,
compare-and-sets, strong reads, recorded by clients that never retry) is
linearizable. On two local directories, or LocalStack and moto when the
test command runs them."""
import os
import random
import tempfile
import threading
import time

import botocore
import pytest
from botocore.config import Config

from conftest import free_port
from history import History, linearizable
from test_crash import Server
from test_global_tables import create_global, region_stores, scan

SECONDS, CLIENTS = 12, 3


def client(url):
    import boto3
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x",
                        config=Config(retries={"mode": "standard", "total_max_attempts": 1}, read_timeout=10))


def with_cut(url, cut):
    return url + ("&" if "?" in url else "?") + f"faults=cut:{cut}"


def region_client(n, region, url, table, history, stop):
    rnd = random.Random(f"{region}{n}")
    c = client(url)
    last = {}
    count = 0
    while not stop.is_set():
        count += 1
        o = None
        own = f"{region}-reg{rnd.randrange(6)}"
        r = rnd.random()
        key = {"pk": {"S": own}, "sk": {"S": "r"}}
        try:
            if r < 0.3:
                value = f"{region}{n}-{count}"
                o = history.invoke(n, "write", own, value)
                c.put_item(TableName=table, Item={**key, "v": {"S": value}})
                History.end(o, "ok")
                last[own] = value
            elif r < 0.5 and own in last:
                new = f"{region}{n}-{count}"
                o = history.invoke(n, "cas", own, (last[own], new))
                try:
                    c.update_item(TableName=table, Key=key, UpdateExpression="SET v = :n",
                                  ConditionExpression="v = :o",
                                  ExpressionAttributeValues={":n": {"S": new}, ":o": {"S": last[own]}})
                    History.end(o, "ok", True)
                    last[own] = new
                except botocore.exceptions.ClientError as e:
                    if e.response["Error"]["Code"] != "ConditionalCheckFailedException":
                        raise
                    History.end(o, "ok", False)
            elif r < 0.8:
                o = history.invoke(n, "read", own)
                item = c.get_item(TableName=table, Key=key, ConsistentRead=True).get("Item")
                History.end(o, "ok", item["v"]["S"] if item else None)
                if item:
                    last[own] = item["v"]["S"]
            else:
                o = None
                c.put_item(TableName=table, Item={"pk": {"S": f"shared{rnd.randrange(4)}"}, "sk": {"S": "s"},
                                                  "v": {"S": f"{region}{n}-{count}"}})
        except Exception as e:  # recorded; the run goes on
            if o is not None and o.status == "unknown" and o.completed == float("inf"):
                refused = isinstance(e, botocore.exceptions.EndpointConnectionError) or (
                    isinstance(e, botocore.exceptions.ClientError)
                    and e.response["ResponseMetadata"].get("HTTPStatusCode", 500) < 500)
                History.end(o, "fail" if refused else "unknown")
                o.error = f"{type(e).__name__}: {e}"[:200]
        time.sleep(0.005)


def test_regions_cut_off_and_healed_converge_and_stay_linearizable():
    tmp = tempfile.TemporaryDirectory()
    cut = os.path.join(tmp.name, "link-cut")
    a_url, b_url = region_stores(tmp.name)
    env = dict(os.environ, AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test")
    servers = {
        "a": Server(["--region", "us-east-1", "--store", a_url, "--replica", f"eu-west-1={with_cut(b_url, cut)}",
                     "--replicate-interval-ms", "100"], env, free_port()),
        "b": Server(["--region", "eu-west-1", "--store", b_url, "--replica", f"us-east-1={with_cut(a_url, cut)}",
                     "--replicate-interval-ms", "100"], env, free_port()),
    }
    for s in servers.values():
        s.start()
    ua, ub = servers["a"].url, servers["b"].url
    try:
        a, b = client(ua), client(ub)
        t = create_global(a, b)
        histories = {"a": History(), "b": History()}
        stop = threading.Event()
        threads = [threading.Thread(target=region_client, args=(n, region, url, t, histories[region], stop))
                   for region, url in (("a", ua), ("b", ub)) for n in range(CLIENTS)]
        for th in threads:
            th.start()
        rnd, cuts, kills, ends = random.Random(3), 0, 0, time.time() + SECONDS
        while time.time() < ends:
            time.sleep(rnd.uniform(0.5, 2.0))
            if os.path.exists(cut):
                os.remove(cut)
            else:
                open(cut, "w").close()
                cuts += 1
            if rnd.random() < 0.5:
                # A region's server killed mid replication, and restarted.
                victim = servers[rnd.choice("ab")]
                victim.kill()
                kills += 1
                time.sleep(rnd.uniform(0.0, 0.3))
                victim.start()
        if os.path.exists(cut):
            os.remove(cut)  # healed for good
        stop.set()
        for th in threads:
            th.join(timeout=60)
        assert cuts >= 2 and kills >= 1, (cuts, kills)

        deadline = time.monotonic() + 90
        while True:
            x, y = scan(a, t), scan(b, t)
            if x == y:
                break
            assert time.monotonic() < deadline, f"regions did not converge: {len(x)} vs {len(y)} items"
            time.sleep(0.3)
        for region, c in (("a", a), ("b", b)):
            h = histories[region]
            ops = h.ops
            print(region, len(ops), {s: sum(1 for o in ops if o.status == s) for s in ("ok", "fail", "unknown")})
            for i in range(6):
                key = f"{region}-reg{i}"
                item = c.get_item(TableName=t, Key={"pk": {"S": key}, "sk": {"S": "r"}}, ConsistentRead=True).get("Item")
                final = h.invoke(99, "read", key)
                History.end(final, "ok", item["v"]["S"] if item else None)
                ok, why = linearizable(h.of_key(key, ("write", "cas", "read")))
                assert ok, (region, key, why)
            assert sum(1 for o in ops if o.status == "ok") > 50
    finally:
        for s in servers.values():
            s.stop()
        tmp.cleanup()
