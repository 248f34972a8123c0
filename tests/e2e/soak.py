"""The soak (issue 19): `bench/soak.sh [MINUTES]` runs test_crash's load —
three `strata serve` on one local store, six clients that never retry, a
`kill -9` of a random server every 0.3-1.2 s and a store injecting faults
into the tables' requests — for MINUTES, then checks the whole history
(test_crash.check) and prints a table: per minute the operations, their
outcomes, errors by kind, the servers' total RSS at the minute's end and
the p99 latency of acknowledged operations; then the anomalies found
(must be 0)."""
import os
import random
import sys
import tempfile
import threading
import time

import test_crash
from test_crash import SERVERS, CLIENTS, Server, check, client_for, run_client
from conftest import free_port
from history import History

FAULTS = "error:0.02,timeout:0.005,lost:0.01,conflict:0.005,seed:23"


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            return next(int(l.split()[1]) for l in f if l.startswith("VmRSS")) / 1024
    except (OSError, StopIteration):
        return 0.0


def main(minutes):
    tmp = tempfile.TemporaryDirectory()
    args = ["--store", f"file://{tmp.name}?faults={FAULTS}"]
    servers = [Server(args, dict(os.environ), free_port()) for _ in range(SERVERS)]
    for s in servers:
        s.start()
    client_for(servers[0].url).create_table(
        TableName="crash", KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
    history, stop, seen = History(), threading.Event(), {}
    threads = [threading.Thread(target=run_client, args=(n, [s.url for s in servers], history, stop, seen))
               for n in range(CLIENTS)]
    for t in threads:
        t.start()
    rnd, kills, started = random.Random(11), 0, time.monotonic()
    rss = []
    next_minute = started + 60
    while time.monotonic() < started + minutes * 60:
        time.sleep(rnd.uniform(0.3, 1.2))
        victim = rnd.choice(servers)
        victim.kill()
        kills += 1
        time.sleep(rnd.uniform(0.0, 0.3))
        victim.start()
        if time.monotonic() >= next_minute:
            rss.append(sum(rss_mb(s.proc.pid) for s in servers))
            next_minute += 60
    rss.append(sum(rss_mb(s.proc.pid) for s in servers))
    stop.set()
    for t in threads:
        t.join(timeout=60)
    anomalies = "0"
    try:
        check(history, servers[0].url, retries=5)
    except AssertionError as e:
        anomalies = f"FOUND: {str(e)[:300]}"
    finally:
        for s in servers:
            s.stop()
    print(f"\nsoak: {minutes} min, {SERVERS} servers on one local store with faults={FAULTS}, "
          f"{CLIENTS} clients, {kills} kills\n")
    print("| minute | operations | ok | fail | unknown | errors by kind | servers' RSS MB | p99 ms |")
    print("|---:|---:|---:|---:|---:|---|---:|---:|")
    ops = [o for o in history.ops if o.process != 99]
    for m in range(minutes):
        lo, hi = started + 60 * m, started + 60 * (m + 1)
        in_minute = [o for o in ops if lo <= o.invoked < hi]
        errors = {}
        for o in in_minute:
            if o.error:
                k = o.error.split(":")[0]
                errors[k] = errors.get(k, 0) + 1
        lat = sorted(o.completed - o.invoked for o in in_minute if o.status == "ok")
        p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0
        st = {s: sum(1 for o in in_minute if o.status == s) for s in ("ok", "fail", "unknown")}
        kinds = ", ".join(f"{k} {v}" for k, v in sorted(errors.items())) or "-"
        print(f"| {m + 1} | {len(in_minute)} | {st['ok']} | {st['fail']} | {st['unknown']} | {kinds} | "
              f"{rss[min(m, len(rss) - 1)]:.0f} | {p99:.1f} |")
    print(f"\nanomalies: {anomalies}")
    tmp.cleanup()
    return 0 if anomalies == "0" else 1


if __name__ == "__main__":
    test_crash.SECONDS = 0
    sys.exit(main(int(sys.argv[1]) if len(sys.argv) > 1 else 5))
