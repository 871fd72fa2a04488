"""What the client costs a training step: the seed's MLP (784-256-128-64-10, SGD) on one
thread, with plain steps, monitored steps (``sonifier.step`` after ``backward``, the default:
measured within the call, sent by the client's native thread) and, as the peer, steps that read
a bare ``torch._foreach_norm`` into a Python list, interleaved in one process in short blocks,
so that drift in the machine's speed hits all of them alike.

    python3 clients/python/bench_overhead.py              # batch 20 and 256
    python3 clients/python/bench_overhead.py --batch 20 --rounds 300
    python3 clients/python/bench_overhead.py --background --controls   # the other two kinds

Per round, each kind runs one block of ``--block`` steps (in a shuffled order); a block's time
per step is its total over its steps, and a kind's overhead in a round is its time over the
plain block's of the same round. Printed per kind: the median overhead over the rounds with
its 95 % confidence interval (from the order statistics of the rounds), and the same median
for the training thread's own CPU time (``time.thread_time``: what the loop itself spends,
the client's native thread aside). A second plain kind, timed like the others, shows what
the machine's noise alone makes of a kind that costs nothing (A/A). ``--background`` adds
monitored steps with ``background=True`` (measured on the native thread too);
``--controls`` adds monitored steps with ``controls=False``, whose paired difference is what
watching for controls (``docs/controls.md``) costs a step. The monitored steps send to a UDP
socket bound here (read by no one, with a receive buffer large enough to take every
datagram), and each monitored block ends with ``flush()``, so the sends are counted too.
"""

import argparse
import math
import os
import random
import socket
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import torch  # noqa: E402

import sonograd  # noqa: E402


def mlp():
    return torch.nn.Sequential(
        torch.nn.Linear(784, 256), torch.nn.ReLU(),
        torch.nn.Linear(256, 128), torch.nn.ReLU(),
        torch.nn.Linear(128, 64), torch.nn.ReLU(),
        torch.nn.Linear(64, 10),
    )


def median_ci(xs):
    """The median of ``xs`` and a 95 % confidence interval for it (order statistics)."""
    xs = sorted(xs)
    n = len(xs)
    half = 1.96 * n ** 0.5 / 2
    lo = max(0, int(n / 2 - half))
    hi = min(n - 1, int(math.ceil(n / 2 + half)))
    return statistics.median(xs), xs[lo], xs[hi]


def bench(batch, rounds, block, warmup, background, controls):
    torch.manual_seed(0)
    model = mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()
    data = torch.randn(64, batch, 784)
    labels = torch.randint(0, 10, (64, batch))
    params = list(model.parameters())

    sink = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sink.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 20)
    sink.bind(("127.0.0.1", 0))
    port = sink.getsockname()[1]
    sonifiers = {"monitored": sonograd.monitor(model, port=port, run="bench")}
    if background:
        sonifiers["background"] = sonograd.monitor(model, port=port, run="handed",
                                                   background=True)
    if controls:
        sonifiers["no_controls"] = sonograd.monitor(model, port=port, run="deaf",
                                                    controls=False)

    i = 0

    def batch_at():
        nonlocal i
        i = (i + 1) % len(data)
        return data[i], labels[i]

    def plain():
        x, y = batch_at()
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()

    def monitored_by(sonifier):
        def monitored():
            x, y = batch_at()
            loss = loss_fn(model(x), y)
            loss.backward()
            sonifier.step(loss=loss, optimizer=opt)
            opt.step()
            opt.zero_grad()
        return monitored

    def foreach_peer():
        x, y = batch_at()
        loss = loss_fn(model(x), y)
        loss.backward()
        norms = torch._foreach_norm([p.grad for p in params])
        _ = [n.item() for n in norms]
        opt.step()
        opt.zero_grad()

    kinds = {"plain": plain, "plain_again": plain, "foreach_norm": foreach_peer}
    kinds.update({k: monitored_by(s) for k, s in sonifiers.items()})
    for f in kinds.values():
        for _ in range(warmup):
            f()
    for s in sonifiers.values():
        s.flush()
    per_step = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}  # the training thread's CPU time per step
    # A new order each round: with a fixed rotation each kind would always follow the same
    # one, and what a block leaves behind (the native thread's last send, the caches) would
    # always fall on the same next kind.
    rng = random.Random(batch)
    for r in range(rounds):
        order = rng.sample(list(kinds), len(kinds))
        for k in order:
            f = kinds[k]
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(block):
                f()
            if k in sonifiers:
                sonifiers[k].flush()  # sent inside its time
            per_step[k].append((time.perf_counter() - t0) / block)
            cpu[k].append((time.thread_time() - c0) / block)
    out = {"plain_us": statistics.median(per_step["plain"]) * 1e6, "kinds": {}}
    for k in kinds:
        if k == "plain":
            continue
        ratios = [m / p - 1 for m, p in zip(per_step[k], per_step["plain"])]
        out["kinds"][k] = (median_ci(ratios), statistics.median(
            [m / p - 1 for m, p in zip(cpu[k], cpu["plain"])]))
    if controls:
        out["controls_us"] = median_ci([(m - d) * 1e6 for m, d in
                                        zip(per_step["monitored"], per_step["no_controls"])])
    main = sonifiers["monitored"]
    out["errors"] = sum(s.errors for s in sonifiers.values())
    out["native"] = bool(main._native)
    for s in sonifiers.values():
        s.close()
    sink.close()
    out["stolen"] = {k: s.stolen for k, s in sonifiers.items()}
    out["sent"] = main.sender.sent
    return out


LABELS = {"monitored": "sonograd", "foreach_norm": "bare _foreach_norm",
          "background": "background=True", "no_controls": "controls=False",
          "plain_again": "plain again (A/A: the noise)"}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, action="append",
                    help="batch size (repeatable; default 20 and 256)")
    ap.add_argument("--rounds", type=int, default=150)
    ap.add_argument("--block", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--background", action="store_true",
                    help="also time monitored steps with background=True")
    ap.add_argument("--controls", action="store_true",
                    help="also time monitored steps with controls=False")
    args = ap.parse_args()
    if args.rounds < 1 or args.block < 1 or args.warmup < 0:
        ap.error("--rounds and --block must be at least 1, --warmup at least 0")
    torch.set_num_threads(1)
    for batch in args.batch or [20, 256]:
        r = bench(batch, args.rounds, args.block, args.warmup, args.background, args.controls)
        print(f"batch {batch}: plain step {r['plain_us']:.0f} us; {args.rounds} rounds x "
              f"{args.block} steps a kind; "
              f"{'native' if r['native'] else 'Python (no native path)'} measuring, "
              f"{r['sent']} datagrams, {r['errors']} errors; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for k, ((med, lo, hi), cpu) in r["kinds"].items():
            print(f"  {LABELS[k]:<30} {med * 100:+6.1f} % (95 % CI {lo * 100:+.1f} .. "
                  f"{hi * 100:+.1f}); training-thread CPU {cpu * 100:+.1f} %")
        for k, n in r["stolen"].items():
            if n:
                print(f"  {LABELS[k]}: {n} steps done by the next call (no free core for the "
                      "native thread)")
        if args.controls:
            med, lo, hi = r["controls_us"]
            print(f"  watching for controls: {med:+.1f} us a step (95 % CI {lo:+.1f} .. "
                  f"{hi:+.1f}; paired)")


if __name__ == "__main__":
    main()
