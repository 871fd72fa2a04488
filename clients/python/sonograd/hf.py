"""The Hugging Face Transformers callback: ``Trainer(..., callbacks=[TransformersCallback()])``.

Every optimizer step sends the per-layer gradient norms as they were before the Trainer
clips them (``max_grad_norm``), once all micro-batches of a gradient-accumulation step are in,
the step's loss (as the Trainer accumulates it: the micro-batch losses, each divided by the
number of micro-batches unless the model already normalised it over the whole accumulated
batch) and the learning rate. The total norm is the ``grad_norm`` the Trainer logs.

How: a post-accumulate-grad hook on each parameter notices the backward pass of the step's
last micro-batch (accelerate's ``GradientState.sync_gradients``) and queues one callback for
the end of that backward pass, which takes a copy-on-write snapshot of every gradient;
clipping later writes to the gradients, not to the snapshot. At ``on_pre_optimizer_step`` the
snapshot is measured like any other step. A forward hook on the model collects the
micro-batch losses.

Controls from ``listen`` apply at ``on_pre_optimizer_step`` to the Trainer's optimizer and
lr scheduler (its schedule goes on from a changed lr); ``stop`` sets
``control.should_training_stop`` (the Trainer ends after the step) and ``run_end`` says
``stopped``; ``checkpoint`` calls ``on_checkpoint(step)``.
"""

from transformers import TrainerCallback

from .controls import StopTraining
from .sonifier import DEFAULT_HOST, DEFAULT_PORT, GradientSonifier


class TransformersCallback(TrainerCallback):
    """Streams a ``transformers.Trainer`` run to ``sonograd listen``."""

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, on_checkpoint=None, **kwargs):
        self._args = dict(host=host, port=port, on_checkpoint=on_checkpoint, **kwargs)
        self._sonifier = None
        self._handles = []
        self._snapshot = None
        self._queued = False
        self._losses = []
        self._scaled = False
        self._gradient_state = None

    @property
    def sonifier(self):
        """The :class:`GradientSonifier` of the current run (``None`` before training)."""
        return self._sonifier

    def on_train_begin(self, args, state, control, model=None, optimizer=None, **kwargs):
        self._args.setdefault("rank", args.process_index if args.world_size > 1 else None)
        self._sonifier = s = GradientSonifier(model, **self._args)
        s._safe("setting up the Transformers hooks", self._hook, model)
        info = {"lr": float(args.learning_rate),
                "batch_size": int(args.per_device_train_batch_size)}
        if optimizer is not None:
            info["optimizer"] = type(optimizer).__name__.lower()
        if state.max_steps and state.max_steps > 0:
            info["steps"] = int(state.max_steps)
        s.start(**info)

    def _hook(self, model):
        import torch

        try:
            from accelerate.state import GradientState

            self._gradient_state = GradientState()
        except Exception:  # noqa: BLE001 - without it every backward pass is the last one
            self._gradient_state = None
        names, params, _, _ = self._sonifier._layers or self._sonifier._layout()
        self._params = params
        engine = torch.autograd.Variable._execution_engine

        def grad_ready(_param):
            if self._queued:
                return
            gs = self._gradient_state
            if gs is not None and not gs.sync_gradients:
                return  # an accumulation micro-batch: not the step's last
            self._queued = True
            engine.queue_callback(self._take_snapshot)

        for p in params:
            self._handles.append(p.register_post_accumulate_grad_hook(grad_ready))
        self._handles.append(model.register_forward_hook(self._forward, with_kwargs=True))

    def _take_snapshot(self):
        import torch

        self._queued = False
        self._snapshot = [None if p.grad is None else torch._lazy_clone(p.grad)
                          for p in self._params]

    def _forward(self, module, _args, kwargs, output):
        if not module.training:
            return
        loss = None
        if isinstance(output, dict):
            loss = output.get("loss")
        else:
            loss = getattr(output, "loss", None)
        if loss is None:
            return
        self._losses.append(loss.detach())
        self._scaled = kwargs.get("num_items_in_batch") is not None

    def on_pre_optimizer_step(self, args, state, control, optimizer=None, lr_scheduler=None,
                              **kwargs):
        s = self._sonifier
        if s is None:
            return None
        loss = None
        if self._losses:
            loss = sum(float(x) for x in self._losses)
            if not self._scaled:
                loss /= len(self._losses)
        grads = self._snapshot
        if grads is None:  # no hook fired (e.g. an optimizer that wraps gradients)
            grads = [p.grad for p in self._params]
        self._snapshot = None
        self._losses = []
        try:
            # The lr sent is read after the controls applied.
            s.measure_grads(state.global_step, grads, loss=loss, optimizer=optimizer,
                            scheduler=lr_scheduler)
        except StopTraining:
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self._sonifier is not None:
            self._sonifier.epoch_end()

    def on_train_end(self, args, state, control, **kwargs):
        for h in self._handles:
            h.remove()
        self._handles = []
        if self._sonifier is not None:
            self._sonifier.close()
