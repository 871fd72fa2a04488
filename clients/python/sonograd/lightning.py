"""The PyTorch Lightning callback (``lightning`` or ``pytorch_lightning``)."""

try:
    import lightning.pytorch as _pl
except ImportError:  # the older package name
    import pytorch_lightning as _pl

from .controls import StopTraining
from .sonifier import DEFAULT_HOST, DEFAULT_PORT, GradientSonifier


class LightningCallback(_pl.Callback):
    """``Trainer(callbacks=[LightningCallback(port=9107)])``: each optimizer step's gradient
    norms (before the optimizer, after any clipping Lightning does), loss and learning rate;
    ``run_start``, ``epoch_end`` and ``run_end``. Steps are Lightning's ``global_step``.

    Controls from ``listen`` apply before each optimizer step to the optimizer and its
    first lr scheduler; ``stop`` sets ``trainer.should_stop`` (Lightning ends after the step)
    and ``run_end`` says ``stopped``; ``checkpoint`` calls ``on_checkpoint(step)``, e.g.
    ``lambda step: trainer.save_checkpoint(f"step-{step}.ckpt")``."""

    def __init__(self, host=DEFAULT_HOST, port=DEFAULT_PORT, on_checkpoint=None, **kwargs):
        super().__init__()
        self._args = dict(host=host, port=port, on_checkpoint=on_checkpoint, **kwargs)
        self._sonifier = None
        self._loss = None

    @property
    def sonifier(self):
        """The :class:`GradientSonifier` of the current fit (``None`` before it)."""
        return self._sonifier

    def on_fit_start(self, trainer, pl_module):
        self._args.setdefault("rank", trainer.global_rank)
        self._sonifier = GradientSonifier(pl_module, **self._args)

    def on_train_start(self, trainer, pl_module):
        info = {}
        if trainer.optimizers:
            optimizer = trainer.optimizers[0]
            info["optimizer"] = type(optimizer).__name__.lower()
            info["lr"] = float(optimizer.param_groups[0]["lr"])
        if trainer.max_steps and trainer.max_steps > 0:
            info["steps"] = int(trainer.max_steps)
        self._sonifier.start(**info)

    def on_before_backward(self, trainer, pl_module, loss):
        self._loss = loss.detach()

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        scheduler = None
        configs = getattr(trainer, "lr_scheduler_configs", None)
        if configs:
            scheduler = getattr(configs[0], "scheduler", None)
        try:
            self._sonifier.step(loss=self._loss, optimizer=optimizer, step=trainer.global_step,
                                scheduler=scheduler)
        except StopTraining:
            trainer.should_stop = True

    def on_train_epoch_end(self, trainer, pl_module):
        self._sonifier.epoch_end()

    def on_fit_end(self, trainer, pl_module):
        self._sonifier.close()


#: The name the single-file client used.
SonogradCallback = LightningCallback
