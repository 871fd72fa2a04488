"""Controls reaching a Python run (docs/controls.md, "Controls for a Python run"): a fake
`listen` (a UDP socket that receives the client's datagrams and replies control lines to their
source address, as `listen` does) drives lr, lr_scale under schedulers, momentum, pause,
stop and checkpoint, in a plain loop and through the Lightning and Transformers callbacks."""

import json
import socket
import threading
import time

import pytest

import sonograd
from conftest import need
from sonograd import controls as ctl
from sonograd import wire


class FakeListen:
    """Receives what the client sends; sends control lines back to where it came from."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.client = None
        self.datagrams = []
        self.step = 0

    def drain(self):
        while True:
            try:
                data, addr = self.sock.recvfrom(65536)
            except BlockingIOError:
                return
            self.client = addr
            self.datagrams.append(data)

    def wait_client(self, timeout=10):
        deadline = time.monotonic() + timeout
        while self.client is None and time.monotonic() < deadline:
            self.drain()
            time.sleep(0.005)
        assert self.client is not None, "the client sent nothing"

    def send(self, target, value=1.0, **extra):
        """Sends one control, as `listen` forwards it, to the client's address."""
        self.wait_client()
        event = {"v": 1, "step": self.step, "epoch": 0, "time": time.time(), "kind": "control",
                 "control": target, "source": "osc:/sonograd/control/" + target,
                 "target": target, "value": value, **extra}
        self.sock.sendto(json.dumps(event).encode(), self.client)

    def lines(self, kind):
        """The JSON events of ``kind`` received."""
        self.drain()
        out = []
        for d in self.datagrams:
            if d[:1] == b"\x00":
                continue
            for line in d.decode().splitlines():
                e = json.loads(line)
                if e["kind"] == kind:
                    out.append(e)
        return out

    def step_lrs(self):
        """The lr each compact step datagram carried, by step."""
        self.drain()
        steps = [wire.unpack_step(d) for d in self.datagrams if d[:1] == b"\x00"]
        return {s["step"]: s["lr"] for s in steps}

    def close(self):
        self.sock.close()


@pytest.fixture
def fake():
    f = FakeListen()
    yield f
    f.close()


def tiny(torch, seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))


def one_step(torch, model, sonifier, optimizer, scheduler=None, **kw):
    x = torch.randn(5, 4)
    loss = model(x).pow(2).mean()
    loss.backward()
    try:
        sonifier.step(loss=loss, optimizer=optimizer, **kw)
    finally:
        optimizer.step()
        optimizer.zero_grad()
        if scheduler is not None:
            scheduler.step()


def lr_of(optimizer):
    return optimizer.param_groups[0]["lr"]


def test_lr_and_momentum_apply_at_the_next_step(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0)
    for _ in range(3):
        one_step(torch, model, s, opt)
    assert lr_of(opt) == 0.1 and s.controls_applied == 0
    fake.send("lr", 0.02)
    fake.send("momentum", 0.5)
    one_step(torch, model, s, opt)  # step 3
    assert lr_of(opt) == 0.02
    assert opt.param_groups[0]["momentum"] == 0.5
    assert s.controls_applied == 2
    one_step(torch, model, s, opt)
    s.close()
    # The step the control arrived at already sends the new lr.
    lrs = fake.step_lrs()
    assert [lrs[i] for i in range(5)] == pytest.approx([0.1, 0.1, 0.1, 0.02, 0.02])
    assert fake.lines("run_end")[0]["reason"] == "completed"
    assert s.errors == 0


def test_momentum_is_betas0_for_adam_and_every_group_changes(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.Adam([{"params": model[0].parameters()},
                            {"params": model[2].parameters(), "lr": 0.01}], lr=0.001)
    s = sonograd.monitor(model, port=fake.port, optimizer=opt, background=False, control_interval=0)
    one_step(torch, model, s, opt)
    fake.send("momentum", 0.8)
    fake.send("lr", 0.005)
    one_step(torch, model, s, opt)
    assert [g["betas"] for g in opt.param_groups] == [(0.8, 0.999), (0.8, 0.999)]
    assert [g["lr"] for g in opt.param_groups] == [0.005, 0.005]
    s.close()


def test_lr_scale_keeps_a_chained_scheduler_going(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0)
    for step in range(8):
        if step == 3:
            fake.send("lr_scale", 0.5)
        if step == 5:
            fake.send("lr_scale", 2.0)  # relative to 0.5: the lr is 4x the schedule's
        one_step(torch, model, s, opt, sched)
    s.close()
    schedule = [0.1 * 0.5 ** (t // 2) for t in range(8)]
    scale = [1, 1, 1, 0.5, 0.5, 2, 2, 2]
    lrs = fake.step_lrs()
    assert [lrs[t] for t in range(8)] == pytest.approx(
        [a * b for a, b in zip(schedule, scale)])
    assert s.lr_scale == 2.0 and s.controls_applied == 2


def test_lr_scale_and_lr_keep_a_closed_form_scheduler_going(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    lam = lambda t: 1.0 / (1 + t)  # noqa: E731
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lam)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0, scheduler=sched)
    for step in range(8):
        if step == 2:
            fake.send("lr_scale", 0.5)
        if step == 5:
            fake.send("lr", 0.02)  # from here: 0.02, then on along the schedule
        one_step(torch, model, s, opt, sched)
    s.close()
    lrs = fake.step_lrs()
    want = [0.1 * lam(t) * (0.5 if t >= 2 else 1) for t in range(5)]
    want += [0.02 * lam(t) / lam(5) for t in range(5, 8)]
    assert [lrs[t] for t in range(8)] == pytest.approx(want)


def loop_in_thread(torch, s, opt, model, until):
    """Steps in a thread until ``until()``; returns the thread and what it saw."""
    seen = {"stop": None, "steps": 0, "error": None}

    def run():
        try:
            while not until():
                one_step(torch, model, s, opt)
                seen["steps"] += 1
                time.sleep(0.002)
        except sonograd.StopTraining as e:
            seen["stop"] = e
        except BaseException as e:  # noqa: BLE001
            seen["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return t, seen


def wait_for(cond, timeout=10):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_pause_holds_the_loop_until_resume_and_stop_ends_it(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0)
    done = threading.Event()
    t, seen = loop_in_thread(torch, s, opt, model, done.is_set)
    wait_for(lambda: seen["steps"] >= 3)
    fake.send("pause", 1.0)
    wait_for(lambda: s.paused)
    held = s.steps
    time.sleep(0.4)
    assert s.steps == held and s.paused, "the loop went on stepping while paused"
    fake.send("lr", 0.03)  # controls still apply while paused
    wait_for(lambda: lr_of(opt) == 0.03)
    fake.send("resume")
    wait_for(lambda: s.steps >= held + 3)
    assert not s.paused
    fake.send("pause", 1.0)
    wait_for(lambda: s.paused)
    held = s.steps
    time.sleep(0.2)
    assert s.steps == held
    fake.send("pause", 0.0)  # `pause 0` resumes too
    wait_for(lambda: s.steps >= held + 3)
    fake.send("pause", 1.0)
    wait_for(lambda: s.paused)
    fake.send("stop")  # stop ends a pause
    t.join(10)
    assert not t.is_alive() and seen["error"] is None
    assert isinstance(seen["stop"], sonograd.StopTraining)
    assert isinstance(seen["stop"], Exception)
    assert s.stopped and not s.paused and s.controls.paused_seconds > 0.5
    s.close()
    (end,) = fake.lines("run_end")
    assert end["reason"] == "stopped"
    assert s.errors == 0


def test_stop_is_raised_once_after_the_step_is_measured(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0)
    one_step(torch, model, s, opt)
    fake.send("stop")
    with pytest.raises(sonograd.StopTraining) as stop:
        one_step(torch, model, s, opt)
    assert stop.value.step == 1
    one_step(torch, model, s, opt)  # a loop that goes on anyway is not stopped again
    s.close()
    assert set(fake.step_lrs()) == {0, 1, 2}


def test_checkpoint_calls_the_hook_and_its_failures_are_counted(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    calls = []

    def hook(step):
        calls.append(step)
        if len(calls) == 2:
            raise RuntimeError("disk full")

    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0, on_checkpoint=hook)
    for step in range(6):
        if step in (2, 4):
            fake.send("checkpoint")
        one_step(torch, model, s, opt)
    s.close()
    assert calls == [2, 4]
    assert s.controls.hook_errors == 1 and s.controls.checkpoints == 2
    assert s.controls_applied == 2 and s.errors == 0


def test_bad_and_foreign_datagrams_are_counted_never_raised(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0, run="mine")
    one_step(torch, model, s, opt)
    fake.wait_client()
    for junk in (b"", b"\xff\xfe", b"not json", b"[1,2]", b'{"kind":"loss","value":1}',
                 b'{"kind":"control","value":1}'):
        fake.sock.sendto(junk, fake.client)
    fake.send("lr", "NaN")  # not finite
    fake.send("lr", -1.0)
    fake.send("lr_scale", 0.0)
    fake.send("pause", "NaN")
    fake.send("volume", 0.5)  # not a Python target
    fake.send("lr", 0.5, run="another")  # for another run
    stranger = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    stranger.sendto(json.dumps({"kind": "control", "target": "stop", "value": 1}).encode(),
                    fake.client)
    stranger.close()
    one_step(torch, model, s, opt)
    one_step(torch, model, s, opt)
    assert lr_of(opt) == 0.1 and not s.paused and not s.stopped
    assert s.controls.bad == 7 and s.controls.ignored == 6 and s.controls_applied == 0
    s.close()
    assert s.errors == 0


def test_without_an_optimizer_lr_controls_are_ignored_and_controls_can_be_off(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0)
    s.step()
    fake.send("lr", 0.5)
    s.step()
    assert s.controls.ignored == 1 and s.errors == 0
    s.close()
    off = sonograd.monitor(model, port=fake.port, background=False, control_interval=0, controls=False)
    one_step(torch, model, off, opt)
    fake.client = None
    fake.wait_client()
    fake.send("stop")
    one_step(torch, model, off, opt)
    assert off.controls is None and off.controls_applied == 0 and not off.stopped
    off.close()


def test_by_default_a_control_applies_within_a_few_milliseconds(fake):
    torch = need("torch")
    model = tiny(torch)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    s = sonograd.monitor(model, port=fake.port, background=False)
    one_step(torch, model, s, opt)
    fake.send("lr", 0.01)
    sent = time.monotonic()
    steps = 0
    while lr_of(opt) != 0.01:
        one_step(torch, model, s, opt)
        steps += 1
        assert time.monotonic() - sent < 1.0, "the control never applied"
    waited = time.monotonic() - sent
    s.close()
    # One look at the socket per DEFAULT_INTERVAL (2 ms) at most, plus a step.
    assert waited < ctl.DEFAULT_INTERVAL + 0.05, f"{waited * 1e3:.1f} ms, {steps} steps"
    assert s.controls_applied == 1


def test_the_poll_is_cheap_when_nothing_waits(fake):
    torch = need("torch")
    model = tiny(torch)
    s = sonograd.monitor(model, port=fake.port, background=False, control_interval=0)
    s.step()  # binds the socket
    n = 20000
    t0 = time.perf_counter()
    for _ in range(n):
        s.poll_controls()
    per = (time.perf_counter() - t0) / n
    s.close()
    assert per < 50e-6, f"{per * 1e6:.1f} us per poll"


def test_lightning_stops_its_trainer(fake):
    torch = need("torch")
    need("lightning")
    import lightning.pytorch as pl

    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = tiny(torch)

        def training_step(self, batch, _i):
            (x,) = batch
            return self.net(x).pow(2).mean()

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    lrs = {}

    class Driver(pl.Callback):
        def on_train_batch_start(self, trainer, module, batch, i):
            fake.step = trainer.global_step
            if trainer.global_step == 2:
                fake.send("lr_scale", 0.5)
            if trainer.global_step == 4:
                fake.send("checkpoint")
            if trainer.global_step == 6:
                fake.send("stop")

        def on_before_optimizer_step(self, trainer, module, optimizer):
            lrs[trainer.global_step] = optimizer.param_groups[0]["lr"]

    checkpoints = []
    callback = sonograd.LightningCallback(port=fake.port, background=False, control_interval=0,
                                          on_checkpoint=checkpoints.append)
    x = torch.randn(400, 4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x), batch_size=4)
    trainer = pl.Trainer(max_steps=100, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[callback, Driver()])
    trainer.fit(Tiny(), loader)
    assert trainer.global_step == 7, trainer.global_step  # step 6 ran, then it stopped
    assert checkpoints == [4]
    want = {t: 0.1 / (1 + t) * (0.5 if t >= 2 else 1) for t in range(7)}
    assert lrs == pytest.approx(want)
    (end,) = fake.lines("run_end")
    assert end["reason"] == "stopped"
    assert callback.sonifier.errors == 0


def test_transformers_stops_its_trainer(fake, tmp_path):
    torch = need("torch")
    transformers = need("transformers")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(config)
    data = [{"input_ids": ids, "labels": ids} for ids in torch.randint(0, 97, (200, 8))]
    used = {}

    class Driver(transformers.TrainerCallback):
        def on_optimizer_step(self, args, state, control, optimizer=None, **kwargs):
            used[state.global_step] = optimizer.param_groups[0]["lr"]

        def on_step_begin(self, args, state, control, **kwargs):
            fake.step = state.global_step
            if state.global_step == 1:
                fake.send("lr_scale", 0.5)
            if state.global_step == 2:
                fake.send("checkpoint")
            if state.global_step == 3:
                fake.send("stop")

    checkpoints = []
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=50, per_device_train_batch_size=4,
        logging_steps=1, learning_rate=1e-3, lr_scheduler_type="linear", report_to=[],
        use_cpu=True, save_strategy="no", disable_tqdm=True, seed=0)
    callback = sonograd.TransformersCallback(port=fake.port, background=False, control_interval=0,
                                             on_checkpoint=checkpoints.append)
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=[callback, Driver()])
    trainer.train()
    assert trainer.state.global_step == 4, trainer.state.global_step
    assert checkpoints == [2]
    # The lr the optimizer used: the linear schedule, halved from step 1 on; the step
    # datagrams say so too.
    want = {t: 1e-3 * (50 - t) / 50 * (0.5 if t >= 1 else 1) for t in range(4)}
    assert used == pytest.approx(want)
    assert fake.step_lrs() == pytest.approx(want)
    # The Trainer's own log (its scheduler's last lr, taken before the step's controls)
    # follows the scaled schedule from the next step on.
    logged = {h["step"] - 1: h["learning_rate"] for h in trainer.state.log_history
              if "learning_rate" in h}
    assert {t: logged[t] for t in (2, 3)} == pytest.approx({t: want[t] for t in (2, 3)})
    (end,) = fake.lines("run_end")
    assert end["reason"] == "stopped"
    assert callback.sonifier.errors == 0
    assert callback.sonifier.controls_applied == 3


def test_the_parse_of_a_control_line():
    line = ('{"v":1,"step":120,"epoch":0,"time":1767312000.5,"kind":"control",'
            '"control":"lr knob","source":"midi:cc:1:21","target":"lr_scale","value":0.5}')
    target, value, event = ctl.parse(line.encode())
    assert (target, value, event["step"]) == ("lr_scale", 0.5, 120)
    assert ctl.parse(b'{"kind":"control","target":"lr","value":"Infinity"}')[1] is None
    assert ctl.parse(b"{") is None and ctl.parse(b"\xff") is None
    assert issubclass(sonograd.StopTraining, Exception)
    assert "StopTraining" in sonograd.__all__
