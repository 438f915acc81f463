#!/usr/bin/env python3
"""A TensorBoard event file as torch's SummaryWriter writes it, for TensorBoardLog.

Run by hand from the repository root (needs tensorboard): python3 Fixtures/golden/make_tensorboard_golden.py
Writes Fixtures/golden/tensorboard/events.golden: the file header event (file_version
"brain.Event:2", the writer named as tensorboard's EventFileWriter names itself) and the scalars
of two kohya training steps and one epoch end, each framed as a TFRecord (length, masked CRC-32C,
data, masked CRC-32C). Wall times are fixed so the bytes do not depend on when this runs. The
scalars are built the way torch.utils.tensorboard.summary.scalar builds them (old-style
simple_value, float32) and the events the way SummaryWriter.add_summary does (int step).

Also Fixtures/golden/tensorboard/hparams.golden: the event file torch's SummaryWriter.add_hparams writes for
kohya's --log_config (accelerate's store_init_configuration passes metric_dict={}), its three summaries from
torch.utils.tensorboard.summary.hparams itself, serialized deterministically (map keys sorted) so the bytes
are fixed.
"""
import os

from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.record_writer import RecordWriter

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tensorboard", "events.golden")

# (wall time, step, [(tag, value)]) -- the same list is in TensorBoardLogTests.
EVENTS = [
    (1764633600.25, 1, [("loss/current", 0.1234567), ("loss/average", 0.1234567), ("lr/textencoder", 5e-05), ("lr/unet", 0.0001)]),
    (1764633601.5, 2, [("loss/current", 0.0), ("loss/average", 0.06172835), ("lr/unet", 0.0001), ("lr/d*lr/unet", 3.25e-06)]),
    (1764633602.75, 1, [("loss/epoch_average", 0.06172835)]),
]

os.makedirs(os.path.dirname(OUT), exist_ok=True)
with open(OUT, "wb") as f:
    writer = RecordWriter(f)
    header = event_pb2.Event(wall_time=1764633600.0, file_version="brain.Event:2",
                             source_metadata=event_pb2.SourceMetadata(writer="tensorboard.summary.writer.event_file_writer"))
    writer.write(header.SerializeToString())
    for wall_time, step, scalars in EVENTS:
        # torch's SummaryWriter.add_scalar: one event per scalar, each with the same step.
        for tag, value in scalars:
            summary = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=float(value))])
            event = event_pb2.Event(wall_time=wall_time, step=int(step), summary=summary)
            writer.write(event.SerializeToString())
print(OUT, os.path.getsize(OUT), "bytes")

# The same list is in TensorBoardLogTests (bools are FLOAT64 to torch: Python's bool is an int; None is left out).
HPARAMS = {"network_dim": 32, "learning_rate": 0.0001, "unet_lr": None, "network_args": "['conv_dim=8', 'conv_alpha=4']",
           "optimizer_type": "AdamW", "cache_latents": True, "flip_aug": False, "noise_offset": 1e-05, "seed": -3,
           "output_name": "my char: v2", "min_snr_gamma": 5.0, "caption_extension": ".txt", "zz_unicode": "café"}
from tensorboard.plugins.hparams import plugin_data_pb2  # noqa: E402
from torch.utils.tensorboard.summary import hparams  # noqa: E402

HOUT = os.path.join(HERE, "tensorboard", "hparams.golden")
with open(HOUT, "wb") as f:
    writer = RecordWriter(f)
    header = event_pb2.Event(wall_time=1764633600.5, file_version="brain.Event:2",
                             source_metadata=event_pb2.SourceMetadata(writer="tensorboard.summary.writer.event_file_writer"))
    writer.write(header.SerializeToString())
    for summary in hparams(HPARAMS, {}):
        # hparams() serializes the plugin content itself, in the map order protobuf's runtime picks: re-serialized
        # deterministically here (keys in order), which TensorBoard reads the same.
        data = summary.value[0].metadata.plugin_data
        data.content = plugin_data_pb2.HParamsPluginData.FromString(data.content).SerializeToString(deterministic=True)
        writer.write(event_pb2.Event(wall_time=1764633600.5, summary=summary).SerializeToString(deterministic=True))
print(HOUT, os.path.getsize(HOUT), "bytes")
