# Worker ops for the Modbus frames and the meter decoders (tests/test_modbus.py).
from binascii import hexlify, unhexlify

from ampshare.meter import maps as meters
from ampshare.meter import modbus as M


def op_mb_crc(req):
    return {"crc": M.crc16(unhexlify(req["hex"]))}


def op_mb_request(req):
    buf = bytearray(8)
    M.read_request(buf, req["unit"], req["fc"], req["start"], req["count"])
    return {"hex": hexlify(buf).decode()}


def op_mb_check(req):
    frame = unhexlify(req["hex"])
    try:
        M.check_answer(frame, len(frame), req["unit"], req["fc"], req["count"])
    except M.ModbusError as e:
        return {"error": M.ERRORS[e.kind], "text": str(e)}
    return {"words": [M.word(frame, i) for i in range(req["count"])]}


def op_mb_value(req):
    frame = unhexlify(req["hex"])
    try:
        return {"value": meters.value(frame, 0, req["type"], req["mul"], req["div"])}
    except M.ModbusError as e:
        return {"error": M.ERRORS[e.kind]}


def op_mb_decode(req):
    """A model's fields from answers given as {start: frame hex} for each of its blocks."""
    fc, phases, fields = meters.MODELS[req["model"]]
    r = meters.Reading()
    for start, count in meters.blocks(fields):
        frame = unhexlify(req["answers"]["%d" % start])
        M.check_answer(frame, len(frame), 1, fc, count)
        meters.decode(fields, start, count, frame, r)
    r.signed_currents()
    return {"fc": fc, "blocks": meters.blocks(fields), "values": list(r.values), "present": r.present}


def op_mb_blocks(req):
    return {"blocks": meters.blocks(meters.MODELS[req["model"]][2])}


def op_mb_site_currents(req):
    return {"ma": list(meters.site_currents(req["values"], req["phases"], req["phase"]))}


OPS = {"mb_site_currents": op_mb_site_currents, "mb_blocks": op_mb_blocks, "mb_crc": op_mb_crc, "mb_request": op_mb_request, "mb_check": op_mb_check, "mb_value": op_mb_value,
       "mb_decode": op_mb_decode}
