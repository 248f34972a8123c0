"""Ctrl-C stops `strata serve` cleanly, and every acknowledged write survives a restart."""
import signal
import subprocess
import tempfile

from conftest import STRATA_BIN, free_port, make_client, start_server


def start(data):
    return start_server(["--data", data], output=subprocess.PIPE)


def test_ctrl_c_is_clean_and_acknowledged_writes_survive():
    with tempfile.TemporaryDirectory() as data:
        proc, url = start(data)
        ddb = make_client(url)
        ddb.create_table(TableName="durable", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                         AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "N"}], BillingMode="PAY_PER_REQUEST")
        for i in range(100):
            ddb.put_item(TableName="durable", Item={"k": {"N": str(i)}, "v": {"S": "x" * i}})
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "shutting down" in out
        proc, url = start(data)
        try:
            ddb = make_client(url)
            items = ddb.scan(TableName="durable", ConsistentRead=True)["Items"]
            assert sorted(int(i["k"]["N"]) for i in items) == list(range(100))
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_refuses_a_bad_store_with_a_clear_message():
    out = subprocess.run([STRATA_BIN, "serve", "--store", "ftp://nowhere/x", "--port", str(free_port())], capture_output=True, text=True, timeout=30)
    assert out.returncode != 0 and "invalid store URL" in out.stderr
