"""The cost levers from a user's side: a store split by tier behind
`strata serve` (the log in a store of its own, as in S3 Express One Zone),
and `strata cost`'s report."""
import os
import subprocess
import tempfile

from conftest import STRATA_BIN, make_client, start_server


def test_serve_keeps_the_log_in_its_own_store_and_survives_a_restart():
    with tempfile.TemporaryDirectory() as d:
        url = f"file://{d}/main?log=file://{d}/log"
        proc, endpoint = start_server(["--store", url])
        try:
            ddb = make_client(endpoint)
            ddb.create_table(TableName="split", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                             AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                             BillingMode="PAY_PER_REQUEST")
            for i in range(20):
                ddb.put_item(TableName="split", Item={"k": {"S": f"k{i}"}, "v": {"N": str(i)}})
        finally:
            proc.terminate()
            proc.wait(timeout=10)
        segments = [f for _, _, fs in os.walk(f"{d}/log") for f in fs if f.endswith(".seg")]
        assert segments, "log segments are in the log store"
        assert not [f for _, _, fs in os.walk(f"{d}/main") for f in fs if f.endswith(".seg")]
        proc, endpoint = start_server(["--store", url])
        try:
            items = make_client(endpoint).scan(TableName="split", ConsistentRead=True)["Items"]
            assert sorted(int(i["v"]["N"]) for i in items) == list(range(20))
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_strata_cost_prices_a_workload_next_to_dynamodb():
    out = subprocess.run([STRATA_BIN, "cost", "--size-gb", "10", "--writes-per-sec", "50", "--reads-per-sec", "200",
                          "--deployment", "serve", "--vms", "1", "--price", "vm_month=10"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for line in ["strata serve on 1 VM(s)", "DynamoDB on-demand", "DynamoDB provisioned", "S3 Express PUT/LIST",
                 "10.00  1 VM(s)", "| deployment | $ a month | vs DynamoDB on-demand |"]:
        assert line in out.stdout, (line, out.stdout)
    bad = subprocess.run([STRATA_BIN, "cost", "--price", "nothing=1"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and "unknown price" in bad.stderr


def test_strata_cost_matches_a_hand_computation():
    """10 GB, 50 writes/s, 200 eventual reads/s of 1 KB items, one VM at $10,
    a 30-day month (2,592,000 s), the default prices, by hand."""
    out = subprocess.run([STRATA_BIN, "cost", "--size-gb", "10", "--writes-per-sec", "50", "--reads-per-sec", "200",
                          "--deployment", "serve", "--vms", "1", "--price", "vm_month=10"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    month = 30 * 86400
    writes, reads = 50 * month / 1e6, 200 * month / 1e6  # millions a month
    lines = {}
    for line in out.stdout.splitlines():
        parts = line.strip().split(None, 1)
        if len(parts) == 2 and parts[0].replace(".", "").isdigit():
            lines.setdefault(parts[1].split(":")[0], []).append((float(parts[0]), parts[1]))
    # DynamoDB: every figure by hand, to the cent.
    assert lines["writes"][0][0] == round(writes * 1 * 0.625, 2) == 81.00
    assert lines["reads"][0][0] == round(reads * 0.5 * 0.125, 2) == 32.40
    assert [v for v, _ in lines["storage"] if "10 GB" == _.split(": ")[1]] == [2.50, 2.50]
    assert lines["50 WCU"][0][0] == round(50 * 720 * 0.00065, 2) == 23.40
    assert lines["100 RCU"][0][0] == round(100 * 720 * 0.00013, 2) == 9.36
    # Strata: the measured requests per operation it prints, times the rates and prices.
    def per(label, unit):
        # e.g. "S3 Express PUT/LIST: 0.88 per write, 0.000 per read"
        text = lines[label][0][1].split(": ", 1)[1]
        return float(text.split(f" per {unit}")[0].split()[-1])
    express_put = lines["S3 Express PUT/LIST"][0]
    expected = writes * per("S3 Express PUT/LIST", "write") * 1.13 + reads * per("S3 Express PUT/LIST", "read") * 1.13
    assert abs(express_put[0] - expected) <= 0.01 * expected + 0.01, (express_put, expected)
    standard_get = lines["S3 Standard GET/HEAD"][0]
    expected = reads * per("S3 Standard GET/HEAD", "read") * 0.40 + writes * per("S3 Standard GET/HEAD", "write") * 0.40
    assert abs(standard_get[0] - expected) <= 0.01 * expected + 0.01, (standard_get, expected)
    sst_storage = [v for v, t in lines["storage"] if "SSTs" in t][0]
    assert sst_storage == round(10 * 0.023, 2)
    log_storage = [v for v, t in lines["storage"] if "log" in t][0]
    assert abs(log_storage - 50 * 86400 * 1e-6 * 0.11) < 0.01  # a day of 1 KB writes in Express
    assert lines["1 VM(s)"][0][0] == 10.00
