"""Sends the same seeded requests to DynamoDB Local and to Strata and compares
the answers. Requests are raw JSON (no SDK validation in the way), valid and
invalid, over every item, query, batch, table and PartiQL operation.

Each seed starts from fresh tables and sends REQUESTS requests; the two
servers see the same sequence, so their tables stay equal as long as their
answers do. A difference is either one of the known departures below (each
argued in docs/limits.md) or a failure; the run prints a table per operation
and exits 1 when any difference is not a known departure.

Usage: differential.py --ddbl URL --strata URL [--seeds N] [--requests N]
"""
import argparse
import copy
import json
import os
import re
import random
import sys
import time
import urllib.error
import urllib.request

from departures import DEPARTURES, REPAIRS, _numbers, canonical_message

AUTH = ("AWS4-HMAC-SHA256 Credential=AKIDDIFF/20250101/us-east-1/dynamodb/aws4_request, "
        "SignedHeaders=host;x-amz-date, Signature=00")


def call(url, op, body):
    data = json.dumps(body).encode()
    req = urllib.request.Request(url + "/", data=data, method="POST", headers={
        "X-Amz-Target": "DynamoDB_20120810." + op, "Content-Type": "application/x-amz-json-1.0",
        "Authorization": AUTH})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, raw = e.code, e.read()
    try:
        out = json.loads(raw) if raw.strip() else {}
    except ValueError:
        out = {"<raw>": raw.decode(errors="replace")}
    return status, out


def wait_ready(url):
    for _ in range(150):
        try:
            call(url, "ListTables", {})
            return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer")


# ---------------------------------------------------------------------------
# What requests are made of.

NAMES = ["a", "b", "n", "m", "l", "s", "ns", "flag", "nul", "bin"]
STRINGS = ["x", "y", "xy", "yx", "", "hello", "h"]
NUMBERS = ["0", "1", "-1", "2.5", "10", "1e3", "0.0001", "99999999999999999999"]


class Gen:
    def __init__(self, seed):
        self.r = random.Random(seed)
        self.seed = seed
        self.hash_t = f"diff{seed}_h"      # pk (S)
        self.range_t = f"diff{seed}_r"     # pk (S), sk (N)
        self.index_t = f"diff{seed}_i"     # pk (S), sk (S), GSI on a (S) + n (N), LSI on b (S)

    def pick(self, xs):
        return self.r.choice(xs)

    def chance(self, p):
        return self.r.random() < p

    # -- values ------------------------------------------------------------
    def value(self, name=None, depth=0):
        kind = {"a": "S", "b": "S", "n": "N", "m": "M", "l": "L", "s": "SS", "ns": "NS",
                "flag": "BOOL", "nul": "NULL", "bin": "B"}.get(name) if name else None
        if kind is None or self.chance(0.1):
            kind = self.pick(["S", "N", "B", "BOOL", "NULL", "L", "M", "SS", "NS"] if depth < 2 else ["S", "N"])
        if kind == "S":
            return {"S": self.pick(STRINGS)}
        if kind == "N":
            return {"N": self.pick(NUMBERS)}
        if kind == "B":
            return {"B": self.pick(["AA==", "AAE=", "/w==", ""])}
        if kind == "BOOL":
            return {"BOOL": self.chance(0.5)}
        if kind == "NULL":
            return {"NULL": True}
        if kind == "L":
            return {"L": [self.value(depth=depth + 1) for _ in range(self.r.randint(0, 3))]}
        if kind == "M":
            return {"M": {k: self.value(depth=depth + 1) for k in self.r.sample(["k", "v", "w"], self.r.randint(0, 3))}}
        if kind == "SS":
            return {"SS": sorted(set(self.r.sample(["x", "y", "z", "q"], self.r.randint(1, 3))))}
        return {"NS": sorted(set(self.r.sample(["1", "2", "3", "4.5"], self.r.randint(1, 3))))}

    def bad_value(self):
        return self.pick([{"Q": "1"}, {"N": "abc"}, {"N": " 1"}, {"S": 5}, {"SS": []}, {"SS": ["a", "a"]},
                          {"NS": ["1", "1.0"]}, {}, {"S": "x", "N": "1"}, {"B": "!!"}, {"NULL": False}, {"L": "x"},
                          {"N": "1e126"}, {"BOOL": "true"}])

    # -- keys ------------------------------------------------------------
    def key(self, table):
        if table == self.hash_t:
            return {"pk": {"S": f"p{self.r.randint(0, 5)}"}}
        if table == self.range_t:
            return {"pk": {"S": f"p{self.r.randint(0, 2)}"}, "sk": {"N": str(self.r.randint(0, 6))}}
        return {"pk": {"S": f"p{self.r.randint(0, 2)}"}, "sk": {"S": self.pick(["a", "b", "c", "ab"])}}

    def table(self):
        return self.pick([self.hash_t, self.range_t, self.range_t, self.index_t])

    def item(self, table):
        item = self.key(table)
        for name in self.r.sample(NAMES, self.r.randint(0, 5)):
            item[name] = self.value(name)
        return item

    # -- expressions ---------------------------------------------------------
    def path(self, names, allow_nested=True):
        top = self.pick(NAMES + ["pk"])
        ref = f"#{top}" if top in ("nul", "bin", "flag") or self.chance(0.3) else top
        if ref.startswith("#"):
            names[ref] = top
        if allow_nested and self.chance(0.25):
            if top in ("m",) or self.chance(0.3):
                ref += "." + self.pick(["k", "v", "w"])
            else:
                ref += f"[{self.r.randint(0, 4)}]"
        return ref

    def placeholder(self, values, v=None):
        p = f":v{len(values)}"
        values[p] = v if v is not None else self.value(self.pick(NAMES))
        return p

    def operand(self, names, values):
        c = self.r.random()
        if c < 0.5:
            return self.path(names)
        if c < 0.9:
            return self.placeholder(values)
        return f"size({self.path(names)})"

    def condition(self, names, values, depth=0):
        c = self.r.random()
        if depth < 2 and c < 0.2:
            op = self.pick(["AND", "OR"])
            return f"{self.condition(names, values, depth + 1)} {op} ({self.condition(names, values, depth + 1)})"
        if depth < 2 and c < 0.27:
            return f"NOT ({self.condition(names, values, depth + 1)})"
        c = self.r.random()
        if c < 0.35:
            return f"{self.operand(names, values)} {self.pick(['=', '<>', '<', '<=', '>', '>='])} {self.operand(names, values)}"
        if c < 0.45:
            return f"{self.operand(names, values)} BETWEEN {self.placeholder(values)} AND {self.placeholder(values)}"
        if c < 0.52:
            return f"{self.operand(names, values)} IN ({self.placeholder(values)}, {self.placeholder(values)})"
        if c < 0.65:
            return f"{self.pick(['attribute_exists', 'attribute_not_exists'])}({self.path(names)})"
        if c < 0.72:
            t = self.placeholder(values, {"S": self.pick(["S", "N", "M", "L", "SS", "NULL", "BOOL", "X"])})
            return f"attribute_type({self.path(names)}, {t})"
        if c < 0.85:
            return f"begins_with({self.path(names)}, {self.placeholder(values, {'S': self.pick(STRINGS)})})"
        return f"contains({self.path(names)}, {self.placeholder(values)})"

    def update(self, names, values):
        sets, removes, adds, deletes = [], [], [], []
        used = set()

        def fresh_path():
            for _ in range(10):
                p = self.path(names)
                top = p.split(".")[0].split("[")[0]
                if top not in used:
                    used.add(top)
                    return p
            return None

        for _ in range(self.r.randint(1, 3)):
            p = fresh_path()
            if p is None:
                break
            c = self.r.random()
            if c < 0.45:
                rhs = self.placeholder(values)
                if self.chance(0.2):
                    rhs = f"{self.path(names, False)} {self.pick(['+', '-'])} {self.placeholder(values, {'N': self.pick(NUMBERS[:5])})}"
                elif self.chance(0.15):
                    rhs = f"list_append({self.path(names, False)}, {self.placeholder(values, {'L': [self.value()]})})"
                elif self.chance(0.15):
                    rhs = f"if_not_exists({self.path(names, False)}, {self.placeholder(values)})"
                sets.append(f"{p} = {rhs}")
            elif c < 0.7:
                removes.append(p)
            elif c < 0.85:
                adds.append(f"{p} {self.placeholder(values, self.pick([{'N': '1'}, {'SS': ['x', 'w']}, {'NS': ['1', '7']}, {'S': 'x'}]))}")
            else:
                deletes.append(f"{p} {self.placeholder(values, self.pick([{'SS': ['x']}, {'NS': ['1']}, {'N': '1'}]))}")
        parts = []
        for word, xs in (("SET", sets), ("REMOVE", removes), ("ADD", adds), ("DELETE", deletes)):
            if xs:
                parts.append(f"{word} {', '.join(xs)}")
        return " ".join(parts) or "REMOVE zz"

    def with_expressions(self, body, names, values):
        if names:
            body["ExpressionAttributeNames"] = names
        if values:
            body["ExpressionAttributeValues"] = values
        return body

    def conditional(self, body, names, values, returns):
        """A write's ConditionExpression and ReturnValues, each sometimes."""
        if self.chance(0.3):
            body["ConditionExpression"] = self.condition(names, values)
        if self.chance(0.3):
            body["ReturnValues"] = self.pick(returns)

    # -- requests ------------------------------------------------------------
    def put(self):
        t = self.table()
        body = {"TableName": t, "Item": self.item(t)}
        names, values = {}, {}
        self.conditional(body, names, values, ["NONE", "ALL_OLD"])
        if self.chance(0.2):
            body["ReturnConsumedCapacity"] = self.pick(["TOTAL", "INDEXES", "NONE"])
        if self.chance(0.1):
            body["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
        return "PutItem", self.with_expressions(body, names, values)

    def get(self):
        t = self.table()
        body = {"TableName": t, "Key": self.key(t)}
        names = {}
        if self.chance(0.4):
            body["ProjectionExpression"] = ", ".join(self.path(names) for _ in range(self.r.randint(1, 3)))
        if self.chance(0.3):
            body["ConsistentRead"] = self.chance(0.5)
        if self.chance(0.2):
            body["ReturnConsumedCapacity"] = "TOTAL"
        return "GetItem", self.with_expressions(body, names, {})

    def update_item(self):
        t = self.table()
        names, values = {}, {}
        body = {"TableName": t, "Key": self.key(t), "UpdateExpression": self.update(names, values)}
        if self.chance(0.3):
            body["ConditionExpression"] = self.condition(names, values)
        if self.chance(0.5):
            body["ReturnValues"] = self.pick(["NONE", "ALL_OLD", "UPDATED_OLD", "ALL_NEW", "UPDATED_NEW"])
        if self.chance(0.2):
            body["ReturnConsumedCapacity"] = "TOTAL"
        return "UpdateItem", self.with_expressions(body, names, values)

    def delete(self):
        t = self.table()
        body = {"TableName": t, "Key": self.key(t)}
        names, values = {}, {}
        self.conditional(body, names, values, ["NONE", "ALL_OLD"])
        return "DeleteItem", self.with_expressions(body, names, values)

    def query(self):
        t = self.pick([self.range_t, self.index_t, self.hash_t])
        names, values = {}, {}
        key = self.key(t)
        cond = f"pk = {self.placeholder(values, key['pk'])}"
        body = {"TableName": t}
        if t == self.index_t and self.chance(0.3):
            body["IndexName"] = "by_a"
            cond = f"a = {self.placeholder(values, {'S': self.pick(STRINGS[:4])})}"
            if self.chance(0.5):
                cond += f" AND n {self.pick(['<', '>=', '='])} {self.placeholder(values, {'N': self.pick(NUMBERS[:5])})}"
        elif "sk" in key and self.chance(0.6):
            sk = key["sk"]
            c = self.r.random()
            if c < 0.6:
                cond += f" AND sk {self.pick(['=', '<', '<=', '>', '>='])} {self.placeholder(values, sk)}"
            elif c < 0.8:
                cond += f" AND sk BETWEEN {self.placeholder(values, sk)} AND {self.placeholder(values, self.key(t)['sk'])}"
            else:
                cond += f" AND begins_with(sk, {self.placeholder(values, sk)})"
        body["KeyConditionExpression"] = cond
        if self.chance(0.3):
            body["FilterExpression"] = self.condition(names, values)
        if self.chance(0.3):
            body["Limit"] = self.r.randint(1, 4)
        if self.chance(0.3):
            body["ScanIndexForward"] = False
        if self.chance(0.15):
            body["Select"] = "COUNT"
        elif self.chance(0.2):
            body["ProjectionExpression"] = ", ".join(self.path(names) for _ in range(self.r.randint(1, 2)))
        if self.chance(0.2):
            body["ReturnConsumedCapacity"] = "TOTAL"
        return "Query", self.with_expressions(body, names, values)

    def scan(self):
        t = self.table()
        body = {"TableName": t}
        names, values = {}, {}
        if self.chance(0.5):
            body["FilterExpression"] = self.condition(names, values)
        if self.chance(0.2):
            body["Select"] = "COUNT"
        elif self.chance(0.2):
            body["ProjectionExpression"] = ", ".join(self.path(names) for _ in range(self.r.randint(1, 2)))
        if self.chance(0.1):
            body["Limit"] = self.r.randint(1, 3)
        return "Scan", self.with_expressions(body, names, values)

    def batch_write(self):
        reqs = {}
        for _ in range(self.r.randint(1, 4)):
            t = self.table()
            if self.chance(0.7):
                reqs.setdefault(t, []).append({"PutRequest": {"Item": self.item(t)}})
            else:
                reqs.setdefault(t, []).append({"DeleteRequest": {"Key": self.key(t)}})
        return "BatchWriteItem", {"RequestItems": reqs}

    def batch_get(self):
        reqs = {}
        for _ in range(self.r.randint(1, 3)):
            t = self.table()
            reqs.setdefault(t, {"Keys": []})["Keys"].append(self.key(t))
        return "BatchGetItem", {"RequestItems": reqs}

    def partiql_value(self, v):
        (kind, x), = v.items()
        if kind == "S":
            return "'" + x.replace("'", "''") + "'"
        if kind == "N":
            return x
        if kind == "BOOL":
            return "true" if x else "false"
        if kind == "NULL":
            return "null"
        if kind == "L":
            return "[" + ", ".join(self.partiql_value(e) for e in x) + "]"
        if kind == "M":
            return "{" + ", ".join(f"'{k}': {self.partiql_value(e)}" for k, e in x.items()) + "}"
        if kind == "SS":
            return "<<" + ", ".join(f"'{e}'" for e in x) + ">>"
        if kind == "NS":
            return "<<" + ", ".join(x) + ">>"
        return "'b'"  # binary has no PartiQL literal

    def partiql(self):
        t = self.pick([self.hash_t, self.range_t])
        key = self.key(t)
        where = " AND ".join(f"{k} = {self.partiql_value(v)}" for k, v in key.items())
        c = self.r.random()
        params = []
        if c < 0.25:
            item = self.item(t)
            item.pop("bin", None)
            stmt = f'INSERT INTO "{t}" VALUE {self.partiql_value({"M": item})}'
        elif c < 0.45:
            attr = self.pick(["a", "n", "flag", "l"])
            v = self.value(attr)
            v.pop("B", None)
            if not v:
                v = {"S": "x"}
            if self.chance(0.4):
                params.append(v)
                rhs = "?"
            else:
                rhs = self.partiql_value(v)
            stmt = f'UPDATE "{t}" SET {attr} = {rhs} WHERE {where}'
            if self.chance(0.3):
                stmt += f" AND {self.pick(['a', 'n'])} IS MISSING"
            if self.chance(0.3):
                stmt += " RETURNING " + self.pick(["ALL OLD *", "ALL NEW *", "MODIFIED OLD *", "MODIFIED NEW *"])
        elif c < 0.55:
            stmt = f'DELETE FROM "{t}" WHERE {where}'
        elif c < 0.8:
            stmt = f'SELECT * FROM "{t}" WHERE {where}'
        else:
            stmt = f'SELECT {self.pick(["*", "a, n", "pk"])} FROM "{t}" WHERE pk = {self.partiql_value(key["pk"])}'
            if "sk" in key and self.chance(0.5):
                stmt += " ORDER BY sk DESC"
        body = {"Statement": stmt}
        if params:
            body["Parameters"] = params
        return "ExecuteStatement", body

    # -- the legacy parameters -------------------------------------------
    OPERATORS = {"EQ": 1, "NE": 1, "LE": 1, "LT": 1, "GE": 1, "GT": 1, "NOT_NULL": 0, "NULL": 0,
                 "CONTAINS": 1, "NOT_CONTAINS": 1, "BEGINS_WITH": 1, "IN": 2, "BETWEEN": 2}

    def legacy_conditions(self, attrs=None, expected=False):
        """Expected / QueryFilter / ScanFilter: one to three attributes."""
        out = {}
        for name in attrs or self.r.sample(NAMES, self.r.randint(1, 3)):
            c = self.r.random()
            if expected and c < 0.25:
                out[name] = {"Value": self.value(name)} if self.chance(0.7) else {"Exists": True, "Value": self.value(name)}
                continue
            if expected and c < 0.4:
                out[name] = {"Exists": False} if self.chance(0.8) else {"Exists": False, "Value": self.value(name)}
                continue
            op = self.pick(list(self.OPERATORS))
            count = self.OPERATORS[op]
            if self.chance(0.1):
                count = self.pick([0, 1, 2, 3])
            values = [self.value(name) if self.chance(0.6) else self.value() for _ in range(count)]
            cond = {"ComparisonOperator": op}
            if values or self.chance(0.5):
                cond["AttributeValueList"] = values
            if expected and self.chance(0.05):
                cond["Exists"] = True
            out[name] = cond
        return out

    def legacy_put(self):
        t = self.table()
        body = {"TableName": t, "Item": self.item(t), "Expected": self.legacy_conditions(expected=True)}
        if self.chance(0.3):
            body["ConditionalOperator"] = self.pick(["AND", "OR"])
        if self.chance(0.05):
            body["ConditionExpression"] = "attribute_exists(a)"
        return "PutItem", body

    def legacy_update(self):
        t = self.table()
        updates = {}
        for name in self.r.sample(NAMES, self.r.randint(1, 3)):
            action = self.pick(["PUT", "PUT", "ADD", "DELETE"])
            u = {"Action": action}
            if action != "DELETE" or self.chance(0.5):
                u["Value"] = self.pick([self.value(name), {"N": "1"}, {"SS": ["x"]}])
            updates[name] = u
        body = {"TableName": t, "Key": self.key(t), "AttributeUpdates": updates}
        if self.chance(0.4):
            body["Expected"] = self.legacy_conditions(expected=True)
        if self.chance(0.4):
            body["ReturnValues"] = self.pick(["ALL_OLD", "UPDATED_NEW", "ALL_NEW"])
        return "UpdateItem", body

    def legacy_read(self):
        t = self.pick([self.range_t, self.hash_t, self.index_t])
        key = self.key(t)
        if self.chance(0.5):
            kc = {"pk": {"ComparisonOperator": "EQ", "AttributeValueList": [key["pk"]]}}
            if "sk" in key and self.chance(0.6):
                op = self.pick(["EQ", "LT", "GE", "BETWEEN", "BEGINS_WITH"])
                vals = [key["sk"]] * (2 if op == "BETWEEN" else 1)
                kc["sk"] = {"ComparisonOperator": op, "AttributeValueList": vals}
            body = {"TableName": t, "KeyConditions": kc}
            if self.chance(0.5):
                body["QueryFilter"] = self.legacy_conditions()
            op = "Query"
        else:
            body = {"TableName": t}
            if self.chance(0.7):
                body["ScanFilter"] = self.legacy_conditions()
            op = "Scan"
        if self.chance(0.3) and ("QueryFilter" in body or "ScanFilter" in body):
            body["ConditionalOperator"] = self.pick(["AND", "OR"])
        if self.chance(0.3):
            body["AttributesToGet"] = self.r.sample(NAMES + ["pk"], self.r.randint(0, 3))
        if self.chance(0.05):
            body["FilterExpression"] = "attribute_exists(a)"
        return op, body

    def table_read(self):
        c = self.r.random()
        if c < 0.5:
            return "DescribeTable", {"TableName": self.table()}
        if c < 0.7:
            return "DescribeTimeToLive", {"TableName": self.table()}
        if c < 0.85:
            return "ListTagsOfResource", {"ResourceArn": f"arn:aws:dynamodb:us-east-1:000000000000:table/{self.table()}"}
        return "CreateTable", {"TableName": self.table(), "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                               "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}],
                               "BillingMode": "PAY_PER_REQUEST"}

    def request(self):
        makers = [(self.put, 20), (self.get, 12), (self.update_item, 20), (self.delete, 6), (self.query, 12),
                  (self.scan, 6), (self.batch_write, 5), (self.batch_get, 5), (self.partiql, 10), (self.table_read, 4),
                  (self.legacy_put, 5), (self.legacy_update, 5), (self.legacy_read, 6)]
        maker = self.r.choices([m for m, _ in makers], [w for _, w in makers])[0]
        op, body = maker()
        mutated = None
        if self.chance(0.25):
            mutated = self.mutate(op, body)
        return op, body, mutated

    # -- invalid requests ---------------------------------------------------
    def mutate(self, op, body):
        """Makes a request invalid in one way; returns the way's name."""
        choices = ["table", "missing-table", "bad-enum", "extra-placeholder", "undefined-placeholder"]
        if "Item" in body:
            choices += ["bad-value", "missing-key", "key-type", "empty-key"]
        if "Key" in body:
            choices += ["bad-value", "missing-key", "key-type", "extra-key"]
        for f in ("ConditionExpression", "UpdateExpression", "FilterExpression", "KeyConditionExpression",
                  "ProjectionExpression"):
            if f in body:
                choices += ["truncate:" + f, "garbage:" + f]
        if op == "ExecuteStatement":
            choices += ["truncate:Statement", "params"]
        if op in ("Query", "Scan"):
            choices += ["limit"]
        how = self.pick(choices)
        if how == "table":
            if "TableName" in body:
                body["TableName"] = self.pick(["x", "bad name!", "a" * 256])
            else:
                how = "bad-enum"
        if how == "missing-table":
            if "TableName" in body:
                body["TableName"] = f"nothing_here_{self.seed}"
            else:
                how = "bad-enum"
        if how == "bad-enum":
            body[self.pick(["ReturnValues", "ReturnConsumedCapacity", "Select", "ReturnItemCollectionMetrics"])] = "BOGUS"
        elif how == "extra-placeholder":
            body.setdefault("ExpressionAttributeValues", {})[":unused"] = {"S": "u"}
        elif how == "undefined-placeholder":
            for f in ("ConditionExpression", "UpdateExpression", "FilterExpression", "KeyConditionExpression"):
                if f in body:
                    body[f] = body[f].replace(":v0", ":nope", 1)
                    break
            else:
                body.setdefault("ExpressionAttributeNames", {})["#unused"] = "u"
        elif how == "bad-value":
            target = body.get("Item") or body.get("Key")
            target[self.pick(list(target))] = self.bad_value()
        elif how == "missing-key":
            target = body.get("Item") or body.get("Key")
            target.pop("pk", None)
        elif how == "key-type":
            target = body.get("Item") or body.get("Key")
            target["pk"] = {"N": "1"}
        elif how == "empty-key":
            body["Item"]["pk"] = {"S": ""}
        elif how == "extra-key":
            body["Key"]["zz"] = {"S": "x"}
        elif how.startswith("truncate:"):
            f = how.split(":")[1]
            s = body[f]
            body[f] = s[: self.r.randint(0, max(0, len(s) - 1))]
        elif how.startswith("garbage:"):
            f = how.split(":")[1]
            body[f] = body[f] + self.pick([" )", " AND", ",", " =", " foo", " ((a = :v0))"])
        elif how == "params":
            body["Parameters"] = [{"S": "x"}] * self.r.randint(0, 2) + ([{"Q": "1"}] if self.chance(0.5) else [])
        elif how == "limit":
            body["Limit"] = self.pick([0, -1, "x"])
        return how


def setup_tables(g):
    reqs = [
        ("CreateTable", {"TableName": g.hash_t, "BillingMode": "PAY_PER_REQUEST",
                         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}],
                         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"}]}),
        ("CreateTable", {"TableName": g.range_t, "BillingMode": "PAY_PER_REQUEST",
                         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "N"}]}),
        ("CreateTable", {"TableName": g.index_t, "BillingMode": "PAY_PER_REQUEST",
                         "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
                         "AttributeDefinitions": [{"AttributeName": "pk", "AttributeType": "S"},
                                                  {"AttributeName": "sk", "AttributeType": "S"},
                                                  {"AttributeName": "a", "AttributeType": "S"},
                                                  {"AttributeName": "n", "AttributeType": "N"},
                                                  {"AttributeName": "b", "AttributeType": "S"}],
                         "GlobalSecondaryIndexes": [{"IndexName": "by_a", "Projection": {"ProjectionType": "ALL"},
                                                     "KeySchema": [{"AttributeName": "a", "KeyType": "HASH"},
                                                                   {"AttributeName": "n", "KeyType": "RANGE"}]}],
                         "LocalSecondaryIndexes": [{"IndexName": "by_b", "Projection": {"ProjectionType": "KEYS_ONLY"},
                                                    "KeySchema": [{"AttributeName": "pk", "KeyType": "HASH"},
                                                                  {"AttributeName": "b", "KeyType": "RANGE"}]}]}),
    ]
    return reqs


# ---------------------------------------------------------------------------
# Comparing answers.

def sets_sorted(x):
    """Set members in one order: a set has none."""
    if isinstance(x, dict):
        return {k: sorted(v) if k in ("SS", "NS", "BS") and isinstance(v, list) else sets_sorted(v)
                for k, v in x.items()}
    if isinstance(x, list):
        return [sets_sorted(v) for v in x]
    return x


VOLATILE = {"CreationDateTime", "TableArn", "TableId", "LatestStreamArn", "LatestStreamLabel", "IndexArn",
            "LastIncreaseDateTime", "LastDecreaseDateTime", "LastUpdateToPayPerRequestDateTime", "ItemCount",
            "TableSizeBytes", "IndexSizeBytes", "NumberOfDecreasesToday", "ResourceArn", "WarmThroughput",
            "TableClassSummary", "DeletionProtectionEnabled", "ProvisionedThroughput"}


def scrub(x):
    if isinstance(x, dict):
        return {k: scrub(v) for k, v in x.items() if k not in VOLATILE}
    if isinstance(x, list):
        return [scrub(v) for v in x]
    return x


def normal(op, body, status, out):
    """The part of an answer both servers must agree on."""
    out = sets_sorted(copy.deepcopy(out))
    if status != 200:
        t = out.get("__type", "")
        msg = out.get("message", out.get("Message", ""))
        return {"status": status, "type": t.split("#")[-1], "message": canonical_message(msg),
                "item": out.get("Item")}
    if op in ("Scan",) or (op == "ExecuteStatement" and "ORDER BY" not in body.get("Statement", "")
                           and body.get("Statement", "").upper().startswith("SELECT")):
        if "Limit" in body:
            return {"status": 200, "count": out.get("Count"), "more": "LastEvaluatedKey" in out}
        out.pop("LastEvaluatedKey", None)
        if "Items" in out:
            out["Items"] = sorted(out["Items"], key=lambda i: json.dumps(i, sort_keys=True))
    if op == "Query" and body.get("IndexName") == "by_a":
        # Equal index keys: the order among them is the stores' own.
        if "Items" in out:
            out["Items"] = sorted(out["Items"], key=lambda i: json.dumps(i, sort_keys=True))
        out.pop("LastEvaluatedKey", None)
    if op == "BatchGetItem":
        for t, items in out.get("Responses", {}).items():
            out["Responses"][t] = sorted(items, key=lambda i: json.dumps(i, sort_keys=True))
    if op == "ExecuteStatement":
        out.pop("NextToken", None)
    return {"status": 200, "body": scrub(out)}


def key_names(table):
    return ["pk"] if table.endswith("_h") else ["pk", "sk"]


def written_keys(op, body):
    """The (table, key) pairs a write names."""
    if op in ("PutItem", "UpdateItem", "DeleteItem") and isinstance(body.get("TableName"), str):
        t = body["TableName"]
        src = body.get("Item") if op == "PutItem" else body.get("Key")
        if isinstance(src, dict):
            yield t, {k: src[k] for k in key_names(t) if k in src}
    if op == "ExecuteStatement" and isinstance(body.get("Statement"), str):
        # The generator's own statements name their table and key plainly.
        stmt = body["Statement"]
        table = re.search(r'"(diff\d+_[a-z])"', stmt)
        pk = re.search(r"'?pk'?(?::| =) '(p\d)'", stmt)
        sk = re.search(r"'?sk'?(?::| =) (\d+)", stmt)
        if table and pk and not stmt.upper().startswith("SELECT"):
            key = {"pk": {"S": pk.group(1)}}
            if sk:
                key["sk"] = {"N": sk.group(1)}
            yield table.group(1), key
    if op == "BatchWriteItem":
        for t, writes in body.get("RequestItems", {}).items():
            for w in writes:
                src = (w.get("PutRequest") or {}).get("Item") or (w.get("DeleteRequest") or {}).get("Key") or {}
                yield t, {k: src[k] for k in key_names(t) if k in src}


def resync(op, body, ddbl, strata):
    """After a write the two answered differently: DynamoDB Local's copy of
    each item it named becomes Strata's, so the difference is counted once
    and not again in every later read."""
    for table, key in written_keys(op, body):
        if len(key) != len(key_names(table)):
            continue
        status, out = strata("GetItem", {"TableName": table, "Key": key, "ConsistentRead": True})
        if status != 200:
            continue
        if "Item" in out:
            ddbl("PutItem", {"TableName": table, "Item": out["Item"]})
        else:
            ddbl("DeleteItem", {"TableName": table, "Key": key})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--ddbl", required=True)
    ap.add_argument("--strata", required=True)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--requests", type=int, default=400)
    ap.add_argument("--show", type=int, default=int(__import__("os").environ.get("DIFF_SHOW", "12")), help="differences printed in full")
    args = ap.parse_args()
    wait_ready(args.ddbl)
    wait_ready(args.strata)

    stats = {}
    unexplained, known = [], {}
    total = 0
    for seed in range(1, args.seeds + 1):
        g = Gen(seed)
        for op, body in setup_tables(g):
            a, b = call(args.ddbl, op, body), call(args.strata, op, body)
            if a[0] != 200 or b[0] != 200:
                raise SystemExit(f"seed {seed}: set-up failed: {a} / {b}")
        for n in range(args.requests):
            op, body, mutated = g.request()
            total += 1
            sa, oa = call(args.ddbl, op, body)
            sb, ob = call(args.strata, op, body)
            na, nb = normal(op, body, sa, oa), normal(op, body, sb, ob)
            ddbl_call = lambda o, b: call(args.ddbl, o, b)
            strata_call = lambda o, b: call(args.strata, o, b)
            for repair in REPAIRS:
                repair(op, body, ddbl_call, strata_call)
            if na != nb:
                resync(op, body, ddbl_call, strata_call)
            trace = os.environ.get("DIFF_TRACE_TABLE")
            if trace and trace.startswith(f"diff{seed}_"):
                scans = [sorted(json.dumps(_numbers(sets_sorted(i)), sort_keys=True) for i in
                                c("Scan", {"TableName": trace, "ConsistentRead": True})[1].get("Items", []))
                         for c in (ddbl_call, strata_call)]
                if scans[0] != scans[1]:
                    print(f"TRACE {trace} differs after seed {seed} #{n} {op}: {json.dumps(body)[:500]}")
                    print(f"  ddb local only: {sorted(set(scans[0]) - set(scans[1]))[:3]}")
                    print(f"  strata only:    {sorted(set(scans[1]) - set(scans[0]))[:3]}")
                    sys.exit(2)
            row = stats.setdefault(op, [0, 0, 0, 0])
            row[0] += 1
            row[1] += mutated is not None
            if na == nb:
                continue
            name = next((d.name for d in DEPARTURES if d.applies(op, body, na, nb)), None)
            if name:
                row[2] += 1
                known[name] = known.get(name, 0) + 1
            else:
                row[3] += 1
                unexplained.append((seed, n, op, mutated, body, na, nb))

    print(f"\ndifferential: {total} requests over {args.seeds} seeds, DynamoDB Local vs Strata")
    print(f"{'operation':<22}{'requests':>9}{'invalid':>9}{'departures':>12}{'differ':>8}")
    for op, (count, invalid, dep, diff) in sorted(stats.items()):
        print(f"{op:<22}{count:>9}{invalid:>9}{dep:>12}{diff:>8}")
    identical = total - sum(known.values()) - len(unexplained)
    print(f"identical: {identical} ({100.0 * identical / max(total, 1):.1f}%), known departures: "
          f"{sum(known.values())}, unexplained: {len(unexplained)}")
    for name, count in sorted(known.items()):
        print(f"  departure {name}: {count}")
    for seed, n, op, mutated, body, na, nb in unexplained[: args.show]:
        print(f"\n-- seed {seed} #{n} {op} (invalid: {mutated})\n   request: {json.dumps(body)[:600]}")
        print(f"   ddb local: {json.dumps(na, sort_keys=True)[:600]}")
        print(f"   strata:    {json.dumps(nb, sort_keys=True)[:600]}")
    sys.exit(1 if unexplained else 0)


if __name__ == "__main__":
    main()
