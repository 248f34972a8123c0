import time

import botocore.exceptions
import pytest


def error_of(fn, *args, **kwargs):
    """Calls fn, expecting a DynamoDB error; returns (code, message, response)."""
    with pytest.raises(botocore.exceptions.ClientError) as info:
        fn(*args, **kwargs)
    e = info.value.response
    return e["Error"]["Code"], e["Error"].get("Message", ""), e


def S(v):
    return {"S": v}


def N(v):
    return {"N": str(v)}


def until(check, timeout=10.0):
    """Polls `check` (something eventually consistent: global indexes,
    table statistics) until it returns a truthy value; returns that value."""
    deadline = time.time() + timeout
    while True:
        got = check()
        if got or time.time() > deadline:
            return got
        time.sleep(0.05)
