"""Event files written by the real writers, for tests/tensorboard.rs.

    python3 writers.py FORM DIR SEED STEPS

FORM is one of
  tf1       tensorboard's EventFileWriter, TF1 `simple_value` summaries
  tf2       tensorboard's EventFileWriter, TF2 tensor summaries of the scalars plugin
            (float32 and float64), the metadata only on each tag's first value
  torch     torch.utils.tensorboard.SummaryWriter: add_scalar (old and new style, double
            precision), add_scalars (one run per sub-tag), a histogram and a text (ignored)
  lightning a small Lightning run with its TensorBoardLogger, logging the loss and
            lightning.pytorch.utilities.grad_norm every step
  append    a SummaryWriter that keeps appending: one step every 0.25 s, flushed, a second run
            from the middle on; prints "wrote RUN STEP" after each flush

Prints (tf1, tf2, torch) one JSON line per value written, as the reader must find it:
{"run": ..., "tag": ..., "step": ..., "value": ...} with the value as stored (float32 rounded
unless double). For lightning it prints what TensorBoard's own EventAccumulator reads back.
"""

import json
import math
import os
import random
import struct
import sys
import time


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def emit(run, tag, step, value):
    if isinstance(value, float) and not math.isfinite(value):
        value = str(value)
    print(json.dumps({"run": run, "tag": tag, "step": step, "value": value}), flush=True)


def values(seed, steps):
    rnd = random.Random(seed)
    out = []
    for step in range(steps):
        out.append((step, {
            "train/loss": 2.0 * math.exp(-step / 20.0) + rnd.random() * 0.1,
            "lr": 0.1 * (0.5 ** (step // 7)),
            "grad_norm/fc1": 10 ** rnd.uniform(-3, 1),
            "grad_norm/fc2": 10 ** rnd.uniform(-3, 1),
        }))
    return out


def tb_writer(logdir):
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    return EventFileWriter(logdir)


def tf1(logdir, seed, steps):
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    w = tb_writer(logdir)
    for step, vals in values(seed, steps):
        if step == steps // 2:
            vals["train/loss"] = float("nan")
        s = Summary(value=[Summary.Value(tag=t, simple_value=v) for t, v in vals.items()])
        w.add_event(Event(wall_time=1.7e9 + step, step=step, summary=s))
        for t, v in vals.items():
            emit(".", t, step, f32(v))
    w.close()


def tf2(logdir, seed, steps):
    import numpy as np
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.util import tensor_util
    w = tb_writer(logdir)
    seen = set()
    for step, vals in values(seed, steps):
        summary_values = []
        for i, (t, v) in enumerate(vals.items()):
            double = i % 2 == 1
            arr = np.float64(v) if double else np.float32(v)
            tensor = tensor_util.make_tensor_proto(arr)
            kw = {}
            if t not in seen:
                seen.add(t)
                kw["metadata"] = SummaryMetadata(
                    plugin_data=SummaryMetadata.PluginData(plugin_name="scalars"),
                    data_class=1,
                )
            summary_values.append(Summary.Value(tag=t, tensor=tensor, **kw))
            emit(".", t, step, float(arr))
        # A histogram-like tensor of the same writer: several elements, not a scalar.
        hist = tensor_util.make_tensor_proto(np.array([[0.0, 1.0, 3.0]], dtype=np.float64))
        meta = SummaryMetadata(plugin_data=SummaryMetadata.PluginData(plugin_name="histograms"))
        summary_values.append(Summary.Value(tag="weights/fc1", tensor=hist, metadata=meta))
        w.add_event(Event(wall_time=1.7e9 + step, step=step, summary=Summary(value=summary_values)))
    w.close()


def torch_form(logdir, seed, steps):
    import torch
    from torch.utils.tensorboard import SummaryWriter
    w = SummaryWriter(logdir)
    for step, vals in values(seed, steps):
        w.add_scalar("train/loss", vals["train/loss"], step)
        emit(".", "train/loss", step, f32(vals["train/loss"]))
        w.add_scalar("lr", vals["lr"], step, new_style=True)
        emit(".", "lr", step, f32(vals["lr"]))
        w.add_scalar("grad_norm/fc1", vals["grad_norm/fc1"], step, new_style=True,
                     double_precision=True)
        emit(".", "grad_norm/fc1", step, vals["grad_norm/fc1"])
        w.add_scalar("grad_norm/fc2", torch.tensor(vals["grad_norm/fc2"]), step)
        emit(".", "grad_norm/fc2", step, f32(vals["grad_norm/fc2"]))
        acc = min(1.0, step / steps + 0.25)
        w.add_scalars("accuracy", {"train": acc, "val": acc * 0.9}, step)
        emit("accuracy_train", "accuracy", step, f32(acc))
        emit("accuracy_val", "accuracy", step, f32(acc * 0.9))
        if step % 5 == 0:
            w.add_histogram("weights", torch.randn(100, generator=torch.Generator().manual_seed(step)), step)
            w.add_text("note", f"step {step}", step)
    w.close()


def lightning(logdir, seed, steps):
    import warnings
    warnings.filterwarnings("ignore")
    import torch
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning.pytorch.utilities import grad_norm

    pl.seed_everything(seed, verbose=False)

    class Net(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.Tanh(),
                                           torch.nn.Linear(16, 1))

        def training_step(self, batch, _):
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.net(x), y)
            self.log("train_loss", loss, on_step=True, on_epoch=True)
            return loss

        def validation_step(self, batch, _):
            x, y = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

        def on_before_optimizer_step(self, optimizer):
            self.log_dict(grad_norm(self, norm_type=2))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    g = torch.Generator().manual_seed(seed)
    x = torch.randn(steps * 4, 4, generator=g)
    y = x.sum(dim=1, keepdim=True)
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8)
    val = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x[:16], y[:16]), batch_size=8)
    logger = TensorBoardLogger(logdir, name="lightning")
    trainer = pl.Trainer(max_epochs=2, logger=logger, log_every_n_steps=1, accelerator="cpu",
                         enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False)
    trainer.fit(Net(), data, val)
    logger.experiment.flush()
    # What TensorBoard itself reads back.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    for root, _, files in os.walk(logdir):
        if not any("tfevents" in f for f in files):
            continue
        acc = EventAccumulator(root, size_guidance={"scalars": 0})
        acc.Reload()
        run = os.path.relpath(root, logdir)
        for tag in acc.Tags()["scalars"]:
            for e in acc.Scalars(tag):
                emit(run, tag, e.step, e.value)


def append(logdir, seed, steps):
    from torch.utils.tensorboard import SummaryWriter
    a = SummaryWriter(os.path.join(logdir, "first"), flush_secs=3600)
    b = None
    for step in range(steps):
        a.add_scalar("loss", 1.0 / (step + 1), step)
        a.flush()
        print(f"wrote first {step} {time.time():.3f}", flush=True)
        if step == steps // 2:
            b = SummaryWriter(os.path.join(logdir, "second"), flush_secs=3600)
        if b is not None:
            b.add_scalar("grad_norm/fc1", step * 0.5, step)
            b.flush()
            print(f"wrote second {step} {time.time():.3f}", flush=True)
        time.sleep(0.25)
    a.close()
    if b is not None:
        b.close()


if __name__ == "__main__":
    form, logdir, seed, steps = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    {"tf1": tf1, "tf2": tf2, "torch": torch_form, "lightning": lightning, "append": append}[form](
        logdir, seed, steps)
