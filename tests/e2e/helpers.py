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
