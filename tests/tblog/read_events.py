#!/usr/bin/env python3
"""Reads ASG's TensorBoard event files back with the `tensorboard` package
(PyPI, no TensorFlow: its stub record reader checks both CRCs of every
record) and compares them with what tests/test_tblog.c logged.

    read_events.py EVENT_FILE EXPECTED_FILE

EXPECTED_FILE lines (written by the test, values it computed itself):
    scalar TAG STEP BITS      BITS: the float32's bits in hex
    histo TAG STEP MIN MAX NUM SUM SUMSQ K LIMIT*K COUNT*K   (%.17g doubles)
Three readers must agree with it: the raw event loader (every record, in
order, the first one file_version "brain.Event:2"), EventAccumulator
(TensorBoard's legacy ingestion) and plugin_event_accumulator (what the
TensorBoard server shows: scalars and histograms as tensors). Exits 0 when
everything matches, 1 with a message for each mismatch."""
import os
import struct
import sys

from tensorboard.backend.event_processing import event_accumulator as ea
from tensorboard.backend.event_processing import event_file_loader
from tensorboard.backend.event_processing import plugin_event_accumulator as pea
from tensorboard.compat.proto import event_pb2
from tensorboard.util import tensor_util

errors = []


def fail(msg):
    errors.append(msg)
    print("FAIL " + msg)


def f32(bits):
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def f32_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0]


def load_expected(path):
    scalars, histos = [], []
    for line in open(path):
        t = line.split()
        if not t:
            continue
        if t[0] == "scalar":
            scalars.append((t[1], int(t[2]), int(t[3], 16)))
        elif t[0] == "histo":
            k = int(t[8])
            nums = [float(x) for x in t[9:]]
            if len(nums) != 2 * k:
                sys.exit("bad expected line: " + line)
            histos.append((t[1], int(t[2]), [float(x) for x in t[3:8]], nums[:k], nums[k:]))
    return scalars, histos


def check_raw(path, scalars, histos):
    # the raw loader: EventFileLoader would already migrate values to tensors
    events = [event_pb2.Event.FromString(r)
              for r in event_file_loader.RawEventFileLoader(path).Load()]
    if len(events) != 1 + len(scalars) + len(histos):
        fail("%d events read, %d written (a CRC or framing error stops the reader)"
             % (len(events), 1 + len(scalars) + len(histos)))
        return
    if events[0].file_version != "brain.Event:2":
        fail("first event: file_version %r" % events[0].file_version)
    si = hi = 0
    for ev in events[1:]:
        if len(ev.summary.value) != 1:
            fail("step %d: %d values in one event" % (ev.step, len(ev.summary.value)))
            continue
        v = ev.summary.value[0]
        if v.WhichOneof("value") == "simple_value":
            tag, step, bits = scalars[si]
            si += 1
            if (v.tag, ev.step) != (tag, step) or f32_bits(v.simple_value) != bits:
                fail("raw scalar %s@%d = %r (bits %08x), want %s@%d bits %08x"
                     % (v.tag, ev.step, v.simple_value, f32_bits(v.simple_value), tag, step, bits))
        elif v.WhichOneof("value") == "histo":
            tag, step, stats, limits, counts = histos[hi]
            hi += 1
            h = v.histo
            got = [h.min, h.max, h.num, h.sum, h.sum_squares]
            if ((v.tag, ev.step) != (tag, step) or got != stats or list(h.bucket_limit) != limits
                    or list(h.bucket) != counts):
                fail("raw histo %s@%d: %r %r %r, want %s@%d %r %r %r"
                     % (v.tag, ev.step, got, list(h.bucket_limit), list(h.bucket), tag, step,
                        stats, limits, counts))
        else:
            fail("event at step %d holds %r" % (ev.step, v.WhichOneof("value")))
        if not (ev.wall_time > 1.5e9):
            fail("wall_time %r" % ev.wall_time)


def check_accumulators(logdir, scalars, histos):
    acc = ea.EventAccumulator(logdir, size_guidance={ea.SCALARS: 0, ea.HISTOGRAMS: 0})
    acc.Reload()
    for tag in sorted({s[0] for s in scalars}):
        got = [(e.step, f32_bits(e.value)) for e in acc.Scalars(tag)]
        want = [(s[1], s[2]) for s in scalars if s[0] == tag]
        if got != want:
            fail("EventAccumulator scalars %s: %r, want %r" % (tag, got, want))
    for tag in sorted({h[0] for h in histos}):
        got = [(e.step, [e.histogram_value.min, e.histogram_value.max, e.histogram_value.num,
                         e.histogram_value.sum, e.histogram_value.sum_squares],
                list(e.histogram_value.bucket_limit), list(e.histogram_value.bucket))
               for e in acc.Histograms(tag)]
        want = [(h[1], h[2], h[3], h[4]) for h in histos if h[0] == tag]
        if got != want:
            fail("EventAccumulator histograms %s: %r, want %r" % (tag, got, want))

    # the server's path: every value becomes a tensor with its plugin's metadata
    pacc = pea.EventAccumulator(logdir, size_guidance={pea.TENSORS: 0})
    pacc.Reload()
    for tag in sorted({s[0] for s in scalars}):
        if pacc.SummaryMetadata(tag).plugin_data.plugin_name != "scalars":
            fail("%s: plugin %r" % (tag, pacc.SummaryMetadata(tag).plugin_data.plugin_name))
        got = [(e.step, f32_bits(float(tensor_util.make_ndarray(e.tensor_proto))))
               for e in pacc.Tensors(tag)]
        want = [(s[1], s[2]) for s in scalars if s[0] == tag]
        if got != want:
            fail("plugin scalars %s: %r, want %r" % (tag, got, want))
    for tag in sorted({h[0] for h in histos}):
        if pacc.SummaryMetadata(tag).plugin_data.plugin_name != "histograms":
            fail("%s: plugin %r" % (tag, pacc.SummaryMetadata(tag).plugin_data.plugin_name))
        want = [h for h in histos if h[0] == tag]
        got = list(pacc.Tensors(tag))
        if len(got) != len(want):
            fail("plugin histograms %s: %d, want %d" % (tag, len(got), len(want)))
            continue
        for e, (_, step, stats, limits, counts) in zip(got, want):
            # [left, right, count] rows: lefts min then the limits, rights
            # the limits with max last (float32 tensors)
            lefts = [stats[0]] + limits[:-1]
            rights = limits[:-1] + [stats[1]]
            rows = tensor_util.make_ndarray(e.tensor_proto).tolist()
            exp = [[f32(f32_bits(a)), f32(f32_bits(b)), f32(f32_bits(c))]
                   for a, b, c in zip(lefts, rights, counts)]
            if e.step != step or rows != exp:
                fail("plugin histogram %s@%d: %r, want @%d %r" % (tag, e.step, rows, step, exp))


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, expected = sys.argv[1], sys.argv[2]
    scalars, histos = load_expected(expected)
    check_raw(path, scalars, histos)
    try:
        check_accumulators(os.path.dirname(path), scalars, histos)
    except KeyError as e:  # a tag the readers never saw
        fail("accumulators: %s" % e)
    print("read_events.py: %d scalars, %d histograms checked, %d errors"
          % (len(scalars), len(histos), len(errors)))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
