# The leader's 48-hour history: per group and phase the meter, allocated and usage figures, per
# charger and phase the offered and drawn ones, averaged over 4-minute buckets and kept on flash
# in a ring of fixed-size records split over segment files, each file only ever appended to or
# truncated, never written inside. It survives a restart, and nothing holds it whole in RAM: the
# page reads it a field at a time.
#
# Series order (figures() fills `out` in it, index() finds a node's first series):
#   group g (site.group_ids order), site phase p (0..2):  g*9 + p*3 + (0 meter, 1 allocated, 2 usage)
#   charger c (site.charger_ids order), its own phase k:  9*groups + c*6 + k*2 + (0 offered, 1 drawn)
#
# The files (little-endian), path given by the shell (state_dir + "/history"): slots / per_file
# segments, path + ".%02d" % k (history.00 .. history.24), each:
#   header, 16 bytes, the same in every segment: b"AShi", format version u8 (2), records per
#     segment u8, series u16, slots u16, record size u16, bucket seconds u16, site tag u16
#   then its records in order: the record numbered seq sits in slot seq % slots, that is in
#     segment slot // per_file at place slot % per_file:
#     seq u32 (below 2**30: at 360 a day that is millions of years), flags u8 (_GAP), one int16
#     per series in units of 100 mA (1,000 A, the largest fuse a site may have, is 10,000 and
#     fits; 0.1 A is the meters' resolution) with -32768 for "none", and a u16 check: the sum of
#     the record's other bytes plus a seed. A record cut short by a power cut, zeros padded in
#     for a lost one (below), or a new record's head over an old one's tail fails the check:
#     that record is skipped on reading.
#   A record is 7 + 2 * series bytes: 49 for 1 group + 2 chargers (a full segment 1,486 bytes,
#   all 25: 37,150), 793 for 1 group + 64 chargers (23,806 bytes; 595,150).
# Record seq is written so:
#   - the first of its segment (slot % per_file == 0): the file is truncated ("wb") and gets
#     the header and the record. Its per_file older records go: they were the oldest of the ring.
#   - any other: appended ("ab"). A file shorter than the record's place (an earlier record of
#     the segment lost to a failed write, or the file gone) is first padded with zero bytes,
#     which fail the check, a few at a time. A file longer than that (the tail of a torn write,
#     or the old records of a truncate that failed) has the record written in place ("r+b"), the
#     one write inside a file; rare.
#   So the ring holds the last 721 to 750 records: 48 h and a bucket just after a truncate, 50 h
#   just before one. Reading takes records from the oldest of that window on (_from): records
#   older than it still found in a segment (a truncate that failed) are not taken, now or after a
#   restart. At start every segment's header is read: if any does not match (another series
#   count, bucket, geometry or site tag), all segments are removed and the history begins anew:
#   a new site starts a new history (`new` says why).
#
# Flash wear, 360 records a day, 12 of them truncates. LittleFS (the ESP32 port's filesystem,
# littlefs v2) keeps a file's data as a backward-linked list of 4-KB blocks (CTZ skip-list) and
# never programs a block twice between erases. A write inside a file copies its block and every
# block after it, up to the end of the file, on the close that commits it (lfs2_file_flush;
# littlefs-project/littlefs#515: "random writes effectively end up rewriting the rest of the
# file"): the one-file ring paid half its file a record, ~290 KB and ~70 erases at 64 chargers.
# An append after reopening copies only the file's last block, when it is partly filled, into a
# newly erased block and writes on there (lfs2_file_flushedwrite -> lfs2_ctz_extend: "just copy
# out the last block if it is incomplete"), and takes one more erased block each time the record
# crosses a block's end. A truncate programs nothing but the directory commit; the file's blocks
# become free. A file of up to 128 bytes (MicroPython's cache_size, 4 x progsize 32) lives inline
# in the directory's metadata. Every close commits some 64 bytes (the file's struct and mtime) to
# the directory's metadata pair, whose block is erased when it is compacted, every few dozen
# commits. Per day, modelled on that code (4,096-byte blocks; tests/test_history.py cannot see
# the flash: the unix port writes a host file):
#   1 group + 2 chargers (a segment fits one block): ~770 bytes and ~0.9 erase a record, ~280 KB
#     and ~340 erases a day (the one-file ring: 7 MB and ~1,800);
#   1 group + 64 chargers (a segment spans 6 blocks): ~2.8 KB and ~1.2 erases a record, ~1 MB and
#     ~420 erases a day (the one-file ring: 100 MB and ~25,000);
#   plus the metadata commits, ~25 KB and ~10 erases a day (an estimate: it depends on what else
#   the directory holds).
# littlefs spreads erases over its free blocks (dynamic wear levelling): on the 2 MB partition of
# 512 blocks of 100,000 cycles that is some 300 years at 64 chargers (decades and ~5 years for the
# one-file ring). Flash time per record: about one 4-KB erase (~45 ms typical, up to ~400 ms, on
# the usual SPI NOR) and a few KB programmed (~0.7 ms per 256 bytes): ~45 ms for 2 chargers,
# ~60 ms for 64, where the one-file ring took seconds (~70 erases).
import os
from array import array

from micropython import const

from ampshare.core.clock import ticks_add, ticks_diff
from ampshare.core.ints import count as _count

NONE = const(-0x40000000)  # "no value" in figures(): below any reading, still a small int
_GAP = const(1)  # record flag: a gap of unknown length precedes it (a restart; no wall clock)
BUCKET_MS = const(240_000)  # 4 minutes: 720 of them cover 48 hours
# 2 hours a segment: one file truncated and written afresh every 2 hours. Fewer records a
# segment would keep less beyond 48 h but make more files (directory entries, opens while
# reading); more would keep more (a whole segment goes at once) for no cheaper append: an
# append copies at most the file's last block whatever its length.
_PER_FILE = const(30)
# 25 segments: when one is truncated the other 24 still hold 720 records, 48 hours.
_SLOTS = const(750)
_GROUP = const(("meter", "allocated", "usage"))  # a group's series per phase, in order
_CHARGER = const(("offered", "drawn"))  # a charger's series per phase, in order

_MAGIC = b"AShi"
_VERSION = const(2)  # 1: the ring in one file, written in place
_HEAD = const(16)
_VALUES = const(5)  # a record: seq 0..3, flags 4, values from 5, check last
_CHECK = const(2)
_EMPTY = const(-32768)  # a stored "none"
_UNIT = const(100)  # mA per stored unit
# Sums stay below 2**30 (the ESP32's small ints): at most _SAMPLES_MAX samples of at most
# _VALUE_MAX mA, 1,000 x 1,000,000 = 10**9. A bucket takes 240 samples at the shell's 1 s.
_VALUE_MAX = const(1_000_000)  # 1,000 A: readings beyond are clipped
_SAMPLES_MAX = const(1000)  # samples beyond are left out of the bucket's average
_SEED = const(0x5A5A)  # a zeroed slot (never written) fails the check
# Values per text piece in chunks(): some 130 bytes a piece, and a list of 16. Pieces of 30
# (240 bytes, a list of 32) were the largest a page's request asked of a leader's heap, one
# an hour was not found in 96wK (make bench-mem).
_PER_CHUNK = const(16)
_ZEROS = bytes(32)  # the padding for a lost record, written a piece at a time


def count(site):
    """The number of series for a site."""
    return 9 * len(site.group_ids) + 6 * len(site.charger_ids)


def index(site, node_id, phase):
    """(first series index, names) of a group's or charger's series on phase 0..2 (the site's
    phase for a group, the charger's own for a charger): series first + j is names[j].
    None for an unknown id or phase. A group is found before a charger of the same id."""
    if not 0 <= phase < 3:
        return None
    if node_id in site.group_ids:
        return site.group_ids.index(node_id) * 9 + phase * 3, _GROUP
    if node_id in site.charger_ids:
        return 9 * len(site.group_ids) + site.charger_ids.index(node_id) * 6 + phase * 2, _CHARGER
    return None


def tag(site):
    """A 16-bit digest of the site's group and charger ids, in order: a site edit that keeps
    them (a limit, a mode) keeps the history; one that adds, drops, renames or reorders any
    starts a new one, whose series would otherwise be read under the wrong names."""
    h = 0
    for ids in (site.group_ids, site.charger_ids):
        for name in ids:
            for b in name.encode():
                h = (h * 31 + b) & 0xFFFF
            h = (h * 31 + 1) & 0xFFFF
    return h


_scratch = [None, None]  # type: list  # figures()'s per group and phase sums, made once per site size


def figures(app, out):
    """Fills out (array('i') of count(app.site)) with every series' value now, as the live view
    (run/live.py) has them, in mA; NONE where there is none:
      meter      the group's meter reading on the site phase, NONE without a meter or while it
                 is silent (meter_ok);
      allocated  the chargers' permitted currents added on every group and phase they are
                 counted on (live.py's "allocated": alloc.spread(core.permitted));
      usage      their measured draws added on every group and site phase wired (alloc.measured);
      offered    the current sent (core.sent) on each phase it is told to use (core.phases), 0 on
                 the others;
      drawn      its measured draw on that phase, NONE when it has no meter there;
    and offered and drawn NONE while a charger is not heard since the leader started.
    No heap once the scratch for the site's size is made."""
    core, site = app.core, app.site
    a = core.alloc
    nk = a.nk
    al, us = _scratch
    if al is None or len(al) != nk:
        al = _scratch[0] = array("i", bytes(4 * nk))
        us = _scratch[1] = array("i", bytes(4 * nk))
    for k in range(nk):
        al[k] = 0
        us[k] = 0
    a.spread(core.permitted, al)
    a.measured(us)
    for g in range(a.ng):
        m = site.gmeter[g]
        ok = m >= 0 and a.meter_ok[m]
        for p in range(3):
            i = g * 9 + p * 3
            out[i] = a.meter[m * 3 + p] if ok else NONE
            out[i + 1] = al[g * 3 + p]
            out[i + 2] = us[g * 3 + p]
    base = a.ng * 9
    for c in range(a.nc):
        heard = core.status[c]  # 0, UNKNOWN: not heard since the leader started
        n, sent = core.phases[c], core.sent[c]
        for k in range(3):
            i = base + c * 6 + k * 2
            if not heard:
                out[i] = NONE
                out[i + 1] = NONE
            else:
                out[i] = sent if k < n else 0
                d = a.meas[c * 3 + k]
                out[i + 1] = d if d >= 0 else NONE


class History:
    """The ring on flash and the bucket under way. The shell calls sample() about once a second
    with the figures; the page reads series() or chunks(). Flash errors are counted (errors,
    error), never raised; `off` is the reason when there is no history file at all. slots
    records in segment files of per_file each (slots a multiple of it; tests use small ones)."""

    def __init__(self, path, n, tag=0, slots=_SLOTS, bucket_ms=BUCKET_MS, per_file=_PER_FILE):
        if not 0 < per_file < 256 or slots % per_file or slots // per_file > 100:
            raise ValueError("history: slots must be 1 to 100 segments of 1 to 255 records")
        self.path, self.n, self.slots, self.bucket_ms = path, n, slots, bucket_ms
        self.per = per_file
        self.size = size = _VALUES + 2 * n + _CHECK  # bytes per record
        self.errors = 0
        self.error = None
        self.off = None
        self.new = None  # why the history was begun anew at start, or None when it was continued
        self.seq = -1  # the newest record's number (-1: none)
        self._sum = array("i", bytes(4 * n))
        self._cnt = array("H", bytes(2 * n))  # at most _SAMPLES_MAX: half the RAM of "i"
        self._rec = bytearray(size)  # the record being written or scanned
        self._body = memoryview(self._rec)[:size - _CHECK]
        nb = (slots + 7) >> 3
        self._ok = bytearray(nb)  # per slot: holds the record its seq says (check passed)
        self._gap = bytearray(nb)  # per slot: its _GAP flag
        self._t0 = None  # ticks when the bucket under way began (at the first sample)
        self._last = None  # ticks of the last sample
        self._closed = None  # ticks when the newest record's bucket ended, if in this run
        self._flags = _GAP  # the first record after a start follows a gap of unknown length
        self._tag = tag
        try:
            self._open()
        except OSError as e:
            self._fail(e)
            self.off = "history off: cannot make %s (%s)" % (self._name(0), e)

    # ---- the files ----------------------------------------------------------------------

    def _name(self, k):
        return "%s.%02d" % (self.path, k)

    def _header(self):
        # Made when needed (at start, at a truncate), not kept: 64 bytes less held.
        head = bytearray(_HEAD)
        head[0:4] = _MAGIC
        head[4] = _VERSION
        head[5] = self.per
        for o, v in ((6, self.n), (8, self.slots), (10, self.size), (12, self.bucket_ms // 1000),
                     (14, self._tag)):
            head[o] = v & 0xFF
            head[o + 1] = (v >> 8) & 0xFF
        return head

    def _open(self):
        found = False
        head = self._header()
        for k in range(self.slots // self.per):
            try:
                f = open(self._name(k), "rb")
            except OSError:
                continue  # not written yet (the ring's first 48 h), or lost
            try:
                got = f.read(_HEAD)
                if len(got) < _HEAD:
                    continue  # a power cut as it was begun: a lost segment, not another site
                found = True
                if got != head:
                    self.new = "another site or format: a new history"
                    break
                self._scan(f, k, f.seek(0, 2))
            finally:
                f.close()
        else:
            if found:
                self._drop()
                return
            self.new = "no history file"
        # Begin anew: no segment of another history stays to be read under this one's header.
        self.seq = -1
        for i in range(len(self._ok)):
            self._ok[i] = 0
        for k in range(self.slots // self.per):
            try:
                os.remove(self._name(k))
            except OSError:
                pass
        with open(self._name(0), "wb") as f:
            _put(f, head)

    def _scan(self, f, k, end):
        # Segment k's valid records, reading one at a time (never the whole file).
        rec, size, ok, gap = self._rec, self.size, self._ok, self._gap
        for j in range(self.per):
            at = _HEAD + j * size
            if at + size > end:
                break  # the segment has not grown this far
            f.seek(at)
            if f.readinto(rec) != size:
                break
            slot = k * self.per + j
            s = self._valid(slot)
            if s >= 0:
                _set(ok, slot, 1)
                _set(gap, slot, rec[4] & _GAP)
                if s > self.seq:
                    self.seq = s

    def _drop(self):
        # A valid record older than the window (one a truncate that failed left behind, or one
        # of an older round of the ring) is not taken: the same records as before the restart.
        first, per, ok = self._from(self.seq), self.per, self._ok
        four = memoryview(self._rec)[:4]
        for k in range(self.slots // per):
            f = None
            try:
                for slot in range(k * per, k * per + per):
                    if _get(ok, slot):
                        if f is None:
                            f = open(self._name(k), "rb")
                        f.seek(_HEAD + (slot - k * per) * self.size)
                        if f.readinto(four) != 4 or _seq(self._rec) < first:
                            _set(ok, slot, 0)
            except OSError as e:
                self._fail(e)
            finally:
                if f is not None:
                    f.close()

    def _valid(self, slot):
        # The seq of the record in self._rec read from slot, or -1 when it is not whole.
        r, size = self._rec, self.size
        if r[3] >= 0x40:
            return -1
        s = _seq(r)
        if s % self.slots != slot:
            return -1
        if (sum(self._body) + _SEED) & 0xFFFF != r[size - 2] | r[size - 1] << 8:
            return -1
        return s

    def _fail(self, e):
        self.errors = _count(self.errors)
        self.error = str(e)

    def _write(self):
        # Closes the bucket under way into record seq + 1 and starts the next one empty.
        r, n = self._rec, self.n
        s = self.seq + 1
        slot = s % self.slots
        r[0] = s & 0xFF
        r[1] = (s >> 8) & 0xFF
        r[2] = (s >> 16) & 0xFF
        r[3] = s >> 24
        r[4] = self._flags
        sums, cnt = self._sum, self._cnt
        for i in range(n):
            v = _average(sums[i], cnt[i])
            r[_VALUES + 2 * i] = v & 0xFF
            r[_VALUES + 2 * i + 1] = (v >> 8) & 0xFF
            sums[i] = 0
            cnt[i] = 0
        c = (sum(self._body) + _SEED) & 0xFFFF
        r[self.size - 2] = c & 0xFF
        r[self.size - 1] = c >> 8
        self.seq = s  # numbered even when the write fails: the page shows that bucket as none
        _set(self._ok, slot, 0)
        try:
            self._store(slot)
            _set(self._ok, slot, 1)
            _set(self._gap, slot, self._flags & _GAP)
        except OSError as e:
            self._fail(e)
        self._flags = 0

    def _store(self, slot):
        # self._rec into slot: appended to its segment, or the segment truncated for its first
        # record. Heap: the segment's name and a file object (two in the rare cases).
        per, size = self.per, self.size
        k = slot // per
        j = slot - k * per
        at = _HEAD + j * size
        name = self._name(k)
        if j:
            with open(name, "ab") as f:
                end = f.seek(0, 2)
                if _HEAD <= end <= at:
                    # Short: the segment's records from end on were lost (failed writes).
                    self._lose(k * per + (end - _HEAD) // size, slot)
                    _zeros(f, at - end)
                    _put(f, self._rec)
                    return
            if end > at:
                # Rare: bytes are already where the record goes (a torn write's tail, or a
                # failed truncate's old records): written over in place.
                with open(name, "r+b") as f:
                    f.seek(at)
                    _put(f, self._rec)
                return
        # The segment's first record, or its header lost (the file gone): the file afresh.
        self._lose(k * per, slot)
        with open(name, "wb") as f:
            _put(f, self._header())
            _zeros(f, at - _HEAD)
            _put(f, self._rec)

    def _lose(self, a, b):
        # Slots a..b-1 no longer hold their records (zeros go there).
        for slot in range(a, b):
            _set(self._ok, slot, 0)

    # ---- sampling -------------------------------------------------------------------------

    def sample(self, now_ms, values):
        """Adds values (array('i') of n, in mA, NONE for none: figures()) to the bucket under
        way; first, when that has run its bucket_ms, writes it as a record and starts the
        next. No heap, except the write's file name and object once a bucket."""
        if self.off is not None:
            return
        t0 = self._t0
        if t0 is None:
            self._t0 = now_ms
        else:
            d = ticks_diff(now_ms, t0)
            if d >= self.bucket_ms:
                self._write()
                if d >= 2 * self.bucket_ms:
                    # No sample for more than a bucket (a stalled shell): a gap, not records
                    # of nothing; the next bucket starts now.
                    self._t0 = now_ms
                    self._flags = _GAP
                else:
                    self._t0 = ticks_add(t0, self.bucket_ms)  # no drift from late samples
                self._closed = self._t0
        self._last = now_ms
        sums, cnt = self._sum, self._cnt
        for i in range(self.n):
            v = values[i]
            if v != NONE and cnt[i] < _SAMPLES_MAX:
                if v > _VALUE_MAX:
                    v = _VALUE_MAX
                elif v < -_VALUE_MAX:
                    v = -_VALUE_MAX
                sums[i] += v
                cnt[i] += 1

    # ---- reading --------------------------------------------------------------------------

    def _from(self, end):
        # The oldest record of the window ending at record end: the ring less the rest of the
        # segment end's round truncated (end + 1 - slots at a segment's last record, at least 0).
        s = end - end % self.per - self.slots + self.per
        return s if s > 0 else 0

    def _first(self, end):
        # The oldest valid record of the window ending at seq end (end + 1 when none).
        s = self._from(end)
        while s <= end and not _get(self._ok, s % self.slots):
            s += 1
        return s

    def _read(self, f, buf, s, i):
        # Series i of record s (f: its segment) in mA, or None; read errors count and read as none.
        try:
            f.seek(_HEAD + (s % self.slots % self.per) * self.size + _VALUES + 2 * i)
            if f.readinto(buf) != 2:
                return None
        except OSError as e:
            self._fail(e)
            return None
        v = buf[0] | buf[1] << 8
        if v == 0x8000:
            return None
        return (v - 0x10000 if v & 0x8000 else v) * _UNIT

    def _here(self, s):
        # Record s is still in the window and whole.
        return s >= self._from(self.seq) and _get(self._ok, s % self.slots)

    def _piece(self, part, buf, s0, s1, i):
        # Series i of records s0..s1-1 as JSON values into part, each segment's file open only
        # while its records are read (a segment that cannot be opened reads as none).
        f = None
        k = -1
        try:
            for s in range(s0, s1):
                v = None
                if self._here(s):
                    ks = s % self.slots // self.per
                    if ks != k:
                        if f is not None:
                            f.close()
                            f = None
                        k = ks
                        try:
                            f = open(self._name(k), "rb")
                        except OSError as e:
                            self._fail(e)
                    if f is not None:
                        v = self._read(f, buf, s, i)
                part.append("null" if v is None else "%d" % v)
        finally:
            if f is not None:
                f.close()

    def series(self, i):
        """Series i, oldest first: (seq, restart flag, mA or None) per record of the window
        (the last 721 to 750), read a field at a time. One segment's file stays open at a time,
        the last until it ends or close()."""
        return Series(self, i)

    def chunks(self, i_first, names, now_ms=None):
        """The page's answer for series i_first.. (one per name) as JSON text pieces:
        {"period_s": 240, "newest_s_ago": N, "restarts": [k, ...], "series": {name: [mA or
        null, ...], ...}}, oldest first, one value per bucket from the oldest kept record to the
        newest (a record lost to a failed write is null). restarts: the positions after a gap
        of unknown length. newest_s_ago: seconds from the newest record's end to now_ms (or the
        last sample), null when it was written before this start (no wall clock). No file stays
        open between pieces: a client that goes away leaves nothing behind."""
        end = self.seq
        first = self._first(end)
        ago = "null"
        if self._closed is not None and end >= 0:
            ago = "%d" % (ticks_diff(self._last if now_ms is None else now_ms, self._closed) // 1000)
        yield '{"period_s": %d, "newest_s_ago": %s, "restarts": [' % (self.bucket_ms // 1000, ago)
        sep = ""
        for s in range(first, end + 1):
            slot = s % self.slots
            if _get(self._ok, slot) and _get(self._gap, slot):
                yield "%s%d" % (sep, s - first)
                sep = ", "
        yield '], "series": {'
        buf = bytearray(2)
        part = []  # type: list[str]
        for j, name in enumerate(names):
            yield '%s"%s": [' % (", " if j else "", name)
            s = first
            while s <= end:
                stop = min(s + _PER_CHUNK, end + 1)
                self._piece(part, buf, s, stop, i_first + j)
                yield (", " if s > first else "") + ", ".join(part)
                part.clear()
                s = stop
            yield "]"
        yield "}}"


class Series:
    """History.series(i): an iterator over (seq, restart flag, mA or None), oldest first, that
    skips records not whole (torn, or lost to a failed write), gone meanwhile (their segment
    truncated) or in a segment that cannot be opened."""

    def __init__(self, h, i):
        self.h, self.i = h, i
        self.end = h.seq
        self.s = h._first(self.end)
        self.f = None
        self.k = -1  # the segment self.f is open on
        self.buf = bytearray(2)

    def __iter__(self):
        return self

    def __next__(self):
        h = self.h
        while self.s <= self.end:
            s = self.s
            self.s = s + 1
            if not h._here(s):
                continue
            k = s % h.slots // h.per
            if k != self.k:
                self.close()
                self.k = k
                try:
                    self.f = open(h._name(k), "rb")
                except OSError as e:
                    h._fail(e)
            if self.f is None:
                continue
            return s, _get(h._gap, s % h.slots), h._read(self.f, self.buf, s, self.i)
        self.close()
        raise StopIteration

    def close(self):
        if self.f is not None:
            self.f.close()
            self.f = None


def _average(s, c):
    # The bucket's mean in 100 mA units, rounded half away from zero; _EMPTY without a sample.
    if not c:
        return _EMPTY
    h, d = c * (_UNIT // 2), c * _UNIT
    return (s + h) // d if s >= 0 else -((h - s) // d)


def _put(f, b):
    if f.write(b) != len(b):
        raise OSError(28)  # ENOSPC: the rest did not fit


def _zeros(f, n):
    # n zero bytes, a piece at a time (no buffer of n bytes).
    z = _ZEROS
    while n >= len(z):
        _put(f, z)
        n -= len(z)
    if n:
        _put(f, z[:n])


def _seq(r):
    return r[0] | r[1] << 8 | r[2] << 16 | r[3] << 24


def _get(bits, i):
    return (bits[i >> 3] >> (i & 7)) & 1


def _set(bits, i, v):
    if v:
        bits[i >> 3] |= 1 << (i & 7)
    else:
        bits[i >> 3] &= ~(1 << (i & 7)) & 0xFF
