"""`TransformersCallback` with a real `transformers.Trainer` and a tiny Llama built from a
config (nothing downloaded): under gradient accumulation and `max_grad_norm`, each optimizer
step's per-layer norms are those before clipping, the total is the Trainer's own logged
`grad_norm`, and loss and learning rate are what it logs."""

import math

import pytest

import sonograd
from conftest import need, of_kind, value
from models import close, reference


@pytest.mark.parametrize("accumulate,max_grad_norm,seed", [(2, 0.05, 0), (1, 0.0, 1), (3, 1.0, 2)])
def test_the_trainer_is_heard_exactly(listen, tmp_path, accumulate, max_grad_norm, seed):
    torch = need("torch")
    transformers = need("transformers")
    torch.manual_seed(seed)
    config = transformers.LlamaConfig(
        vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = transformers.LlamaForCausalLM(config)
    gen = torch.Generator().manual_seed(seed)
    data = [{"input_ids": ids, "labels": ids}
            for ids in torch.randint(0, 97, (64, 12), generator=gen)]

    post_clip = {}

    class Reference(transformers.TrainerCallback):
        """The gradients as the optimizer gets them (clipped), computed here in float64."""

        def on_pre_optimizer_step(self, args, state, control, **kwargs):
            post_clip[state.global_step] = reference(model)

    listener = listen(runs_ending=1)
    steps = 5
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), max_steps=steps, per_device_train_batch_size=4,
        gradient_accumulation_steps=accumulate, max_grad_norm=max_grad_norm, logging_steps=1,
        learning_rate=3e-3, lr_scheduler_type="linear", warmup_steps=2, report_to=[],
        use_cpu=True, save_strategy="no", disable_tqdm=True, seed=seed)
    callback = sonograd.TransformersCallback(port=listener.port, run="hf")
    trainer = transformers.Trainer(model=model, args=args, train_dataset=data,
                                   callbacks=[callback, Reference()])
    trainer.train()
    events = listener.wait().events()
    logged = {h["step"] - 1: h for h in trainer.state.log_history if "grad_norm" in h}
    assert sorted(logged) == list(range(steps))
    clipped_somewhere = False
    for step in range(steps):
        grad_norm = logged[step]["grad_norm"]
        (total,) = of_kind(events, "total_norm", step=step)
        assert close(value(total["value"]), grad_norm, rel=1e-5), (step, total, grad_norm)
        coef = min(1.0, max_grad_norm / (grad_norm + 1e-6)) if max_grad_norm > 0 else 1.0
        clipped_somewhere |= coef < 1
        layers, _ = post_clip[step]
        got = {e["layer"]: value(e["value"]) for e in of_kind(events, "grad_norm", step=step)}
        assert set(got) == set(layers) and len(got) > 10
        for name, clipped in layers.items():
            assert close(got[name], clipped / coef, rel=1e-5), (step, name, got[name], clipped)
        (loss,) = of_kind(events, "loss", step=step)
        assert close(value(loss["value"]), logged[step]["loss"], rel=1e-5), (loss, logged[step])
        (lr,) = of_kind(events, "lr", step=step)
        assert close(value(lr["value"]), logged[step]["learning_rate"]), (lr, logged[step])
    if max_grad_norm == 0.05:
        assert clipped_somewhere, "max_grad_norm 0.05 should have clipped"
    start = of_kind(events, "run_start")[0]
    assert start["steps"] == steps and "model.layers.0.self_attn.q_proj" in start["layers"]
    assert math.isfinite(value(of_kind(events, "loss")[0]["value"]))
    assert callback.sonifier.errors == 0
