"""The history checkers (history.py) flag each anomaly they exist for, on
small hand-made histories: a stale read, a lost update (two compare-and-sets
from one value), a lost write, a duplicate apply, a read that is no prefix
of the final list, an aborted read and a partial transaction; and accept
histories that are fine, unknown operations included."""
from history import INF, Op, linearizable, list_append_anomalies


def op(f, key, value=None, result=None, status="ok", t=(0, 1), p=0):
    return Op(p, f, key, value, result, status, t[0], t[1] if status != "unknown" else INF)


def test_a_sequential_register_history_is_linearizable():
    h = [op("write", "x", 1, t=(0, 1)), op("read", "x", result=1, t=(2, 3)),
         op("cas", "x", (1, 2), result=True, t=(4, 5)), op("read", "x", result=2, t=(6, 7)),
         op("cas", "x", (1, 3), result=False, t=(8, 9)), op("read", "x", result=2, t=(10, 11)),
         # Never sent: it did not happen, whatever its condition.
         op("cas", "x", (2, 4), status="fail", t=(12, 13)), op("read", "x", result=2, t=(14, 15))]
    assert linearizable(h)[0]


def test_a_stale_read_is_flagged():
    h = [op("write", "x", 1, t=(0, 1)), op("read", "x", result=None, t=(2, 3))]
    assert not linearizable(h)[0]


def test_a_concurrent_read_may_see_either_value():
    for seen in (None, 1):
        h = [op("write", "x", 1, t=(0, 10)), op("read", "x", result=seen, t=(1, 2))]
        assert linearizable(h)[0], seen


def test_a_lost_update_is_flagged():
    # Two increments from 0, both acknowledged: one of them was lost.
    h = [op("write", "x", 0, t=(0, 1)), op("cas", "x", (0, 1), result=True, t=(2, 5), p=1),
         op("cas", "x", (0, 1), result=True, t=(3, 6), p=2), op("read", "x", result=1, t=(7, 8))]
    assert not linearizable(h)[0]


def test_an_unknown_write_may_or_may_not_have_happened():
    for seen in (0, 5):
        h = [op("write", "x", 0, t=(0, 1)), op("write", "x", 5, status="unknown", t=(2, None)),
             op("read", "x", result=seen, t=(3, 4)), op("read", "x", result=seen, t=(5, 6))]
        assert linearizable(h)[0], seen
    # ... but once seen it cannot be unseen.
    h = [op("write", "x", 0, t=(0, 1)), op("write", "x", 5, status="unknown", t=(2, None)),
         op("read", "x", result=5, t=(3, 4)), op("read", "x", result=0, t=(5, 6))]
    assert not linearizable(h)[0]


def test_a_clean_list_append_history_has_no_anomalies():
    h = [op("append", "k", "a", t=(0, 1)), op("append", "k", "b", t=(2, 3)),
         op("read-list", "k", result=["a"], t=(1.5, 1.8)), op("append", "k", "c", status="unknown"),
         op("append", "k", "d", status="fail"), op("append", ("k", "j"), "t1", t=(4, 5))]
    assert list_append_anomalies(h, {"k": ["a", "b", "t1"], "j": ["t1"]}) == []


def kinds(h, final):
    return {a[0] for a in list_append_anomalies(h, final)}


def test_each_list_append_anomaly_is_flagged():
    a, b = op("append", "k", "a", t=(0, 1)), op("append", "k", "b", t=(2, 3))
    assert kinds([a, b], {"k": ["a"]}) == {"lost"}
    assert kinds([a, b], {"k": ["a", "b", "b"]}) == {"duplicate"}
    slow_a, slow_b = op("append", "k", "a", t=(0, 9)), op("append", "k", "b", t=(0, 9))
    assert kinds([slow_a, slow_b, op("read-list", "k", result=["b"], t=(4, 5))],
                 {"k": ["a", "b"]}) == {"not-a-prefix"}
    assert kinds([a, b, op("read-list", "k", result=["a"], t=(4, 5))], {"k": ["a", "b"]}) == {"stale-read"}
    failed = op("append", "k", "c", status="fail", t=(4, 5))
    assert kinds([a, b, failed], {"k": ["a", "b", "c"]}) == {"aborted-read"}
    assert kinds([a], {"k": ["a", "zzz"]}) == {"phantom"}
    txn = op("append", ("k", "j"), "t", status="unknown")
    assert kinds([a, txn], {"k": ["a", "t"], "j": []}) == {"partial-transaction"}
    assert kinds([a, txn], {"k": ["a"], "j": []}) == set()
