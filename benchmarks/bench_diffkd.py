"""Time forward+backward of the DiffKD loss module at the paper's shapes and print a table.

    MMDIFFKD_SKIP_VERSION_CHECK=1 .venv/bin/python benchmarks/bench_diffkd.py [--device cpu|cuda]

Cases (``--cases`` picks some):
  r18-layer4      ResNet-34 -> ResNet-18 ``layer4``: 512 -> 512 channels, 7x7, batch 32
  r18-layer4-ae   the same with the released configs' autoencoder (ae_channels=1024)
  logits-1k       ImageNet logits: 1000 classes, batch 32, kernel 1
  fpn-p3p7        RetinaNet FPN of an 800x1333 image (padded 800x1344): P3-P7, 256 channels,
                  batch 2, one module shared by the five levels
  fpn-p2p6        Faster R-CNN FPN of the same image: P2-P6 (P2 is 200x336; slow on CPU)

Timing: median over ``--iters`` after ``--warmup`` passes; one pass = forward of the module +
backward of its summed losses (student / teacher features are leaf tensors, so the cost is the
module's own). CPU time (``time.process_time``, all threads) is printed beside the wall
time: on a shared machine it moves less with the load than wall time does. Peak memory: on
CUDA ``torch.cuda.max_memory_allocated`` above what was allocated before the first pass; on
CPU the rise of the process's peak RSS (``ru_maxrss``) across the passes, measured in a fresh
subprocess per case (includes allocator slack).
"""
import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault('MMDIFFKD_SKIP_VERSION_CHECK', '1')

import torch  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from mmdiffkd.models.diffkd import DiffKD  # noqa: E402

RETINA = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]      # strides 8..128 of 800x1344
FASTER = [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)]   # strides 4..64

CASES = {
    'r18-layer4': dict(cfg=dict(student_channels=512, teacher_channels=512),
                       shapes=[((32, 512, 7, 7), (32, 512, 7, 7))]),
    'r18-layer4-ae': dict(cfg=dict(student_channels=512, teacher_channels=512, use_ae=True,
                                   ae_channels=1024),
                          shapes=[((32, 512, 7, 7), (32, 512, 7, 7))]),
    'logits-1k': dict(cfg=dict(student_channels=1000, teacher_channels=1000, kernel_size=1),
                      shapes=[((32, 1000), (32, 1000))]),
    'fpn-p3p7': dict(cfg=dict(student_channels=256, teacher_channels=256),
                     shapes=[((2, 256, h, w), (2, 256, h, w)) for h, w in RETINA]),
    'fpn-p2p6': dict(cfg=dict(student_channels=256, teacher_channels=256),
                     shapes=[((2, 256, h, w), (2, 256, h, w)) for h, w in FASTER]),
}
DEFAULT_CASES = ['r18-layer4', 'r18-layer4-ae', 'logits-1k', 'fpn-p3p7']


def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def measure(name, device, steps, warmup, iters, amp, ckpt):
    """Time one case in this process; returns a dict of results."""
    case = CASES[name]
    torch.manual_seed(0)
    module = DiffKD(inference_steps=steps, grad_checkpoint=ckpt, **case['cfg']).to(device)
    module.train()
    inputs = [(torch.randn(s, device=device, requires_grad=True), torch.randn(t, device=device))
              for s, t in case['shapes']]
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=amp)

    def one_pass():
        c0 = time.process_time()
        t0 = time.perf_counter()
        with autocast:
            total = sum(sum(module(s, t).values()) for s, t in inputs)
        _sync(device)
        t1 = time.perf_counter()
        total.backward()
        _sync(device)
        t2 = time.perf_counter()
        c2 = time.process_time()
        module.zero_grad(set_to_none=True)
        for s, _ in inputs:
            s.grad = None
        return (t1 - t0) * 1e3, (t2 - t0) * 1e3, (c2 - c0) * 1e3

    if device == 'cuda':
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for _ in range(warmup):
        one_pass()
    times = [one_pass() for _ in range(iters)]
    if device == 'cuda':
        peak = (torch.cuda.max_memory_allocated() - base) / 2**20
    else:
        peak = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 2**10
    return dict(case=name, device=device, steps=steps, amp=amp,
                shape=' + '.join('x'.join(map(str, s)) for s, _ in case['shapes'][:1])
                + (f' (+{len(case["shapes"]) - 1} levels)' if len(case['shapes']) > 1 else ''),
                params=sum(p.numel() for p in module.parameters()),
                fwd_ms=statistics.median(t[0] for t in times),
                fwdbwd_ms=statistics.median(t[1] for t in times),
                cpu_ms=statistics.median(t[2] for t in times), peak_mib=peak)


def run_case(args, name, device):
    if device == 'cuda':
        return measure(name, device, args.steps, args.warmup, args.iters, args.amp,
                       args.grad_checkpoint)
    # fresh process per CPU case, so its peak RSS is its own
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', name, '--device', 'cpu',
           '--steps', str(args.steps), '--warmup', str(args.warmup), '--iters', str(args.iters),
           '--threads', str(args.threads)] + (['--amp'] if args.amp else []) \
        + (['--grad-checkpoint'] if args.grad_checkpoint else [])
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument('--device', nargs='+', default=None, choices=['cpu', 'cuda'],
                        help='default: cpu, and cuda when available')
    parser.add_argument('--steps', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--amp', action='store_true', help='autocast to bfloat16')
    parser.add_argument('--grad-checkpoint', action='store_true',
                        help='DiffKD(grad_checkpoint=True): recompute predictor activations')
    parser.add_argument('--worker', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker, 'cpu', args.steps, args.warmup, args.iters,
                                 args.amp, args.grad_checkpoint)))
        return
    devices = args.device or (['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    if 'cuda' in devices and not torch.cuda.is_available():
        parser.error('--device cuda given but CUDA is not available')

    gpu = torch.cuda.get_device_name() if 'cuda' in devices else None
    print(f'torch {torch.__version__}, {platform.processor() or platform.machine()}, '
          f'{os.cpu_count()} CPUs, {args.threads} torch threads' + (f', {gpu}' if gpu else ''))
    print(f'inference_steps={args.steps}, warmup={args.warmup}, iters={args.iters}, '
          f'autocast bf16={args.amp}, grad_checkpoint={args.grad_checkpoint}\n')
    print(f'load average before: {os.getloadavg()[0]:.2f}')
    header = ('| case | device | input (student) | params | fwd ms | fwd+bwd ms | '
              'fwd+bwd CPU-time ms | peak memory MiB |')
    print(header)
    print('|' + '---|' * 8)
    for device in devices:
        for name in args.cases:
            r = run_case(args, name, device)
            what = 'CUDA alloc' if device == 'cuda' else 'RSS rise'
            print(f"| {r['case']} | {device} | {r['shape']} | {r['params'] / 1e6:.2f} M | "
                  f"{r['fwd_ms']:.1f} | {r['fwdbwd_ms']:.1f} | {r['cpu_ms']:.0f} | "
                  f"{r['peak_mib']:.0f} ({what}) |", flush=True)
    print(f'load average after: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
