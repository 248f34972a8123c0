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
