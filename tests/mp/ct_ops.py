# Worker ops for the CT metering core: windows of samples made on the pytest side go in,
# the readings (or the heap a window cost) come back.
import gc
from array import array

from ampshare.meter import ct


def _meter(req):
    return ct.Ct(req["phases"], req.get("mode", ct.IMPORT_ONLY), req.get("voltages"),
                 req.get("adc_bits", 16), req.get("deadband_ma", ct.SIGN_DEADBAND_MA))


def _frames(req, m, samples):
    return req.get("n") or (len(samples) - req.get("start", 0)) // (req.get("stride") or m.width)


def ct_read(req):
    # One meter reads each window in turn, so a sign kept from one window shows in the next.
    m = _meter(req)
    reads = []
    for samples in req["windows"]:
        buf = array("H", samples)
        if req.get("view"):
            buf = memoryview(buf)
        err = m.read(buf, _frames(req, m, samples), req.get("stride", 0), req.get("start", 0))
        reads.append({"err": err, "ma": list(m.ma), "mv": list(m.mv), "fault": m.fault})
    return {"reads": reads, "width": m.width}


def _heap(m, buf, n, stride, reps):
    m.read(buf, n, stride)
    gc.collect()
    gc.disable()  # a collection inside the loop could hide an allocation
    before = gc.mem_alloc()
    for _ in range(reps):
        m.read(buf, n, stride)
    used = gc.mem_alloc() - before
    gc.enable()
    return used


def ct_heap(req):
    m = _meter(req)
    samples = req["windows"][0]
    buf = array("H", samples)
    used = _heap(m, buf, _frames(req, m, samples), req.get("stride", 0), req.get("reps", 10))
    return {"heap": used, "err": m.read(buf, _frames(req, m, samples), req.get("stride", 0))}


def ct_math(req):
    fit = []
    for rate, hz, cycles in req.get("samples_for", []):
        try:
            fit.append(ct.samples_for(rate, hz, cycles))
        except ValueError:
            fit.append(None)
    return {"isqrt": [ct.isqrt(x) for x in req.get("isqrt", [])], "samples_for": fit,
            "per_count": [ct.per_count(*args) for args in req.get("per_count", [])],
            "max_samples": ct.MAX_SAMPLES, "invalid_ma": ct.INVALID_MA,
            "deadband_ma": ct.SIGN_DEADBAND_MA,
            "codes": {"ok": ct.OK, "clipped": ct.CLIPPED, "no_voltage": ct.NO_VOLTAGE}}


OPS = {"ct_read": ct_read, "ct_heap": ct_heap, "ct_math": ct_math}
