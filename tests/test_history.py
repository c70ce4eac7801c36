"""The leader's 48-hour history (run/history.py): 4-minute averages in a ring of records on
flash split over segment files, each only appended to or truncated, surviving a restart, read a
field at a time."""
import json
import subprocess
import textwrap

from vm import ROOT, micropython, mp_env

HEAD = 16  # each segment's header


def run(tmp_path, script, clock=False):
    """Runs script in the unix port after a prelude (history_ops' helpers, the module, P the
    history's path, its segments P.00, P.01, ...; with clock, ampshare.core.clock on the ESP32's 2**30 ticks as C); returns the
    JSON its last line printed."""
    prelude = "from history_ops import *\n"
    if clock:
        prelude += "C = esp32_clock()\n"
    prelude += "from ampshare.run.history import *\nP = %r\n" % str(tmp_path / "history.bin")
    proc = subprocess.run([micropython(), "-c", prelude + textwrap.dedent(script)], capture_output=True,
                          text=True, env=mp_env(), cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_a_bucket_keeps_the_average_of_its_samples_and_none_for_a_silent_series(tmp_path):
    got = run(tmp_path, """
        def fn(k, i):
            if k < 10:  # the first bucket: 0 s .. 9 s
                return (1000 * (k + 1), NONE, -1250 if k < 5 else NONE)[i]
            return (99000, 2049, 2050)[i]  # the second, from the sample at 10 s on
        h = History(P, 3, bucket_ms=10_000)
        t = feed(h, 0, 21, fn)  # the sample at 20 s closes the second bucket
        out({"rows": [rows(h, i) for i in range(3)], "doc": doc(h, 0, ["a", "b", "c"], 35_000),
             "state": state(h)})
    """)
    a, b, c = got["rows"]
    assert a == [[0, 1, 5500], [1, 0, 99000]]  # the 10 s sample opens the next bucket
    assert b == [[0, 1, None], [1, 0, 2000]]  # no sample: none; 20.49 x 100 mA rounds down
    assert c == [[0, 1, -1300], [1, 0, 2100]]  # only the 5 samples it had; halves round away
    assert got["doc"] == {"period_s": 10, "newest_s_ago": 15, "restarts": [0],
                          "series": {"a": [5500, 99000], "b": [None, 2000], "c": [-1300, 2100]}}
    assert got["state"]["seq"] == 1 and got["state"]["errors"] == 0


def test_the_ring_drops_the_oldest_keeps_the_order_and_the_files_stop_growing(tmp_path):
    got = run(tmp_path, """
        import os
        h = History(P, 2, bucket_ms=1000, slots=8, per_file=2)
        feed(h, 0, 21, lambda k, i: k * 100 + i * 50)  # one sample per bucket: record k holds k's
        small = {"rows": rows(h, 1), "doc": doc(h, 0, ["x", "y"]), "size": h.size,
                 "bytes": [len(b) for b in segments(h)]}
        h = History(P + "2", 21, bucket_ms=1000)  # 750 slots in 25 files of 30: 1 group and 2 chargers
        geometry = [h.slots, h.per]  # the defaults
        empty = [None if b is None else len(b) for b in segments(h)]
        t = feed(h, 0, 752, lambda k, i: k * 100)  # records 0 .. 750: 750 truncated segment 0
        r = rows(h, 5)
        d = doc(h, 0, ("meter", "allocated", "usage"))
        cut = {"bytes": [len(b) for b in segments(h)], "n": len(r), "first": r[0], "last": r[-1],
               "ordered": [x[0] for x in r] == list(range(30, 751)), "doc_n": len(d["series"]["usage"]),
               "doc_first": d["series"]["meter"][0], "restarts": d["restarts"]}
        feed(h, t, 29, lambda k, i: (752 + k) * 100)  # records 751 .. 779: segment 0 full again
        r = rows(h, 5)
        out({"small": small, "geometry": geometry, "empty": empty, "size": h.size, "cut": cut,
             "bytes": [len(b) for b in segments(h)], "n": len(r), "first": r[0], "last": r[-1]})
    """)
    small = got["small"]
    assert small["rows"] == [[s, 0, s * 100 + 100] for s in range(12, 20)]  # y: x + 50 mA, rounded up
    assert small["doc"]["series"]["x"] == [s * 100 for s in range(12, 20)]
    assert small["doc"]["restarts"] == []  # the record after the start is gone with the oldest
    assert small["bytes"] == [HEAD + 2 * small["size"]] * 4
    assert got["geometry"] == [750, 30]
    assert got["empty"] == [HEAD] + [None] * 24  # a new history is segment 0's header
    assert got["size"] == 7 + 2 * 21 == 49
    # Record 750 began segment 0 afresh: the other 24 hold 720 records, 48 hours, and it one more.
    cut = got["cut"]
    assert cut["bytes"] == [HEAD + 49] + [HEAD + 30 * 49] * 24 and HEAD + 30 * 49 == 1486
    assert cut["n"] == 721 and cut["ordered"]
    assert cut["first"] == [30, 0, 3000] and cut["last"] == [750, 0, 75000]
    assert cut["doc_n"] == 721 and cut["doc_first"] == 3000 and cut["restarts"] == []
    # Full again: 750 records, 50 hours, in 25 files that no longer grow.
    assert got["bytes"] == [HEAD + 30 * 49] * 25
    assert got["n"] == 750 and got["first"] == [30, 0, 3000] and got["last"] == [779, 0, 77900]


def test_a_restart_continues_the_numbering_keeps_the_values_and_marks_the_gap(tmp_path):
    got = run(tmp_path, """
        h = History(P, 2, bucket_ms=1000, slots=8, per_file=2)
        feed(h, 0, 6, lambda k, i: k * 100 + i * 1000)  # records 0 .. 4
        h = History(P, 2, bucket_ms=1000, slots=8, per_file=2)  # the leader restarts
        after = state(h)
        before = doc(h, 0, ["x", "y"])
        feed(h, 5_000_000, 4, lambda k, i: 5000 + k * 100)  # its own clock: records 5 .. 7
        out({"after": after, "before": before, "rows": rows(h, 0), "doc": doc(h, 0, ["x", "y"], 5_004_500)})
    """)
    assert got["after"]["seq"] == 4 and got["after"]["new"] is None
    assert got["before"]["newest_s_ago"] is None  # written before this start: its age is unknown
    assert got["before"]["series"]["y"] == [1000, 1100, 1200, 1300, 1400]
    assert got["rows"] == [[0, 1, 0], [1, 0, 100], [2, 0, 200], [3, 0, 300], [4, 0, 400],
                           [5, 1, 5000], [6, 0, 5100], [7, 0, 5200]]
    assert got["doc"]["restarts"] == [0, 5]
    assert got["doc"]["newest_s_ago"] == 1


def test_a_stall_longer_than_a_bucket_is_marked_as_a_gap_not_filled(tmp_path):
    got = run(tmp_path, """
        h = History(P, 1, bucket_ms=10_000)
        t = feed(h, 0, 15, lambda k, i: 1000)  # record 0; the second bucket has 5 samples
        feed(h, t + 60_000, 11, lambda k, i: 2000)  # a minute without a sample, then 11 s
        out({"rows": rows(h, 0), "doc": doc(h, 0, ["x"])})
    """)
    assert got["rows"] == [[0, 1, 1000], [1, 0, 1000], [2, 1, 2000]]
    assert got["doc"]["restarts"] == [0, 2]


def test_a_torn_record_is_skipped_and_its_place_written_again(tmp_path):
    got = run(tmp_path, """
        import os
        def cut_short(k, by):
            data = open(seg(P, k), "rb").read()
            with open(seg(P, k), "wb") as f:
                f.write(data[:-by])
        # A short segment: the power went while its first record was being written.
        h = History(P, 3, bucket_ms=1000, slots=4, per_file=2)
        feed(h, 0, 4, lambda k, i: k * 100)  # records 0 .. 2: segment 1 holds record 2
        cut_short(1, 5)  # record 2 lacks its last 5 bytes
        h = History(P, 3, bucket_ms=1000, slots=4, per_file=2)
        cut = {"state": state(h), "rows": rows(h, 0)}
        feed(h, 0, 2, lambda k, i: 7000)
        cut["again"] = rows(h, 0)
        # Cut inside a segment: the torn bytes lie where the record goes again, the one write
        # made in place.
        feed(h, 2000, 1, lambda k, i: 7100)  # record 3 (the sample at 1 s) after record 2 in segment 1
        cut_short(1, 5)
        h = History(P, 3, bucket_ms=1000, slots=4, per_file=2)
        log = spy()
        inside = {"state": state(h)}
        feed(h, 0, 2, lambda k, i: 7200)  # record 3 again
        inside["modes"] = writes(log)
        inside["bytes"] = len(segments(h)[1])
        inside["rows"] = rows(History(P, 3, bucket_ms=1000, slots=4, per_file=2), 0)
        # The new record's head over the old one's tail.
        for k in range(2):
            os.remove(seg(P, k))
        h = History(P, 3, bucket_ms=1000, slots=4, per_file=2)
        t = feed(h, 0, 5, lambda k, i: k * 100 + i * 1000)  # records 0 .. 3
        old = segments(h)[0]  # records 0 and 1
        t = feed(h, t, 2, lambda k, i: 9000)  # record 4 begins segment 0 afresh, record 5 follows
        new = segments(h)[0]
        at = 16 + 1 * h.size + 7  # seq, flags and the first value are record 5's, the rest record 1's
        with open(seg(P, 0), "wb") as f:
            f.write(new[:at] + old[at:])
        h = History(P, 3, bucket_ms=1000, slots=4, per_file=2)
        out({"cut": cut, "inside": inside, "state": state(h), "rows": rows(h, 1),
             "doc": doc(h, 0, ["a", "b", "c"])})
    """)
    assert got["cut"]["state"]["seq"] == 1
    assert got["cut"]["rows"] == [[0, 1, 0], [1, 0, 100]]
    assert got["cut"]["again"] == [[0, 1, 0], [1, 0, 100], [2, 1, 7000]]  # numbered on, restart marked
    inside = got["inside"]
    assert inside["state"]["seq"] == 2
    assert inside["modes"] == [[1, "ab"], [1, "r+b"]]  # the file was longer than record 3's place
    assert inside["bytes"] == HEAD + 2 * got["state"]["size"]
    assert inside["rows"] == [[0, 1, 0], [1, 0, 100], [2, 1, 7000], [3, 1, 7200]]
    assert got["state"]["seq"] == 4  # the torn record 5 is not taken
    assert got["rows"] == [[2, 0, 1200], [3, 0, 1300], [4, 0, 1400]]
    assert got["doc"]["series"]["b"] == [1200, 1300, 1400]


def test_a_file_of_another_site_is_replaced_and_the_same_site_continued(tmp_path):
    got = run(tmp_path, """
        import os
        def sizes(h):
            return [None if b is None else len(b) for b in segments(h)]
        res = {}
        res["missing"] = state(History(P, 3, tag=7, bucket_ms=1000, slots=6, per_file=2))
        h = History(P, 3, tag=7, bucket_ms=1000, slots=6, per_file=2)
        feed(h, 0, 4, lambda k, i: 100)  # records 0 .. 2: segments 0 and 1
        res["same"] = state(History(P, 3, tag=7, bucket_ms=1000, slots=6, per_file=2))
        h = History(P, 4, tag=7, bucket_ms=1000, slots=6, per_file=2)
        res["other_n"] = state(h)
        res["other_n_bytes"] = sizes(h)  # every segment goes; the new history is segment 0's header
        feed(h, 0, 4, lambda k, i: 100)
        res["other_tag"] = state(History(P, 4, tag=8, bucket_ms=1000, slots=6, per_file=2))
        res["other_per"] = state(History(P, 4, tag=8, bucket_ms=1000, slots=6, per_file=3))
        # One segment of another history among this one's: the whole history begins anew.
        h = History(P, 4, tag=8, bucket_ms=1000, slots=6, per_file=2)
        feed(h, 0, 6, lambda k, i: 100)  # records 0 .. 4: all three segments
        data = open(seg(P, 1), "rb").read()
        with open(seg(P, 1), "wb") as f:
            f.write(data[:14] + bytes([9, 0]) + data[16:])  # its site tag
        h = History(P, 4, tag=8, bucket_ms=1000, slots=6, per_file=2)
        res["one"] = state(h)
        res["one_bytes"] = sizes(h)
        out(res)
    """)
    assert got["missing"]["seq"] == -1 and got["missing"]["new"] == "no history file"
    assert got["same"]["seq"] == 2 and got["same"]["new"] is None
    assert got["other_n"]["seq"] == -1 and "new history" in got["other_n"]["new"]
    assert got["other_n_bytes"] == [HEAD, None, None]
    assert got["other_tag"]["seq"] == -1 and "new history" in got["other_tag"]["new"]
    assert got["other_per"]["seq"] == -1 and "new history" in got["other_per"]["new"]
    assert got["one"]["seq"] == -1 and "new history" in got["one"]["new"]
    assert got["one_bytes"] == [HEAD, None, None]


def test_site_tags_differ_when_the_ids_do(tmp_path):
    got = run(tmp_path, """
        from ampshare.config import site as sitemod
        def tg(*ids):
            return tag(sitemod.parse({"version": 1, "groups": [{"id": "main", "limit_a": 40}],
                "chargers": [{"id": c, "group": "main", "max_a": 16} for c in ids]}))
        out([tg("wb1", "wb2"), tg("wb2", "wb1"), tg("wb1", "wb3"), tg("wb1", "wb2")])
    """)
    assert got[0] == got[3] and len({got[0], got[1], got[2]}) == 3


def test_flash_errors_are_counted_never_raised_and_the_lost_bucket_is_null(tmp_path):
    got = run(tmp_path, """
        import os
        gone = History("/nonexistent/ampshare/history.bin", 2, bucket_ms=1000)
        feed(gone, 0, 5, lambda k, i: 100)
        h = History(P, 2, bucket_ms=1000, slots=4, per_file=2)
        t = feed(h, 0, 6, lambda k, i: k * 100)  # records 0 .. 4 (record k: the sample at k s)
        saved = open(seg(P, 0), "rb").read()  # record 4
        os.remove(seg(P, 0))
        os.mkdir(seg(P, 0))  # the segment cannot be opened for writing
        t = feed(h, t, 1, lambda k, i: 600)  # record 5 fails
        failed = state(h)
        os.rmdir(seg(P, 0))
        with open(seg(P, 0), "wb") as f:
            f.write(saved)
        feed(h, t, 1, lambda k, i: 700)  # record 6 is written: it begins segment 1 afresh
        later = History(P, 2, bucket_ms=1000, slots=4, per_file=2)
        out({"gone": state(gone), "failed": failed, "rows": rows(h, 0), "doc": doc(h, 0, ["x", "y"]),
             "later": rows(later, 0)})
    """)
    assert got["gone"]["off"].startswith("history off: cannot make /nonexistent/ampshare/history.bin")
    assert got["gone"]["errors"] == 1 and got["gone"]["seq"] == -1
    assert got["failed"]["errors"] == 1 and got["failed"]["error"] and got["failed"]["seq"] == 5
    assert got["rows"] == [[4, 0, 400], [6, 0, 600]]
    assert got["doc"]["series"]["x"] == [400, None, 600]  # one value per bucket: time stays true
    assert got["later"] == [[4, 0, 400], [6, 0, 600]]  # after a restart too


def test_a_record_is_appended_to_its_segment_or_begins_it_afresh_and_no_other_file_is_touched(tmp_path):
    got = run(tmp_path, """
        h = History(P, 2, bucket_ms=1000, slots=8, per_file=2)  # 4 segments of 2 records
        log = spy()
        t = feed(h, 0, 1, lambda k, i: 0)
        steps = []
        for s in range(19):
            if s == 11:
                h = History(P, 2, bucket_ms=1000, slots=8, per_file=2)  # a restart on the way
                log = spy()
                t = feed(h, t, 1, lambda k, i: 0)
            before = segments(h)
            del log[:]
            t = feed(h, t, 1, lambda k, i: h.seq * 10 + i)  # closes record h.seq + 1
            after = segments(h)
            k = h.seq % 8 // 2
            steps.append({"seq": h.seq, "opens": writes(log), "errors": h.errors, "size": h.size,
                          "changed": [x for x in range(4) if after[x] != before[x]],
                          "kept": after[k][:len(before[k] or b"")] == before[k], "bytes": len(after[k])})
        out(steps)
    """)
    assert [st["seq"] for st in got] == list(range(19))
    for st in got:
        s, k, j = st["seq"], st["seq"] % 8 // 2, st["seq"] % 2
        assert st["errors"] == 0
        # One open for writing, of the record's own segment: an append, or a truncate for its first.
        assert st["opens"] == [[k, "ab" if j else "wb"]]
        assert st["changed"] == [k]  # every other segment keeps its bytes
        assert st["bytes"] == HEAD + (j + 1) * st["size"]
        if j:
            assert st["kept"]  # the segment's earlier bytes stay as they were: the record went on the end


def test_a_segment_is_truncated_when_the_ring_comes_back_to_it_and_the_window_keeps_the_rest(tmp_path):
    got = run(tmp_path, """
        h = History(P, 2, bucket_ms=1000, slots=8, per_file=2)
        t = feed(h, 0, 1, lambda k, i: 0)
        steps = []
        for s in range(24):
            t = feed(h, t, 1, lambda k, i: 100 * (h.seq + 2))  # closes record h.seq + 1, opens the next
            r = rows(h, 0)
            steps.append({"seq": h.seq, "seqs": [x[0] for x in r], "values": [x[2] for x in r],
                          "doc": doc(h, 0, ["x"])["series"]["x"], "bytes": [len(b) for b in segments(h) if b],
                          "again": rows(History(P, 2, bucket_ms=1000, slots=8, per_file=2), 0) == r})
            h = History(P, 2, bucket_ms=1000, slots=8, per_file=2) if s == 15 else h  # and a restart
            if s == 15:
                t = feed(h, t + 10_000, 1, lambda k, i: 1600)
        out({"steps": steps, "size": h.size})
    """)
    size = got["size"]
    assert [st["seq"] for st in got["steps"]] == list(range(24))
    for st in got["steps"]:
        s = st["seq"]
        # Up to slots records; from the ring's first round on, at least slots - per_file + 1:
        # record s began or continued its segment, whose older records went at its first.
        n = s + 1 if s < 8 else 8 - 2 + 1 + s % 2
        assert st["seqs"] == list(range(s - n + 1, s + 1))
        assert st["values"][-1] == 100 * s and st["doc"][-1] == 100 * s and len(st["doc"]) == n
        full = min(s + 1, 8) // 2 - (1 if s >= 8 and s % 2 == 0 else 0)
        assert st["bytes"].count(HEAD + 2 * size) == full
        assert st["again"]  # a restart reads the same window


def test_a_lost_record_is_padded_read_as_null_and_its_segment_goes_on(tmp_path):
    got = run(tmp_path, """
        import os
        h = History(P, 2, bucket_ms=1000, slots=8, per_file=4)
        t = feed(h, 0, 3, lambda k, i: k * 100 + 100)  # records 0, 1
        os.rename(seg(P, 0), P + ".saved")
        os.mkdir(seg(P, 0))  # record 2 cannot be written
        t = feed(h, t, 1, lambda k, i: 300)
        failed = state(h)
        os.rmdir(seg(P, 0))
        os.rename(P + ".saved", seg(P, 0))
        t = feed(h, t, 1, lambda k, i: 400)  # record 3: zeros in record 2's place first
        data = segments(h)[0]
        lost = {"bytes": len(data), "zeros": data[16 + 2 * h.size:16 + 3 * h.size] == bytes(h.size),
                "rows": rows(h, 0), "doc": doc(h, 0, ["x", "y"])["series"]["y"],
                "again": rows(History(P, 2, bucket_ms=1000, slots=8, per_file=4), 0)}
        # The segment file gone mid-run: begun again with its header and zeros up to the record.
        t = feed(h, t, 2, lambda k, i: 500 + k * 100)  # records 4, 5 in segment 1
        os.remove(seg(P, 1))
        log = spy()
        t = feed(h, t, 1, lambda k, i: 700)  # record 6
        gone = {"opens": writes(log), "bytes": len(segments(h)[1]), "rows": rows(h, 0),
                "doc": doc(h, 0, ["x", "y"])["series"]["x"],
                "again": rows(History(P, 2, bucket_ms=1000, slots=8, per_file=4), 0)}
        out({"failed": failed, "lost": lost, "gone": gone, "size": h.size})
    """)
    size = got["size"]
    assert got["failed"]["errors"] == 1 and got["failed"]["seq"] == 2
    lost = got["lost"]
    assert lost["bytes"] == HEAD + 4 * size and lost["zeros"]
    assert lost["rows"] == [[0, 1, 100], [1, 0, 200], [3, 0, 300]]  # record 3: the sample at 2 s
    assert lost["doc"] == [100, 200, None, 300]
    assert lost["again"] == [[0, 1, 100], [1, 0, 200], [3, 0, 300]]  # the zeros fail the check
    gone = got["gone"]
    assert gone["opens"] == [[1, "ab"], [1, "wb"]]
    assert gone["bytes"] == HEAD + 3 * size
    assert gone["rows"] == [[0, 1, 100], [1, 0, 200], [3, 0, 300], [6, 0, 600]]
    assert gone["doc"] == [100, 200, None, 300, None, None, 600]
    assert gone["again"] == gone["rows"]


def test_a_failed_truncate_leaves_its_old_records_out_of_the_window(tmp_path):
    got = run(tmp_path, """
        h = History(P, 2, bucket_ms=1000, slots=4, per_file=2)
        t = feed(h, 0, 5, lambda k, i: k * 100)  # records 0 .. 3: segment 0 holds 0 and 1
        log = spy(lambda name, mode: mode == "wb")
        t = feed(h, t, 1, lambda k, i: 400)  # record 4 cannot truncate segment 0
        failed = state(h)
        log = spy()
        t = feed(h, t, 1, lambda k, i: 500)  # record 5 over record 1, in place
        out({"failed": failed, "opens": writes(log), "rows": rows(h, 0), "doc": doc(h, 0, ["x", "y"]),
             "again": rows(History(P, 2, bucket_ms=1000, slots=4, per_file=2), 0)})
    """)
    assert got["failed"]["errors"] == 1 and got["failed"]["seq"] == 4
    assert got["opens"] == [[0, "ab"], [0, "r+b"]]
    # Record 0, still whole at the head of segment 0, is older than the window: not read.
    assert got["rows"] == [[2, 0, 200], [3, 0, 300], [5, 0, 400]]
    assert got["doc"]["series"]["x"] == [200, 300, None, 400]
    assert got["again"] == got["rows"]


def test_buckets_are_timed_across_the_esp32_ticks_wrap(tmp_path):
    got = run(tmp_path, """
        h = History(P, 1, bucket_ms=10_000)
        t0 = (1 << 30) - 25_500  # the third bucket ends past the wrap, at ticks 4,500
        t = feed(h, t0, 41, lambda k, i: k * 100, add=C.ticks_add)
        out({"rows": rows(h, 0), "last": t, "doc": doc(h, 0, ["x"], C.ticks_add(t0, 47_000)),
             "kept": [h._t0, h._closed, h._last]})
    """, clock=True)
    assert got["last"] == 41_000 - 25_500  # the clock did wrap
    # Each bucket holds its own ten samples: (10 b + 4.5) x 100 mA, rounded to 100 mA.
    assert got["rows"] == [[0, 1, 500], [1, 0, 1500], [2, 0, 2500], [3, 0, 3500]]
    assert got["doc"]["newest_s_ago"] == 7
    # The ticks it keeps stay in the clock's range (beyond 2**30, a big int on the board's heap).
    assert all(0 <= t < 2**30 for t in got["kept"])


SITE = {"version": 1,
        "groups": [{"id": "main", "limit_a": 40, "meter": "grid"}, {"id": "carport", "parent": "main", "limit_a": 32}],
        "meters": [{"id": "grid", "source": "modbus"}],
        "chargers": [{"id": "wb1", "group": "carport", "max_a": 32, "rotation": "L123"},
                     {"id": "wb2", "group": "carport", "max_a": 16, "phases": 1, "rotation": "L231"},
                     {"id": "wb3", "group": "main", "max_a": 16}]}


def test_figures_are_the_live_views_in_the_documented_order_without_heap(tmp_path):
    got = run(tmp_path, """
        import gc
        from ampshare.config import site as sitemod
        from ampshare.core.leader import Leader
        from ampshare.run import live
        site = sitemod.parse(SITE_JSON)
        core = Leader(site, 0)
        a = core.alloc
        a.meter_ok[0] = 1
        for p, v in enumerate((12000, 8000, -3000)):
            a.meter[p] = v
        for c, (sent, meas) in enumerate(((16000, (15000, 14000, 13000)), (10000, (9000, -1, -1)))):
            core.status[c] = 1  # ONLINE
            core.sent[c] = core.permitted[c] = sent
            for k in range(3):
                a.meas[c * 3 + k] = meas[k]
        class O:
            pass
        app = O()
        app.core, app.site, app.port, app.line, app.clamps = core, site, O(), None, None
        app.port.l_epoch, app.flash_errors, app.flash_error = 1, 0, None
        app.period_ms, app.gap_max, app.gap_recent = 100, 0, lambda: 0  # run/shell.py's loop figures
        vals = array("i", [0] * count(site))
        figures(app, vals)  # makes its scratch for this site's size

        def heap():
            gc.collect()
            a0 = gc.mem_alloc()
            for _ in range(10):
                figures(app, vals)
            return gc.mem_alloc() - a0
        ix = {"%s/%d" % kp: index(site, *kp) for kp in (("main", 0), ("carport", 1), ("wb2", 2), ("wb3", 0), ("x", 0), ("main", 3))}
        res = {"vals": list(vals), "live": json.loads(live.status(app))}
        a.meter_ok[0] = 0  # the grid meter goes silent
        figures(app, vals)
        out({"vals": res["vals"], "live": res["live"], "silent": list(vals), "heap": heap(), "NONE": NONE,
             "ix": {k: list(v) if v else None for k, v in ix.items()}})
    """.replace("SITE_JSON", json.dumps(SITE)))
    vals, live, none = got["vals"], got["live"], got["NONE"]
    assert len(vals) == 9 * 2 + 6 * 3
    for g, gid in enumerate(("main", "carport")):
        row = live["groups"][gid]
        for p in range(3):
            i = g * 9 + p * 3
            assert vals[i] == (row["meter"][p] if row["meter"] else none)
            assert vals[i + 1:i + 3] == [row["allocated"][p], row["usage"][p]]
    assert [vals[p * 3] for p in range(3)] == [12000, 8000, -3000]
    assert [vals[9 + p * 3] for p in range(3)] == [none] * 3  # carport has no meter
    for c, cid in enumerate(("wb1", "wb2", "wb3")):
        row, i = live["chargers"][cid], 18 + c * 6
        offered, drawn = vals[i:i + 6:2], vals[i + 1:i + 6:2]
        if row["link"] == "unknown":
            assert offered == drawn == [none] * 3  # not heard since the leader started
            continue
        assert offered == [row["offered"] if k < row["phases"] else 0 for k in range(3)]
        assert [max(0, d) for d in drawn] == row["meas"]
    assert vals[24:30] == [10000, 9000, 0, none, 0, none]  # wb2: one phase, metered on its L1
    # A silent meter has no value; the rest stays.
    assert got["silent"] == [none if i in (0, 3, 6) else v for i, v in enumerate(vals)]
    assert got["heap"] == 0
    group, charger = ["meter", "allocated", "usage"], ["offered", "drawn"]
    assert got["ix"] == {"main/0": [0, group], "carport/1": [9 + 3, group], "wb2/2": [18 + 6 + 4, charger],
                         "wb3/0": [18 + 12, charger], "x/0": None, "main/3": None}


def test_sampling_takes_no_heap_and_a_history_of_64_chargers_holds_a_few_kb(tmp_path):
    got = run(tmp_path, """
        import gc
        from ampshare.config import site as sitemod
        site = sitemod.parse({"version": 1, "groups": [{"id": "main", "limit_a": 400}],
            "chargers": [{"id": "wb%d" % c, "group": "main", "max_a": 16} for c in range(64)]})
        n = count(site)
        vals = array("i", [5000] * n)

        def settle(depth=20):
            # Overwrites the C stack (the port's collector scans it for pointers), then collects.
            if depth:
                return settle(depth - 1)
            gc.collect()
            gc.collect()
            return gc.mem_free()

        def make():
            return History(P, n, tag(site))

        free = settle()
        h = make()
        held = free - settle()
        h.sample(0, vals)

        def heap():  # locals only: a new global would grow the module's dict
            gc.collect()
            a0 = gc.mem_alloc()
            for t in range(1000, 200_000, 1000):  # 199 samples inside one bucket
                h.sample(t, vals)
            return gc.mem_alloc() - a0
        out({"n": n, "size": h.size, "held": held, "heap": heap()})
    """)
    assert got["n"] == 393 and got["size"] == 793
    assert got["heap"] == 0
    # Sums (4 bytes a series), counts (2), one record (793), the slots' bits (2 x 94), the
    # object: 4,000 bytes on the 64-bit port (the header is made when needed, not kept).
    assert got["held"] < 4200
    print("History for 1 group + 64 chargers holds %d bytes" % got["held"])


def test_a_segment_left_empty_by_a_power_cut_loses_itself_not_the_history(tmp_path):
    # LittleFS makes a file as it is opened: a cut before its header is written leaves it empty.
    got = run(tmp_path, """
        h = History(P, 2, bucket_ms=1000, slots=6, per_file=2)
        feed(h, 0, 4, lambda k, i: 100 * (k + 1))  # records 0 .. 2: segments 0 and 1
        open(P + ".02", "wb").close()
        again = History(P, 2, bucket_ms=1000, slots=6, per_file=2)
        out({"state": state(again), "row": rows(again, 0)})
    """)
    assert got["state"]["new"] is None and got["state"]["seq"] == 2
    assert [v for _, _, v in got["row"]] == [100, 200, 300]
