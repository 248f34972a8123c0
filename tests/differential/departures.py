"""Where Strata answers differently from DynamoDB Local on purpose. Each
departure is argued in docs/limits.md ("Known departures from DynamoDB
Local"); the differential test counts a difference as known only when one
of these recognises it, and narrowly: the rest of the answer must agree.

REPAIRS run after every request: where a departure leaves the two stores
holding different items, they make them equal again, so one known
difference does not show up again in every later answer."""
import re
from decimal import Decimal, InvalidOperation


class Departure:
    def __init__(self, name, applies):
        self.name = name
        self.applies = applies


def _without(d, *keys):
    return {k: v for k, v in d.items() if k not in keys}


def _body(n):
    return n.get("body", {})


def _error(n, type_=None):
    return n.get("status", 200) != 200 and (type_ is None or n.get("type") == type_)


def duplicate_item(op, body, a, b):
    # DynamoDB's API reference names the PartiQL INSERT error
    # DuplicateItemException; DynamoDB Local sends DuplicateItem.
    return a.get("type") == "DuplicateItem" and b.get("type") == "DuplicateItemException" \
        and _without(a, "type") == _without(b, "type")


def statement_extras(op, body, a, b):
    # ExecuteStatement reports ConsumedCapacity when asked, and the
    # LastEvaluatedKey beside NextToken (DynamoDB's API reference);
    # DynamoDB Local sends neither.
    return op == "ExecuteStatement" and a.get("status") == 200 and b.get("status") == 200 and \
        _without(_body(a), "ConsumedCapacity", "LastEvaluatedKey") == \
        _without(_body(b), "ConsumedCapacity", "LastEvaluatedKey")


def updated_paths(op, body, a, b):
    # UPDATED_OLD/UPDATED_NEW (RETURNING MODIFIED …) return only the updated
    # paths, nested in their parents, as DynamoDB does; DynamoDB Local
    # returns whole top-level attributes.
    rv = body.get("ReturnValues") if op == "UpdateItem" else None
    stmt = body.get("Statement", "") if op == "ExecuteStatement" else ""
    if rv not in ("UPDATED_OLD", "UPDATED_NEW") and "MODIFIED" not in stmt:
        return False
    if a.get("status") != 200 or b.get("status") != 200:
        return False
    ba, bb = _body(a), _body(b)
    if op == "ExecuteStatement":
        ia, ib = (ba.get("Items") or [{}])[0], (bb.get("Items") or [{}])[0]
    else:
        ia, ib = ba.get("Attributes", {}), bb.get("Attributes", {})
    return set(ib) <= set(ia) and _without(ba, "Attributes", "Items") == _without(bb, "Attributes", "Items")


def not_found_words(op, body, a, b):
    # A missing table: DynamoDB's own words ("Requested resource not
    # found"); DynamoDB Local's are its own.
    return _error(a, "ResourceNotFoundException") and _error(b, "ResourceNotFoundException") \
        and a["message"] == "Cannot do operations on a non-existent table" \
        and b["message"].startswith("Requested resource not found")


DDBL_KEY_WORDS = ("One or more parameter values were invalid: Type mismatch for key",
                  "The number of conditions on the keys is invalid",
                  "One of the required keys was not given a value")
STRATA_KEY_WORDS = ("The provided key element does not match the schema",
                    "One or more parameter values were invalid: Type mismatch for key ",
                    "One or more parameter values were invalid: Missing the key ")


def key_words(op, body, a, b):
    # A key of the wrong shape: DynamoDB's words, which name the attribute
    # and both types; DynamoDB Local's are shorter.
    return _error(a, "ValidationException") and _error(b, "ValidationException") \
        and a["message"] in DDBL_KEY_WORDS and b["message"].startswith(STRATA_KEY_WORDS)


def _number(x):
    try:
        d = Decimal(x).normalize()
    except InvalidOperation:
        return x
    return str(d)


def _numbers(x):
    if isinstance(x, dict):
        out = {}
        for k, v in x.items():
            if k == "N" and isinstance(v, str):
                out[k] = _number(v)
            elif k == "NS" and isinstance(v, list):
                out[k] = sorted(_number(e) for e in v)
            else:
                out[k] = _numbers(v)
        return out
    if isinstance(x, list):
        return [_numbers(v) for v in x]
    return x


def _message_numbers(n):
    if "message" not in n:
        return n

    return dict(n, message=re.sub(r"\{N:([^}]*)\}", lambda m: "{N:" + _number(m.group(1)) + "}", n["message"]))


def number_form(op, body, a, b):
    # Numbers come back in canonical form ("1e3" is 1000), as DynamoDB
    # stores them; DynamoDB Local returns the text it was sent.
    return a != b and _numbers(_message_numbers(a)) == _numbers(_message_numbers(b))


def binary_in_message(op, body, a, b):
    # A binary value quoted in a message: DynamoDB Local prints a Java
    # object; Strata prints the bytes.
    return _error(a, "ValidationException") and _error(b, "ValidationException") \
        and "java.nio.HeapByteBuffer" in a["message"] \
        and a["message"].split("{B:")[0] == b["message"].split("{B:")[0]


def delete_capacity(op, body, a, b):
    # DynamoDB Local reports ConsumedCapacity on every DeleteItem, asked or
    # not; DynamoDB (and Strata) only when ReturnConsumedCapacity asks.
    return op == "DeleteItem" and body.get("ReturnConsumedCapacity", "NONE") == "NONE" \
        and a.get("status") == 200 and b.get("status") == 200 \
        and _without(_body(a), "ConsumedCapacity") == _body(b)


def enum_checks(op, body, a, b):
    # A value outside an enum (ReturnConsumedCapacity,
    # ReturnItemCollectionMetrics, ReturnValues) is refused with
    # DynamoDB's enum message; DynamoDB Local ignores some of them and
    # words others its own way.
    bogus = [k for k, v in body.items() if v == "BOGUS"]
    return bool(bogus) and _error(b, "ValidationException") and \
        "failed to satisfy constraint: Member must satisfy enum value set" in b["message"]


def tagging(op, body, a, b):
    # DynamoDB Local does not support tags; Strata does.
    return op in ("ListTagsOfResource", "TagResource", "UntagResource") and \
        "Tagging is not currently supported" in a.get("message", "")


EXPRESSION_ERRORS = ("Invalid ", "Value provided in ExpressionAttribute", "ExpressionAttribute",
                     "An expression attribute", "Key attributes must be scalars",
                     "One or more parameter values were invalid: ", "The BETWEEN condition was provided",
                     "ConditionalOperator can only be used")


def validation_order(op, body, a, b):
    # Strata checks the whole request (every expression, every
    # placeholder) before it looks up the table; DynamoDB Local looks up
    # the table and checks the key first. Only a request with two faults
    # tells them apart.
    if not _error(b, "ValidationException") or not b["message"].startswith(EXPRESSION_ERRORS):
        return False
    return (_error(a, "ResourceNotFoundException") or
            (_error(a, "ValidationException") and (
                a["message"] in DDBL_KEY_WORDS or
                a["message"].startswith("One or more parameter values are not valid."))))


def expression_order(op, body, a, b):
    # Two faulty expressions in one request: DynamoDB Local reports the
    # syntax error of either before the other's meaning; Strata checks
    # one expression fully, then the next.
    if not (_error(a, "ValidationException") and _error(b, "ValidationException")):
        return False
    kind = lambda m: m.split(":")[0] if m.startswith("Invalid ") else None
    return kind(a["message"]) and kind(b["message"]) and kind(a["message"]) != kind(b["message"])


DDBL_VALUE_WORDS = ("Input collection contains duplicates", "A value provided cannot be converted into a number",
                    "One or more parameter values were invalid: An number set  may not be empty",
                    "One or more parameter values were invalid: An string set  may not be empty",
                    "Supplied AttributeValue is empty, must contain exactly one of the supported datatypes",
                    "Invalid attribute value type")


def value_words(op, body, a, b):
    # An invalid AttributeValue: DynamoDB's words (which quote the value),
    # a SerializationException for JSON of the wrong type, and a 400 for
    # bad base64 where DynamoDB Local fails with a 500.
    if not _error(b):
        return False
    if a.get("status") == 500 and b.get("type") == "SerializationException":
        return True
    # DynamoDB Local turns a JSON number given for a string into text.
    if a.get("status") == 200 and b.get("type") == "SerializationException" \
            and "Unexpected value type in payload" in b.get("message", ""):
        return True
    if b.get("type") == "SerializationException" and _error(a, "ValidationException"):
        return True
    return _error(a, "ValidationException") and _error(b, "ValidationException") and \
        (a["message"] in DDBL_VALUE_WORDS or a["message"].startswith(DDBL_VALUE_WORDS))


def limit_page_end(op, body, a, b):
    # A page that ends exactly at Limit carries a LastEvaluatedKey, as
    # DynamoDB's does; DynamoDB Local leaves it out when nothing follows.
    if op not in ("Query", "Scan") or "Limit" not in body:
        return False
    if a.get("status") != 200 or b.get("status") != 200:
        return False
    ba, bb = _body(a), _body(b)
    if "more" in a:
        return a.get("count") == b.get("count") and not a["more"] and b["more"]
    return "LastEvaluatedKey" in bb and "LastEvaluatedKey" not in ba and \
        _without(ba, "LastEvaluatedKey") == _without(bb, "LastEvaluatedKey")


def only_removes(op, body):
    """An UpdateItem whose actions only remove (REMOVE, DELETE)."""
    if op != "UpdateItem":
        return False
    expr = body.get("UpdateExpression")
    if isinstance(expr, str):
        return bool(expr) and not any(w in expr.upper().split() for w in ("SET", "ADD"))
    updates = body.get("AttributeUpdates")
    return isinstance(updates, dict) and bool(updates) and \
        all(isinstance(u, dict) and u.get("Action") == "DELETE" for u in updates.values())


def remove_only_update(op, body, a, b):
    # An UpdateItem that only removes (REMOVE, DELETE) creates no item, as
    # DynamoDB documents; DynamoDB Local creates one holding just the key.
    # Its ALL_NEW shows that key; Strata's shows nothing.
    return only_removes(op, body) and a.get("status") == 200 and b.get("status") == 200 \
        and _without(_body(a), "Attributes") == _without(_body(b), "Attributes")


def exists_words(op, body, a, b):
    # CreateTable of a table that exists: DynamoDB's words name it.
    return op == "CreateTable" and _error(a, "ResourceInUseException") and _error(b, "ResourceInUseException") \
        and a["message"] == "Cannot create preexisting table" and b["message"].startswith("Table already exists: ")


def overlap_pair(op, body, a, b):
    # Overlapping paths: both refuse; the pair named is the first Strata
    # meets (DynamoDB Local names a later one, at times one that does not
    # overlap at all).
    words = "Two document paths overlap with each other"
    return _error(a, "ValidationException") and _error(b, "ValidationException") \
        and words in a["message"] and words in b["message"] \
        and a["message"].split(":")[0] == b["message"].split(":")[0]


def limit_words(op, body, a, b):
    # Limit below 1: DynamoDB's constraint message.
    return _error(a, "ValidationException") and _error(b, "ValidationException") \
        and a["message"] == "Limit must be greater than or equal to 1" \
        and b["message"].startswith("1 validation error detected: Value ") and "at 'limit'" in b["message"]


def key_update_order(op, body, a, b):
    # An update of a key attribute, or of a path inside one, is refused
    # before the condition is evaluated or the key's shape is checked;
    # DynamoDB Local looks at both first, and names the attributes of a
    # request with several such paths in another order.
    refused = _error(b, "ValidationException") and (
        "This attribute is part of the key" in b["message"] or
        b["message"].startswith("Key attributes must be scalars"))
    return op == "UpdateItem" and refused and (
        _error(a, "ConditionalCheckFailedException") or a.get("message") in DDBL_KEY_WORDS or
        a.get("message", "").startswith("Key attributes must be scalars"))


def ddbl_internal_failure(op, body, a, b):
    # DynamoDB Local fails with a 500 (an ORDER BY whose projection leaves
    # out the sort key); Strata answers.
    return a.get("status") == 500 and a.get("type") == "InternalFailure" and b.get("status") == 200


DEPARTURES = [
    Departure("CreateTable of an existing table: words", exists_words),
    Departure("overlapping paths: the pair named", overlap_pair),
    Departure("Limit below 1: words", limit_words),
    Departure("key-attribute update refused first", key_update_order),
    Departure("binary values in messages", binary_in_message),
    Departure("DynamoDB Local fails (500)", ddbl_internal_failure),
    Departure("PartiQL DuplicateItemException", duplicate_item),
    Departure("ExecuteStatement ConsumedCapacity/LastEvaluatedKey", statement_extras),
    Departure("UPDATED_OLD/UPDATED_NEW nested paths", updated_paths),
    Departure("missing-table words", not_found_words),
    Departure("key-mismatch words", key_words),
    Departure("numbers in canonical form", number_form),
    Departure("DeleteItem capacity only when asked", delete_capacity),
    Departure("enum values checked", enum_checks),
    Departure("tags supported", tagging),
    Departure("request checked before the table is looked up", validation_order),
    Departure("expressions checked one after another", expression_order),
    Departure("AttributeValue words", value_words),
    Departure("LastEvaluatedKey at a page that ends at Limit", limit_page_end),
    Departure("REMOVE-only update creates no item", remove_only_update),
]


def repair_remove_only(op, body, ddbl, strata):
    """After an update that only removes: DynamoDB Local may have created
    an item holding just the key; delete it there too."""
    if not only_removes(op, body) or not isinstance(body.get("Key"), dict) or "TableName" not in body:
        return
    req = {"TableName": body["TableName"], "Key": body["Key"], "ConsistentRead": True}
    sa, oa = ddbl("GetItem", req)
    sb, ob = strata("GetItem", req)
    if sa == 200 and sb == 200 and "Item" in oa and "Item" not in ob and set(oa["Item"]) == set(body["Key"]):
        ddbl("DeleteItem", {"TableName": body["TableName"], "Key": body["Key"]})


REPAIRS = [repair_remove_only]


def canonical_message(message):
    """Sorts the placeholder list of an 'unused' message: DynamoDB Local
    lists them in hash order."""
    if "unused in expressions: keys: {" in message and message.endswith("}"):
        head, keys = message.split("keys: {", 1)
        return head + "keys: {" + ", ".join(sorted(keys[:-1].split(", "))) + "}"
    return message



def empty_attributes_to_get(op, body, a, b):
    # AttributesToGet: [] is refused, as DynamoDB's constraint says (at
    # least one name); DynamoDB Local reads it as no projection.
    return body.get("AttributesToGet") == [] and _error(b, "ValidationException") \
        and "at 'attributesToGet' failed to satisfy constraint" in b["message"]


def ddbl_index_type_slip(op, body, a, b):
    # DynamoDB Local lets an update (ADD :n) give an index key attribute
    # the wrong type; Strata refuses it, as it refuses a put that would.
    return op == "UpdateItem" and a.get("status") == 200 and _error(b, "ValidationException") \
        and "Type mismatch for Index Key" in b["message"]


def index_update_words(op, body, a, b):
    # An item giving an index key the wrong type: DynamoDB's words (which
    # name the key, both types and the index); DynamoDB Local's are short.
    return _error(a, "ValidationException") and _error(b, "ValidationException") \
        and a["message"] in ("Updates on index keys must be of the same data type as the key attribute",
                             "Invalid attribute value type",
                             "One or more parameter values were invalid: Type mismatch for Index Key") \
        and "Type mismatch for Index Key" in b["message"]


LEGACY_WORDS = ("One or more parameter values were invalid: ", "The BETWEEN condition was provided",
                "ConditionalOperator can only be used")


def legacy_checks(op, body, a, b):
    # Two faults in the legacy members of one request: Strata checks a
    # condition's values' types before their number, and the key, the
    # AttributeValues and the placeholder members before the legacy
    # conditions; DynamoDB Local checks in another order, and evaluates a
    # condition before refusing a legacy action's value type.
    if not any(isinstance(body.get(k), dict) for k in
               ("Expected", "QueryFilter", "ScanFilter", "KeyConditions", "AttributeUpdates")):
        return False
    if not (_error(a) and _error(b, "ValidationException")):
        return False
    am, bm = a.get("message", ""), b["message"]
    legacy_a, legacy_b = am.startswith(LEGACY_WORDS), bm.startswith(LEGACY_WORDS)
    key_a = am in DDBL_KEY_WORDS or am.startswith("One or more parameter values are not valid.")
    return (legacy_a and legacy_b) or (key_a and legacy_b) or (legacy_a and not legacy_b) or \
        (_error(a, "ConditionalCheckFailedException") and "action" in bm and "not supported for the type" in bm)


def partiql_bare_name(op, body, a, b):
    # A PartiQL statement that is one bare word: DynamoDB Local calls it a
    # variable reference; Strata calls it malformed.
    return op == "ExecuteStatement" and a.get("message", "").startswith("Unsupported operation: VariableReference") \
        and b.get("message", "").startswith("Statement wasn't well formed")


def index_units(op, body, a, b):
    # Write units on a table with indexes, when the old item had only one
    # of an index's two key attributes (so it was never in that index):
    # DynamoDB Local charges a delete from the index anyway.
    if op not in ("PutItem", "UpdateItem", "DeleteItem") or not str(body.get("TableName", "")).endswith("_i"):
        return False
    if a.get("status") != 200 or b.get("status") != 200:
        return False
    ca, cb = _body(a).get("ConsumedCapacity"), _body(b).get("ConsumedCapacity")
    return bool(ca and cb) and ca["CapacityUnits"] > cb["CapacityUnits"] and \
        _without(_body(a), "ConsumedCapacity") == _without(_body(b), "ConsumedCapacity")


DEPARTURES += [
    Departure("AttributesToGet: [] refused", empty_attributes_to_get),
    Departure("DynamoDB Local lets an update give an index key the wrong type", ddbl_index_type_slip),
    Departure("index-key type words", index_update_words),
    Departure("legacy members: which of two faults is reported", legacy_checks),
    Departure("PartiQL: a bare word", partiql_bare_name),
    Departure("index write units for an item outside the index", index_units),
]
