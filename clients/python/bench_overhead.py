"""What the client costs a training step: the seed's MLP (784-256-128-64-10, SGD) on one
thread, with plain steps, monitored steps (``sonifier.step`` after ``backward``, the default:
measured within the call, sent by the client's native thread; also with ``background=True``,
measured on that thread too) and, as the
peer, steps that read a bare ``torch._foreach_norm`` into a Python list, interleaved in one
process in blocks, so that drift in the machine's load hits all three alike.

    python3 clients/python/bench_overhead.py              # batch 20 and 256
    python3 clients/python/bench_overhead.py --batch 20 --rounds 60

Per round, each kind runs one block of ``--block`` steps (in rotating order); a block's time
per step is its total over its steps, and a kind's overhead in a round is its time over the
plain block's of the same round. Printed: the median overhead over the rounds, and the
spread (25th-75th percentile) to show how noisy the machine was, and the same ratio of the
training thread's own CPU time (``time.thread_time``), which the scheduler's noise barely
touches: what the loop itself spends, the reduction on the client's native thread aside. Also
timed: monitored steps with ``controls=False``, so the paired difference is what reading
controls (``docs/controls.md``) costs a step. The monitored steps send
to a UDP socket bound here (read by no one, with a receive buffer large enough to take every
datagram), so the send itself is counted too.
"""

import argparse
import os
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


def quantile(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))]


def bench(batch, rounds, block, warmup):
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
    sonifier = sonograd.monitor(model, port=sink.getsockname()[1], run="bench")
    handed = sonograd.monitor(model, port=sink.getsockname()[1], run="handed", background=True)
    deaf = sonograd.monitor(model, port=sink.getsockname()[1], run="deaf", controls=False)

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

    def monitored():
        x, y = batch_at()
        loss = loss_fn(model(x), y)
        loss.backward()
        sonifier.step(loss=loss, optimizer=opt)
        opt.step()
        opt.zero_grad()

    def monitored_deaf():
        x, y = batch_at()
        loss = loss_fn(model(x), y)
        loss.backward()
        deaf.step(loss=loss, optimizer=opt)
        opt.step()
        opt.zero_grad()

    def monitored_handed():
        x, y = batch_at()
        loss = loss_fn(model(x), y)
        loss.backward()
        handed.step(loss=loss, optimizer=opt)
        opt.step()
        opt.zero_grad()

    def foreach_peer():
        x, y = batch_at()
        loss = loss_fn(model(x), y)
        loss.backward()
        norms = torch._foreach_norm([p.grad for p in params])
        _ = [n.item() for n in norms]
        opt.step()
        opt.zero_grad()

    kinds = {"plain": plain, "monitored": monitored, "handed": monitored_handed,
             "foreach_norm": foreach_peer, "deaf": monitored_deaf}
    for f in kinds.values():
        for _ in range(warmup):
            f()
    sonifier.flush()
    handed.flush()
    deaf.flush()
    per_step = {k: [] for k in kinds}
    cpu = {k: [] for k in kinds}  # the training thread's CPU time per step
    order = list(kinds)
    for r in range(rounds):
        order = order[1:] + order[:1]
        for k in order:
            f = kinds[k]
            t0, c0 = time.perf_counter(), time.thread_time()
            for _ in range(block):
                f()
            if k in ("monitored", "handed", "deaf"):
                {"monitored": sonifier, "handed": handed, "deaf": deaf}[k].flush()  # sent inside its time
            per_step[k].append((time.perf_counter() - t0) / block)
            cpu[k].append((time.thread_time() - c0) / block)
    sonifier.close()
    handed.close()
    deaf.close()
    sink.close()
    out = {"plain_us": statistics.median(per_step["plain"]) * 1e6}
    for k in ("monitored", "handed", "foreach_norm"):
        ratios = [m / p - 1 for m, p in zip(per_step[k], per_step["plain"])]
        out[k] = (statistics.median(ratios), quantile(ratios, 0.25), quantile(ratios, 0.75))
        out[k + "_cpu"] = statistics.median(
            [m / p - 1 for m, p in zip(cpu[k], cpu["plain"])])
    out["controls_us"] = statistics.median(
        [(m - d) * 1e6 for m, d in zip(cpu["monitored"], cpu["deaf"])])
    out["errors"] = sonifier.errors
    out["stolen"] = handed.stolen
    out["native"] = bool(sonifier._native)
    out["sent"] = sonifier.sender.sent
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batch", type=int, action="append",
                    help="batch size (repeatable; default 20 and 256)")
    ap.add_argument("--rounds", type=int, default=40)
    ap.add_argument("--block", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=100)
    args = ap.parse_args()
    torch.set_num_threads(1)
    for batch in args.batch or [20, 256]:
        r = bench(batch, args.rounds, args.block, args.warmup)
        m, f = r["monitored"], r["foreach_norm"]
        print(f"batch {batch:>3}: plain step {r['plain_us']:.0f} us; "
              f"sonograd +{m[0] * 100:.1f} % (quartiles {m[1] * 100:+.1f} .. {m[2] * 100:+.1f}); "
              f"background=True +{r['handed'][0] * 100:.1f} %; "
              f"bare _foreach_norm +{f[0] * 100:.1f} % "
              f"(quartiles {f[1] * 100:+.1f} .. {f[2] * 100:+.1f}); "
              f"training-thread CPU: sonograd +{r['monitored_cpu'] * 100:.1f} %, "
              f"background=True +{r['handed_cpu'] * 100:.1f} %, "
              f"_foreach_norm +{r['foreach_norm_cpu'] * 100:.1f} %; "
              f"reading controls {r['controls_us']:+.1f} us a step (CPU, paired); "
              f"{args.rounds} rounds x {args.block} steps, {r['sent']} datagrams, "
              f"{'native' if r['native'] else 'Python (no native path)'} measuring, "
              f"background=True: {r['stolen']} steps found unstarted by the next call (no free core), "
              f"{r['errors']} errors; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
