"""The same small MLP as example.py, trained by PyTorch Lightning and heard through sonograd's
Lightning callback.

    sonograd listen --udp --record run.jsonl &
    python3 example_lightning.py --port 9107 --steps 200
"""

import argparse

import torch
import lightning.pytorch as pl

from sonograd import LightningCallback


class Classifier(pl.LightningModule):
    def __init__(self, lr):
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Sequential(
            torch.nn.Linear(20, 64), torch.nn.ReLU(),
            torch.nn.Linear(64, 32), torch.nn.ReLU(),
            torch.nn.Linear(32, 2),
        )
        self.loss_fn = torch.nn.CrossEntropyLoss()

    def training_step(self, batch, _index):
        x, y = batch
        return self.loss_fn(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.lr)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9107)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--run", default=None)
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = (x[:, :5].sum(dim=1) > 0).long()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=32, shuffle=True)
    trainer = pl.Trainer(
        max_steps=args.steps,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[LightningCallback(host=args.host, port=args.port, run=args.run)],
    )
    trainer.fit(Classifier(args.lr), loader)
    print(f"{trainer.global_step} steps trained by Lightning")


if __name__ == "__main__":
    main()
