"""The console at /console, driven in headless Chromium (Debian's chromium
and chromium-driver, through Selenium), and /metrics read with the
Prometheus client library's parser.

Screenshots of each page go to .tmp/console-screenshots/ (test artefacts).
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import ROOT, make_client, start_server

CHROMIUM = os.environ.get("STRATA_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("STRATA_CHROMEDRIVER", "/usr/bin/chromedriver")
SHOTS = os.path.join(ROOT, ".tmp", "console-screenshots")
TABLE = "console_fruit"


def browser_missing():
    return not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER))


@pytest.fixture(scope="module")
def server():
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(["--data", d, "--maintenance-secs", "1"])
        try:
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if browser_missing():
        if os.environ.get("STRATA_E2E_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium chromium-driver)")
        pytest.skip("Debian's chromium and chromium-driver are not installed")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="strata-console-chromium-")
    for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1400,1000", f"--user-data-dir={profile}"]:
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(30)
    os.makedirs(SHOTS, exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, css, text=None, timeout=15):
    """The first element matching `css` (containing `text`, if given)."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        for e in driver.find_elements(By.CSS_SELECTOR, css):
            try:
                if text is None or text in e.text:
                    return e
                last = e.text
            except Exception:  # stale: the page redrew it
                pass
        time.sleep(0.1)
    raise AssertionError(f"no {css!r} with {text!r} after {timeout} s (last text: {last!r})")


def wait_gone(driver, css, text, timeout=15):
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if not any(text in e.text for e in driver.find_elements(By.CSS_SELECTOR, css)):
                return
        except Exception:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{css!r} with {text!r} still there after {timeout} s")


def fill(driver, css, value):
    e = wait_for(driver, css)
    e.clear()
    e.send_keys(value)
    return e


def set_text(driver, css, value):
    """Sets a textarea's value at once (send_keys would auto-indent nothing,
    but is slow for JSON)."""
    e = wait_for(driver, css)
    driver.execute_script("arguments[0].value = arguments[1];", e, value)
    return e


def click(driver, css, text=None):
    wait_for(driver, css, text).click()


def go(driver, url):
    driver.get(url)
    time.sleep(0.2)


def shot(driver, name):
    driver.save_screenshot(os.path.join(SHOTS, f"{name}.png"))


def test_console_walkthrough(server, browser):
    d = browser
    ddb = make_client(server)
    go(d, server + "/console")

    # Create a table with a sort key, a stream and a global secondary index.
    fill(d, "#ct-name", TABLE)
    fill(d, "#ct-hash", "kind")
    fill(d, "#ct-range", "name")
    click(d, "#ct-stream")
    fill(d, "#ct-gsi-name", "byColor")
    fill(d, "#ct-gsi-hash", "color")
    click(d, "#ct-submit")
    wait_for(d, "#new-item")
    assert d.current_url.endswith(f"#/table/{TABLE}")
    desc = ddb.describe_table(TableName=TABLE)["Table"]
    assert desc["GlobalSecondaryIndexes"][0]["IndexName"] == "byColor"
    assert desc["StreamSpecification"]["StreamEnabled"]

    # Add two items.
    for name, color in [("apple", "red"), ("banana", "yellow")]:
        click(d, "#new-item")
        set_text(d, "#item-json", json.dumps({"kind": {"S": "fruit"}, "name": {"S": name}, "color": {"S": color}}))
        click(d, "#save-item")
        wait_for(d, "tr.item", name)
    # A bad item: the error DynamoDB gives, shown; nothing stored.
    click(d, "#new-item")
    set_text(d, "#item-json", json.dumps({"kind": {"S": "fruit"}}))
    click(d, "#save-item")
    assert "ValidationException" in wait_for(d, "#item-error", "Validation").text
    assert ddb.scan(TableName=TABLE)["Count"] == 2

    # Edit apple: green now.
    for row in d.find_elements("css selector", "tr.item"):
        if "apple" in row.text:
            row.find_element("css selector", ".edit-item").click()
            break
    set_text(d, "#item-json", json.dumps({"kind": {"S": "fruit"}, "name": {"S": "apple"}, "color": {"S": "green"}}))
    click(d, "#save-item")
    wait_for(d, "tr.item", "green")
    click(d, "#view-plain")
    wait_for(d, "tr.item", '"color":"green"')
    shot(d, "table-items")
    item = ddb.get_item(TableName=TABLE, Key={"kind": {"S": "fruit"}, "name": {"S": "apple"}}, ConsistentRead=True)
    assert item["Item"]["color"] == {"S": "green"}

    # Query with a sort-key condition; the CLI and boto3 renderings run the same query.
    go(d, server + f"/console#/table/{TABLE}/query")
    fill(d, "#q-pk", "fruit")
    d.execute_script("document.querySelector('#q-sk-op').value = 'begins_with';")
    fill(d, "#q-sk", "ban")
    click(d, "#q-run")
    wait_for(d, "#q-count", "1 item (")
    wait_for(d, "tr.q-item", "banana")
    cli = wait_for(d, "#q-cli").text
    py = wait_for(d, "#q-boto3").text
    assert "aws dynamodb query" in cli and "--key-condition-expression" in cli
    shot(d, "table-query")
    ns = {}
    env_keys = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env_keys}
    os.environ.update(env_keys)
    try:
        exec(py.replace('print(response["Items"])', ""), ns)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    assert [i["name"]["S"] for i in ns["response"]["Items"]] == ["banana"]
    aws = os.environ.get("STRATA_AWS_CLI")
    if aws and os.path.exists(aws):
        out = subprocess.run(["bash", "-c", cli.replace("aws dynamodb", f"{aws} dynamodb", 1)], capture_output=True,
                             text=True, env={**os.environ, **env_keys}, timeout=60)
        assert out.returncode == 0, out.stderr
        assert [i["name"]["S"] for i in json.loads(out.stdout)["Items"]] == ["banana"]
    # The index is offered and answers.
    d.execute_script("const s = document.querySelector('#q-index'); s.value = 'byColor'; s.dispatchEvent(new Event('change'));")
    d.execute_script("document.querySelector('#q-sk-op').value = '';")
    fill(d, "#q-pk", "yellow")
    deadline = time.time() + 20
    while True:  # the index catches up in the background
        click(d, "#q-run")
        try:
            wait_for(d, "tr.q-item", "banana", timeout=1)
            break
        except AssertionError:
            assert time.time() < deadline, "the index never showed banana"

    # The stream tab tails new records live.
    go(d, server + f"/console#/table/{TABLE}/stream")
    wait_for(d, "#stream-records")
    time.sleep(1.5)  # the tail starts at LATEST
    ddb.put_item(TableName=TABLE, Item={"kind": {"S": "fruit"}, "name": {"S": "cherry"}, "color": {"S": "red"}})
    wait_for(d, "tr.stream-record", "cherry", timeout=20)
    assert "INSERT" in wait_for(d, "tr.stream-record", "cherry").text
    shot(d, "table-stream")

    # Delete an item from the items tab.
    go(d, server + f"/console#/table/{TABLE}/items")
    wait_for(d, "tr.item", "cherry")
    for row in d.find_elements("css selector", "tr.item"):
        if "cherry" in row.text:
            row.find_element("css selector", ".delete-item").click()
            break
    wait_gone(d, "tr.item", "cherry")
    assert "Item" not in ddb.get_item(TableName=TABLE, Key={"kind": {"S": "fruit"}, "name": {"S": "cherry"}},
                                      ConsistentRead=True)

    # Storage: the table's partitions.
    go(d, server + f"/console#/storage/{TABLE}")
    wait_for(d, "#storage-partitions tr.partition")
    shot(d, "storage")

    # Operations: PutItem counted, with the PUTs it cost per request.
    go(d, server + "/console#/operations")
    row = wait_for(d, "#ops-table tr[data-op='PutItem']")
    cells = [c.text for c in row.find_elements("css selector", "td")]
    assert int(cells[1]) >= 4, cells  # requests
    assert float(cells[4]) > 0, cells  # PUTs per request
    assert cells[9].startswith("$"), cells  # DynamoDB's price beside
    wait_for(d, "#ops-plots svg path")
    wait_for(d, "#errors-table", "ValidationException")
    wait_for(d, "#caches", "blocks")
    shot(d, "operations")

    go(d, server + "/console#/replication")
    wait_for(d, "#replication-table")
    shot(d, "replication")

    # The tables page lists it; delete it with the typed confirmation.
    go(d, server + "/console#/tables")
    row = wait_for(d, f"tr[data-table='{TABLE}']")
    assert "NEW_AND_OLD_IMAGES" in row.text and "GSI byColor" in row.text
    shot(d, "tables")
    row.find_element("css selector", ".delete-table").click()
    fill(d, "#confirm-name", TABLE)
    click(d, "#confirm-delete")
    wait_gone(d, "#tables", TABLE)
    assert TABLE not in ddb.list_tables()["TableNames"]

    # No errors in the browser console but the one 400 provoked above.
    severe = [e for e in d.get_log("browser") if e["level"] == "SEVERE"]
    unexpected = [e for e in severe if "status of 400" not in e["message"]]
    assert not unexpected, unexpected
    assert len(severe) <= 1, severe


def test_metrics_parse_as_prometheus_text(server):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    ddb = make_client(server)
    ddb.create_table(TableName="metrics_t", KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
                     AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
                     BillingMode="PAY_PER_REQUEST")
    for i in range(5):
        ddb.put_item(TableName="metrics_t", Item={"k": {"S": f"k{i}"}})
    with pytest.raises(Exception):
        ddb.get_item(TableName="metrics_t", Key={"nope": {"S": "x"}})
    with urllib.request.urlopen(server + "/metrics") as r:
        assert r.headers["Content-Type"].startswith("application/openmetrics-text")
        text = r.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = lambda name: {tuple(sorted(s.labels.items())): s.value for s in families[name].samples}  # noqa: E731
    requests = samples("strata_requests")
    assert requests[(("operation", "PutItem"),)] >= 5
    errors = samples("strata_request_errors")
    assert errors[(("code", "ValidationException"), ("operation", "GetItem"))] == 1
    store = samples("strata_store_requests")
    assert store[(("kind", "PUT"), ("operation", "PutItem"))] >= 5
    assert families["strata_request_duration_seconds"].type == "histogram"
    assert samples("strata_table_partitions")[(("table", "metrics_t"),)] >= 1
    for name in ["strata_cache_hits", "strata_log_puts", "strata_compaction_flushes", "strata_gc_passes"]:
        assert name in families, name


def non_loopback_address():
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("10.255.255.255", 1))
            ip = s.getsockname()[0]
    except OSError:
        return None
    return None if ip.startswith("127.") else ip


def test_the_console_answers_loopback_only_and_metrics_anyone():
    ip = non_loopback_address()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    with tempfile.TemporaryDirectory() as d:
        proc, url = start_server(["--data", d, "--host", "0.0.0.0"])
        try:
            port = url.rsplit(":", 1)[1]
            assert urllib.request.urlopen(url + "/console").status == 200
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(f"http://{ip}:{port}/console/api/status")
            assert e.value.code == 403
            assert urllib.request.urlopen(f"http://{ip}:{port}/metrics").status == 200
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def test_with_auth_the_console_signs_in_the_browser(browser):
    """With --auth the console asks for an access key and signs every call
    with it (WebCrypto); a wrong secret is refused with DynamoDB's error."""
    d = browser
    with tempfile.TemporaryDirectory() as tmp:
        users = os.path.join(tmp, "users.json")
        with open(users, "w") as f:
            json.dump({"users": [{"name": "ops", "access_key_id": "AKIACONSOLE00000001", "secret_access_key": "s3cret",
                                  "policy": {"Statement": [{"Effect": "Allow", "Action": "dynamodb:*", "Resource": "*"}]}}]}, f)
        proc, url = start_server(["--data", os.path.join(tmp, "data"), "--auth", users])
        try:
            d.get(url + "/console")
            d.execute_script("sessionStorage.clear();")
            go(d, url + "/console#/tables")
            fill(d, "#signin-key", "AKIACONSOLE00000001")
            fill(d, "#signin-secret", "wrong")
            click(d, "#signin-submit")
            assert "InvalidSignatureException" in wait_for(d, "#signin-error").text
            fill(d, "#signin-key", "AKIACONSOLE00000001")
            fill(d, "#signin-secret", "s3cret")
            click(d, "#signin-submit")
            fill(d, "#ct-name", "signed_table")
            click(d, "#ct-submit")
            wait_for(d, "#new-item")
            shot(d, "signed-in")
            signed = {"AWS_ACCESS_KEY_ID": "AKIACONSOLE00000001", "AWS_SECRET_ACCESS_KEY": "s3cret"}
            import boto3
            c = boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
                             aws_access_key_id=signed["AWS_ACCESS_KEY_ID"],
                             aws_secret_access_key=signed["AWS_SECRET_ACCESS_KEY"])
            assert "signed_table" in c.list_tables()["TableNames"]
            d.execute_script("sessionStorage.clear();")
        finally:
            proc.terminate()
            proc.wait(timeout=10)
