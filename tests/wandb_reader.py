"""Read the history rows of an offline W&B run straight from its ``run-*.wandb`` file.

The file is a LevelDB-style log (7-byte header, 32 KiB blocks, records with a 7-byte
header: crc32, length, type) of ``wandb_internal_pb2.Record`` protobufs.
"""
import glob
import json
import os
import struct
import time

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path):
    from wandb.proto import wandb_internal_pb2 as pb

    data = open(path, "rb").read()
    assert data[:4] == b":W&B", f"{path} is not a W&B transaction log"
    pos, buf = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        pos += 7
        if kind == 0 and length == 0:
            break
        buf += data[pos : pos + length]
        pos += length
        if kind in (FULL, LAST):
            rec = pb.Record()
            rec.ParseFromString(buf)
            yield rec
            buf = b""


def finished_records(path, timeout: float = 60.0):
    """The records of a run file once its ``exit`` record is on disk: wandb-core's writer
    may still be flushing when ``run.finish()`` has returned (seen on a loaded machine: the
    history read back empty), so wait for the run's last record rather than read early."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            recs = list(records(path))
            done = any(r.WhichOneof("record_type") == "exit" for r in recs)
        except Exception:  # a record still being written
            if time.monotonic() > deadline:
                raise
            recs, done = [], False
        if done or time.monotonic() > deadline:
            return recs
        time.sleep(0.2)


def history(run_dir):
    """All history rows (dicts) and the run's config of the offline runs under ``run_dir``."""
    files = sorted({os.path.realpath(f) for f in glob.glob(os.path.join(run_dir, "**", "run-*.wandb"), recursive=True)})
    assert files, f"no offline W&B run under {run_dir}"
    rows, config = [], {}
    for f in files:
        for rec in finished_records(f):
            kind = rec.WhichOneof("record_type")
            if kind == "history":
                rows.append({(i.key or "/".join(i.nested_key)): json.loads(i.value_json) for i in rec.history.item})
            elif kind == "run":
                config.update({i.key: json.loads(i.value_json) for i in rec.run.config.update})
            elif kind == "config":
                config.update({i.key: json.loads(i.value_json) for i in rec.config.update})
    return rows, config
