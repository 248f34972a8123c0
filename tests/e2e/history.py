"""Histories of real clients, and the checkers that judge them (issue 19).

A client records each operation it invokes and how it ended: `ok` (it
happened, with this result), `fail` (it certainly did not happen: refused,
or never sent), or `unknown` (a timeout, a connection cut after sending: it
may have happened, at any moment after it was invoked). The checkers:

- `linearizable(ops, initial)`: a single register's history (writes,
  compare-and-sets, reads) has a linearization: a total order consistent
  with real time (an operation that completed before another was invoked
  comes first) in which every ok read sees the latest write, every ok
  compare-and-set found its expected value and every failed one did not.
  Unknown operations may take effect once, at any point after their
  invocation, or never. A Wing-Gong-Lowe style search, memoized on (which
  operations are linearized, register value): fine for per-key histories
  of tens of operations.
- `list_append_anomalies(ops, final)`: Elle's list-append idea on lists of
  unique values (each append adds a value no other append adds): the final
  list holds every acknowledged append exactly once and no value of a
  failed append; every ok read is a prefix of the final list (one order of
  appends, nothing lost in between); a read sees every append acknowledged
  before it was invoked (no stale read); and a multi-key append (a
  transaction) is in all of its keys' lists or in none (no partial
  transaction).
"""
import threading
import time
from dataclasses import dataclass, field

INF = float("inf")


@dataclass
class Op:
    process: int
    f: str  # "write", "cas", "read", "append", "read-list"
    key: object
    value: object = None  # write: v; cas: (expected, new); append: v (keys: a tuple for a multi-key append)
    result: object = None  # read: the value seen; read-list: the list; cas: whether it applied
    status: str = "unknown"  # "ok", "fail", "unknown"
    invoked: float = 0.0
    completed: float = INF
    error: str = ""  # how it failed, when it did


@dataclass
class History:
    """Thread-safe recorder: `with h.op(process, f, key, value) as o:` sets
    o.status and o.result; an exception leaves it unknown unless the code
    says otherwise."""
    ops: list = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def invoke(self, process, f, key, value=None):
        o = Op(process, f, key, value, invoked=time.monotonic())
        with self.lock:
            self.ops.append(o)
        return o

    @staticmethod
    def end(o, status, result=None):
        o.status, o.result = status, result
        o.completed = time.monotonic() if status != "unknown" else INF

    def of_key(self, key, fs):
        with self.lock:
            return [o for o in self.ops if o.key == key and o.f in fs]


def _apply(op, state):
    """(whether `op` can take effect in `state`, the state after it)."""
    if op.f == "write":
        return True, op.value
    if op.f == "read":
        return op.status != "ok" or op.result == state, state
    if op.f == "cas":
        expected, new = op.value
        if op.status == "ok" and op.result is False:  # the condition was found false
            return state != expected, state
        return state == expected, (new if state == expected else state)
    raise ValueError(op.f)


def linearizable(ops, initial=None, budget=2_000_000):
    """Whether a register history has a linearization. `fail` operations
    never happened and are dropped; a cas that is `ok` with result False
    observed its condition false (True: it applied). Returns (True, order)
    or (False, reason)."""
    ops = [o for o in ops if o.status != "fail"]
    ops = [o for o in ops if not (o.status == "unknown" and o.f == "read")]
    ops.sort(key=lambda o: o.invoked)
    n = len(ops)
    required = 0
    for i, o in enumerate(ops):
        if o.status != "unknown":
            required |= 1 << i
    seen = set()
    steps = 0
    # An explicit stack (histories of thousands of operations are deeper
    # than Python's recursion): frames of (linearized set, register value,
    # the next candidate to try); `path` holds the operations chosen.
    stack, path = [(0, _freeze(initial), 0)], []
    while stack:
        done, state, start = stack[-1]
        if done & required == required:
            return True, list(path)
        if start == 0:
            if (done, state) in seen:
                stack.pop()
                del path[max(0, len(stack) - 1):]
                continue
            seen.add((done, state))
            steps += 1
            if steps > budget:
                raise RuntimeError("linearizability search budget exhausted")
        # Nothing may come before an operation that completed before it began.
        horizon = min((o.completed for i, o in enumerate(ops) if not done >> i & 1 and required >> i & 1),
                      default=INF)
        chosen = False
        for i in range(start, n):
            o = ops[i]
            if o.invoked > horizon:
                break  # sorted by invocation: none after it may come first
            if done >> i & 1:
                continue
            possible, after = _apply(o, state)
            if possible:
                stack[-1] = (done, state, i + 1)
                stack.append((done | 1 << i, _freeze(after), 0))
                path.append(o)
                chosen = True
                break
        if not chosen:
            stack.pop()
            del path[max(0, len(stack) - 1):]
    return False, f"no linearization of {n} operations"


def _freeze(v):
    return tuple(v) if isinstance(v, list) else v


def list_append_anomalies(ops, final):
    """Anomalies of a list-append history. `final` maps each key to its list
    read after everything ended. Appends name one key, or a tuple of keys
    (a multi-key append: the same value appended to each, atomically)."""
    anomalies = []
    appends = [o for o in ops if o.f == "append"]
    by_value = {}
    for o in appends:
        by_value[o.value] = o

    def keys_of(o):
        return o.key if isinstance(o.key, tuple) else (o.key,)

    for key, lst in final.items():
        counts = {}
        for v in lst:
            counts[v] = counts.get(v, 0) + 1
        for v, c in counts.items():
            if c > 1:
                anomalies.append(("duplicate", key, v))
            o = by_value.get(v)
            if o is None or key not in keys_of(o):
                anomalies.append(("phantom", key, v))
            elif o.status == "fail":
                anomalies.append(("aborted-read", key, v))
    for o in appends:
        if o.status == "ok":
            for k in keys_of(o):
                if o.value not in final.get(k, []):
                    anomalies.append(("lost", k, o.value))
        if len(keys_of(o)) > 1 and o.status != "fail":
            present = [o.value in final.get(k, []) for k in keys_of(o)]
            if any(present) and not all(present):
                anomalies.append(("partial-transaction", keys_of(o), o.value))
    reads = [o for o in ops if o.f == "read-list" and o.status == "ok"]
    for r in reads:
        lst = list(r.result or [])
        if lst != final.get(r.key, [])[:len(lst)]:
            anomalies.append(("not-a-prefix", r.key, tuple(lst)))
        for o in appends:
            if (o.status == "ok" and r.key in keys_of(o) and o.completed < r.invoked
                    and o.value not in lst):
                anomalies.append(("stale-read", r.key, o.value))
    return anomalies

