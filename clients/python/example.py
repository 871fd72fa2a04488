"""A small MLP on synthetic data, heard through sonograd.

    sonograd listen --udp --record run.jsonl &      # or: cargo run --example listen -- --udp
    python3 example.py --port 9107 --steps 200
"""

import argparse

import torch

from sonograd import monitor


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9107)
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--lr", type=float, default=0.1)
    ap.add_argument("--run", default=None)
    ap.add_argument("--rank", type=int, default=None)
    args = ap.parse_args()

    torch.manual_seed(0)
    x = torch.randn(512, 20)
    y = (x[:, :5].sum(dim=1) > 0).long()
    model = torch.nn.Sequential(
        torch.nn.Linear(20, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 32), torch.nn.ReLU(),
        torch.nn.Linear(32, 2),
    )
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss()

    sonifier = monitor(model, host=args.host, port=args.port, run=args.run, rank=args.rank)
    sonifier.start(optimizer=f"sgd lr={args.lr}", batch_size=32, steps=args.steps)
    for step in range(args.steps):
        i = torch.randint(0, len(x), (32,))
        loss = loss_fn(model(x[i]), y[i])
        loss.backward()
        sonifier.step(loss=loss, optimizer=optimizer)  # after backward, before step
        optimizer.step()
        optimizer.zero_grad()
    with torch.no_grad():
        accuracy = (model(x).argmax(dim=1) == y).float().mean().item()
    sonifier.eval("accuracy", accuracy)
    sonifier.close()
    print(f"{args.steps} steps, accuracy {accuracy:.3f}, "
          f"{sonifier.sender.sent} datagrams sent, {sonifier.sender.dropped} dropped")


if __name__ == "__main__":
    main()
