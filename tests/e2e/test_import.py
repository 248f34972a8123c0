"""ImportTable through boto3: a Strata export (DynamoDB JSON, gzip) imported
into a new table equals its source; a CSV with bad lines imports the good ones
and counts the rest; ION; DescribeImport, ListImports and the errors. The
source bucket is `local-exports` (a directory the server maps, see conftest),
and for the round trip also `moto-exports` (a bucket on moto) when moto runs."""
import os
import time
import uuid

import pytest

from conftest import SERVERS
from helpers import N, S, error_of, until
from test_export import fill, normalize, pitr_table, snapshot, wait_export


def params(name, sk="S", **extra):
    return {
        "TableName": name, "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}, {"AttributeName": "sk", "AttributeType": sk}],
        **extra,
    }


def wait_import(ddb, arn):
    def done():
        d = ddb.describe_import(ImportArn=arn)["ImportTableDescription"]
        return d["ImportStatus"] != "IN_PROGRESS" and d
    d = until(done, timeout=60)
    assert d and d["ImportStatus"] == "COMPLETED", d
    return d


@pytest.mark.parametrize("bucket", ["local-exports", "moto-exports"])
def test_a_strata_export_imports_back_into_an_equal_table(endpoint, ddb, bucket):
    """Through a local directory, and through a bucket on an S3 server
    (moto) other than the table's store."""
    if bucket == "moto-exports" and "moto_endpoint" not in SERVERS[endpoint]:
        pytest.skip("no moto server (STRATA_E2E_MOTO_ENDPOINT)")
    t = pitr_table(ddb)
    fill(ddb, t, 80, "a")
    time.sleep(1.1)
    before = snapshot(ddb, t)
    arn = ddb.describe_table(TableName=t)["Table"]["TableArn"]
    prefix = "rt-" + uuid.uuid4().hex[:6]
    e = ddb.export_table_to_point_in_time(TableArn=arn, S3Bucket=bucket, S3Prefix=prefix,
                                          ExportFormat="DYNAMODB_JSON")
    desc = wait_export(ddb, e["ExportDescription"]["ExportArn"])
    data = f"{prefix}/AWSDynamoDB/{desc['ExportArn'].rsplit('/', 1)[1]}/data/"
    target = t + "_imported"
    r = ddb.import_table(S3BucketSource={"S3Bucket": bucket, "S3KeyPrefix": data},
                         InputFormat="DYNAMODB_JSON", InputCompressionType="GZIP",
                         TableCreationParameters=params(target))["ImportTableDescription"]
    assert r["ImportStatus"] == "IN_PROGRESS" and r["TableArn"].endswith(f"table/{target}")
    d = wait_import(ddb, r["ImportArn"])
    assert (d["ProcessedItemCount"], d["ImportedItemCount"], d["ErrorCount"]) == (80, 80, 0)
    assert d["ProcessedSizeBytes"] > 0 and d["EndTime"] >= d["StartTime"]
    assert ddb.describe_table(TableName=target)["Table"]["TableStatus"] == "ACTIVE"
    after = snapshot(ddb, target)
    assert {k: normalize(v) for k, v in after.items()} == {k: normalize(v) for k, v in before.items()}
    listed = ddb.list_imports(TableArn=d["TableArn"])["ImportSummaryList"]
    assert [s["ImportArn"] for s in listed] == [d["ImportArn"]] and listed[0]["ImportStatus"] == "COMPLETED"


def test_a_csv_with_bad_lines_imports_the_good_ones(endpoint, ddb):
    folder = "csv-" + uuid.uuid4().hex[:6]
    os.makedirs(os.path.join(SERVERS[endpoint]["exports_dir"], folder))
    with open(os.path.join(SERVERS[endpoint]["exports_dir"], folder, "part1.csv"), "w") as f:
        f.write("pk;sk;note;count\n")
        f.write("a;1;first;10\n")
        f.write("a;2;second;\n")            # an empty cell is no attribute
        f.write("b;x;not a number key;1\n")  # bad: sk is a Number
        f.write(";3;no partition key;1\n")   # bad: no pk
        f.write("c;4;too;many;fields\n")     # bad: more fields than the header
        f.write("b;5;\"quoted; with delimiter\";7\n")
    target = "csv_" + uuid.uuid4().hex[:8]
    r = ddb.import_table(S3BucketSource={"S3Bucket": "local-exports", "S3KeyPrefix": folder + "/"},
                         InputFormat="CSV", InputFormatOptions={"Csv": {"Delimiter": ";"}},
                         TableCreationParameters=params(target, sk="N"))["ImportTableDescription"]
    d = wait_import(ddb, r["ImportArn"])
    assert (d["ProcessedItemCount"], d["ImportedItemCount"], d["ErrorCount"]) == (6, 3, 3)
    items = {(i["pk"]["S"], i["sk"]["N"]): i for i in ddb.scan(TableName=target, ConsistentRead=True)["Items"]}
    assert items == {
        ("a", "1"): {"pk": S("a"), "sk": N(1), "note": S("first"), "count": S("10")},
        ("a", "2"): {"pk": S("a"), "sk": N(2), "note": S("second")},
        ("b", "5"): {"pk": S("b"), "sk": N(5), "note": S("quoted; with delimiter"), "count": S("7")},
    }
    # A header list instead of a header line.
    target2 = target + "_h"
    with open(os.path.join(SERVERS[endpoint]["exports_dir"], folder, "nohead.txt"), "w") as f:
        f.write("z,9,zed\n")
    r = ddb.import_table(S3BucketSource={"S3Bucket": "local-exports", "S3KeyPrefix": folder + "/nohead"},
                         InputFormat="CSV", InputFormatOptions={"Csv": {"HeaderList": ["pk", "sk", "name"]}},
                         TableCreationParameters=params(target2, sk="N"))["ImportTableDescription"]
    assert wait_import(ddb, r["ImportArn"])["ImportedItemCount"] == 1
    assert ddb.get_item(TableName=target2, Key={"pk": S("z"), "sk": N(9)})["Item"]["name"] == S("zed")


def test_ion_imports_as_dynamodb_exports_it(endpoint, ddb):
    folder = "ion-" + uuid.uuid4().hex[:6]
    os.makedirs(os.path.join(SERVERS[endpoint]["exports_dir"], folder))
    with open(os.path.join(SERVERS[endpoint]["exports_dir"], folder, "data.ion"), "w") as f:
        f.write('$ion_1_0 {Item:{pk:"a",sk:"1",n:15d-1,ss:$dynamodb_SS::["x","y"],m:{l:[true,null]}}}\n')
        f.write('{Item:{pk:"a",sk:"2",b:{{aGk=}}}}\n')
        f.write('{Item:{sk:"3"}}\n')  # bad: no partition key
    target = "ion_" + uuid.uuid4().hex[:8]
    r = ddb.import_table(S3BucketSource={"S3Bucket": "local-exports", "S3KeyPrefix": folder + "/"},
                         InputFormat="ION", TableCreationParameters=params(target))["ImportTableDescription"]
    d = wait_import(ddb, r["ImportArn"])
    assert (d["ImportedItemCount"], d["ErrorCount"]) == (2, 1)
    got = ddb.get_item(TableName=target, Key={"pk": S("a"), "sk": S("1")})["Item"]
    assert got["n"] == N("1.5") and sorted(got["ss"]["SS"]) == ["x", "y"]
    assert got["m"] == {"M": {"l": {"L": [{"BOOL": True}, {"NULL": True}]}}}
    assert ddb.get_item(TableName=target, Key={"pk": S("a"), "sk": S("2")})["Item"]["b"] == {"B": b"hi"}


def test_import_errors(endpoint, ddb):
    source = {"S3Bucket": "local-exports", "S3KeyPrefix": "nothing/"}
    name = "err_" + uuid.uuid4().hex[:8]
    code, _, _ = error_of(ddb.import_table, S3BucketSource=source, InputFormat="CSV",
                          InputCompressionType="GZIP",
                          InputFormatOptions={"Csv": {"Delimiter": "x"}}, TableCreationParameters=params(name))
    assert code == "ValidationException"
    code, _, _ = error_of(ddb.import_table, S3BucketSource=source, InputFormat="DYNAMODB_JSON",
                          InputFormatOptions={"Csv": {"Delimiter": ","}}, TableCreationParameters=params(name))
    assert code == "ValidationException"
    existing = "ex_" + uuid.uuid4().hex[:8]
    ddb.create_table(**params(existing))
    code, _, _ = error_of(ddb.import_table, S3BucketSource=source, InputFormat="CSV",
                          TableCreationParameters=params(existing))
    assert code == "ResourceInUseException"
    missing = f"arn:aws:dynamodb:us-east-1:000000000000:table/{name}/import/01700000000000-00000000"
    code, _, _ = error_of(ddb.describe_import, ImportArn=missing)
    assert code == "ImportNotFoundException"
    # No objects under the prefix: an empty table, no errors.
    r = ddb.import_table(S3BucketSource=source, InputFormat="CSV", TableCreationParameters=params(name))
    d = wait_import(ddb, r["ImportTableDescription"]["ImportArn"])
    assert (d["ProcessedItemCount"], d["ErrorCount"]) == (0, 0)


def test_strata_import_from_the_shell(tmp_path):
    """`strata import` creates the table and ingests gzip'd CSV with a progress
    bar; a server on the same directory then serves the items."""
    import gzip
    import subprocess

    from conftest import STRATA_BIN, make_client, start_server

    src = tmp_path / "users.csv.gz"
    with gzip.open(src, "wt") as f:
        f.write("id,name\n")
        for i in range(500):
            f.write(f"u{i:03},name {i}\n")
        f.write(",nobody\n")  # bad: no key
    data = tmp_path / "data"
    out = subprocess.run([STRATA_BIN, "import", "--data", str(data), "--table", "users", "--key", "id:S",
                          "--from", str(src), "--format", "csv", "--compression", "gzip"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "imported 500 of 501 items" in out.stdout and "1 errors" in out.stdout
    assert "errorMessages" in out.stderr  # the bad line, logged as DynamoDB logs it
    proc, url = start_server(["--data", str(data)])
    try:
        ddb = make_client(url)
        assert ddb.get_item(TableName="users", Key={"id": S("u042")})["Item"]["name"] == S("name 42")
        assert ddb.scan(TableName="users", Select="COUNT")["Count"] == 500
    finally:
        proc.terminate()
        proc.wait(timeout=10)
