"""Time forward+backward of the DiffKD loss at the paper's shapes, beside the authors' module.

    .venv/bin/python benchmarks/bench_diffkd.py --threads 1 \
        [--authors-dir DIR] [--compile] [--cases ...] [--device cpu|cuda] [--amp]

Without ``--authors-dir`` it prints the project's figures alone. With it, DIR holds the
authors' DiffKD package (the folder ``lib/models/losses/diffkd`` of
github.com/hunto/image_classification_sota, the classification code of github.com/hunto/DiffKD),
or is the root of that repository; the project never ships or downloads their code. The two
modules then get the same weights (theirs mapped onto ours with the reference key table), the
same inputs and the same random draws (the global RNG is re-seeded before every pass), and run
in turns in one process (A B A B ..., so that load changes on a shared machine hit both alike).
Their forward returns the refined feature, the target and the diffusion / autoencoder losses;
the distillation loss is added as the paper's (MSE for maps, KL with tau = 1 for logits).

Cases (``--cases`` picks some):
  r18-layer4      ResNet-34 -> ResNet-18 ``layer4``: 512 -> 512 channels, 7x7, batch 32
  r18-layer4-ae   the same with the released configs' autoencoder (ae_channels=1024)
  logits-1k       ImageNet logits: 1000 classes, batch 32, kernel 1
  fpn-p3..fpn-p7  one level of RetinaNet's FPN on an 800x1333 image (padded 800x1344): 256
                  channels, batch 2; P3 is 100x168, P4 50x84, P5 25x42, P6 13x21, P7 7x11
  fpn-p3p7        the five levels through one shared module, summed
  fpn-p2p6        Faster R-CNN's FPN of the same image: P2-P6 (P2 is 200x336; not default)

Timing: median over ``--iters`` passes after ``--warmup``; one pass = forward of the module +
backward of its summed losses (student / teacher features are leaf tensors, so the cost is the
module's own). The CPU time of the process (``time.process_time``) is printed beside the wall
time: on a shared machine it moves less with the load. ``--compile`` adds the project's module
with ``compile=True`` (``torch.compile`` of the sampling loop); its first pass, which compiles,
is reported apart as the compile time.

Peak memory: on CUDA ``torch.cuda.max_memory_allocated`` above the allocation before the pass;
on CPU the peak of the bytes held by tensors during one pass above the start (the CPU
allocator's events recorded by ``torch.profiler``: the CPU counterpart of
``max_memory_allocated``, exact and independent of the load), and with ``--rss`` also the rise
of the peak resident set size of a fresh process per module over two passes (includes the C
allocator's and the BLAS libraries' slack; noisy).
"""
import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))
from mmdiffkd.models.diffkd import DiffKD, to_reference  # noqa: E402

RETINA = [(100, 168), (50, 84), (25, 42), (13, 21), (7, 11)]      # strides 8..128 of 800x1344
FASTER = [(200, 336), (100, 168), (50, 84), (25, 42), (13, 21)]   # strides 4..64
FPN = dict(student_channels=256, teacher_channels=256)

CASES = {
    'r18-layer4': dict(cfg=dict(student_channels=512, teacher_channels=512),
                       shapes=[((32, 512, 7, 7), (32, 512, 7, 7))]),
    'r18-layer4-ae': dict(cfg=dict(student_channels=512, teacher_channels=512, use_ae=True,
                                   ae_channels=1024),
                          shapes=[((32, 512, 7, 7), (32, 512, 7, 7))]),
    'logits-1k': dict(cfg=dict(student_channels=1000, teacher_channels=1000, kernel_size=1),
                      shapes=[((32, 1000), (32, 1000))]),
    **{f'fpn-p{i + 3}': dict(cfg=FPN, shapes=[((2, 256, h, w), (2, 256, h, w))])
       for i, (h, w) in enumerate(RETINA)},
    'fpn-p3p7': dict(cfg=FPN, shapes=[((2, 256, h, w), (2, 256, h, w)) for h, w in RETINA]),
    'fpn-p2p6': dict(cfg=FPN, shapes=[((2, 256, h, w), (2, 256, h, w)) for h, w in FASTER]),
}
DEFAULT_CASES = ['r18-layer4', 'r18-layer4-ae', 'logits-1k', 'fpn-p3', 'fpn-p4', 'fpn-p5',
                 'fpn-p6', 'fpn-p7', 'fpn-p3p7']
OURS, COMPILED, AUTHORS = 'ours', 'ours compiled', 'authors'


# ---------------------------------------------------------------------------- the authors'
def load_authors(directory):
    """The authors' ``DiffKD`` class from DIR (their package folder, or their repository)."""
    for pkg in (directory, os.path.join(directory, 'diffkd'),
                os.path.join(directory, 'lib', 'models', 'losses', 'diffkd')):
        if os.path.isfile(os.path.join(pkg, 'diffkd.py')) and \
                os.path.isfile(os.path.join(pkg, '__init__.py')):
            break
    else:
        raise SystemExit(f'--authors-dir {directory}: no DiffKD package there (looked for '
                         f'diffkd.py and __init__.py in it, in diffkd/ and in '
                         f'lib/models/losses/diffkd/); give the folder lib/models/losses/diffkd '
                         f'of github.com/hunto/image_classification_sota or that repository.')
    spec = importlib.util.spec_from_file_location(
        'authors_diffkd', os.path.join(pkg, '__init__.py'), submodule_search_locations=[pkg])
    module = importlib.util.module_from_spec(spec)
    sys.modules['authors_diffkd'] = module
    spec.loader.exec_module(module)
    return module.DiffKD


def authors_losses(module, student, teacher, kernel_size):
    """Their forward plus the paper's distillation loss, as a dict like ours."""
    if student.dim() == 2:
        student, teacher = student[:, :, None, None], teacher[:, :, None, None]
    refined, target, ddim, rec = module(student, teacher)
    if kernel_size == 1:
        distill = F.kl_div(F.log_softmax(refined.flatten(1).float(), 1),
                           F.softmax(target.flatten(1).float(), 1), reduction='batchmean')
    else:
        distill = F.mse_loss(refined.float(), target.float())
    parts = dict(distill=distill, diffusion=ddim)
    if rec is not None:
        parts['ae'] = rec
    return parts


# ---------------------------------------------------------------------------- measuring
def _sync(device):
    if device == 'cuda':
        torch.cuda.synchronize()


def build(case, device, impls, authors_dir, compile_options=None, grad_checkpoint=False):
    """The modules of ``impls`` with the same weights, and the inputs; ``compile_options`` are
    the compiled module's (default: torch's)."""
    cfg = CASES[case]['cfg']
    kernel_size = cfg.get('kernel_size', 3)
    torch.manual_seed(0)
    ours = DiffKD(**cfg)
    state = ours.state_dict()
    modules = {}
    if AUTHORS in impls:
        theirs = load_authors(authors_dir)(**cfg)
        theirs.load_state_dict(to_reference(state, kernel_size))
        modules[AUTHORS] = theirs
    for name in impls:
        if name in (OURS, COMPILED):
            module = DiffKD(**cfg, compile=(compile_options or True) if name == COMPILED
                            else False, grad_checkpoint=grad_checkpoint and name == OURS)
            module.load_state_dict(state)
            modules[name] = module
    for module in modules.values():
        module.to(device).train()
    gen = torch.Generator().manual_seed(1)
    inputs = [(torch.randn(s, generator=gen).to(device).requires_grad_(True),
               torch.randn(t, generator=gen).to(device)) for s, t in CASES[case]['shapes']]
    return modules, inputs, kernel_size


def make_pass(name, module, inputs, kernel_size, device, amp):
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=amp)

    def losses(s, t):
        if name == AUTHORS:
            return authors_losses(module, s, t, kernel_size)
        return module(s, t)

    def one_pass(seed):
        torch.manual_seed(seed)  # the same draws for every module
        c0, t0 = time.process_time(), time.perf_counter()
        with autocast:
            total = sum(sum(losses(s, t).values()) for s, t in inputs)
        _sync(device)
        t1 = time.perf_counter()
        total.backward()
        _sync(device)
        t2, c2 = time.perf_counter(), time.process_time()
        module.zero_grad(set_to_none=True)
        for s, _ in inputs:
            s.grad = None
        return dict(fwd_ms=(t1 - t0) * 1e3, fwdbwd_ms=(t2 - t0) * 1e3,
                    cpu_ms=(c2 - c0) * 1e3, total=total.detach().double().item())
    return one_pass


def peak_memory_mib(one_pass, device, seed):
    """Peak of the bytes held by tensors during one pass, above the start."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = one_pass(seed)
        return (torch.cuda.max_memory_allocated() - base) / 2**20, out
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        out = one_pass(seed)
    events = sorted((e for e in prof.profiler.kineto_results.events() if e.name() == '[memory]'),
                    key=lambda e: e.start_ns())
    held = peak = 0
    for e in events:
        held += e.nbytes()
        peak = max(peak, held)
    return peak / 2**20, out


def measure(case, device, impls, args):
    """Interleaved passes of every module of ``impls`` in this process."""
    modules, inputs, kernel_size = build(case, device, impls, args.authors_dir,
                                         getattr(args, 'compile_options', None),
                                         getattr(args, 'grad_checkpoint', False))
    passes = {name: make_pass(name, m, inputs, kernel_size, device, args.amp)
              for name, m in modules.items()}
    results = {name: dict(params=sum(p.numel() for p in m.parameters()), runs=[])
               for name, m in modules.items()}
    if COMPILED in passes:  # the first pass compiles: timed apart
        t0 = time.perf_counter()
        passes[COMPILED](0)
        results[COMPILED]['compile_s'] = time.perf_counter() - t0
    for i in range(args.warmup + args.iters):
        for name, one_pass in passes.items():
            run = one_pass(100 + i)
            if i >= args.warmup:
                results[name]['runs'].append(run)
    for name, one_pass in passes.items():
        peak, run = peak_memory_mib(one_pass, device, 7)
        results[name]['peak_mib'] = peak
        results[name]['total'] = run['total']
    out = {}
    for name, r in results.items():
        runs = r.pop('runs')
        out[name] = dict(r, **{k: statistics.median(run[k] for run in runs)
                               for k in ('fwd_ms', 'fwdbwd_ms', 'cpu_ms')})
    return out


def rss_rise_mib(case, name, args):
    """Rise of the peak RSS of this process over two passes of one module (CPU)."""
    modules, inputs, kernel_size = build(case, 'cpu', [name], args.authors_dir,
                                         grad_checkpoint=args.grad_checkpoint)
    one_pass = make_pass(name, modules[name], inputs, kernel_size, 'cpu', args.amp)
    if name == COMPILED:
        one_pass(0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    for seed in (1, 2):
        one_pass(seed)
    return (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**10


def worker_cmd(args, case, mode, impls):
    cmd = [sys.executable, os.path.abspath(__file__), '--worker', mode, '--cases', case,
           '--impls', *impls, '--device', 'cpu', '--warmup', str(args.warmup),
           '--iters', str(args.iters), '--threads', str(args.threads)]
    if args.authors_dir:
        cmd += ['--authors-dir', args.authors_dir]
    return cmd + (['--amp'] if args.amp else []) + \
        (['--grad-checkpoint'] if args.grad_checkpoint else [])


def run_case(args, case, device, impls):
    if device == 'cuda':
        return measure(case, device, impls, args)
    # a fresh process per CPU case (and per module for the RSS), so that its memory is its own
    out = subprocess.run(worker_cmd(args, case, 'time', impls), check=True,
                         capture_output=True, text=True).stdout
    res = json.loads(out.strip().splitlines()[-1])
    if args.rss:
        for name in impls:
            out = subprocess.run(worker_cmd(args, case, 'rss', [name]), check=True,
                                 capture_output=True, text=True).stdout
            res[name]['rss_mib'] = json.loads(out.strip().splitlines()[-1])
    return res


# ---------------------------------------------------------------------------- report
def shape_of(case):
    shapes = CASES[case]['shapes']
    text = 'x'.join(map(str, shapes[0][0]))
    return text + (f' (+{len(shapes) - 1} levels)' if len(shapes) > 1 else '')


def print_table(rows, device, compare):
    mem = 'CUDA max allocated' if device == 'cuda' else 'tensors'
    if not compare:
        print(f'| case | device | input (student) | params | fwd ms | fwd+bwd ms | '
              f'fwd+bwd CPU-time ms | peak memory MiB ({mem}) |')
        print('|' + '---|' * 8)
        for case, res in rows:
            for name, r in res.items():
                label = case + (' (compiled)' if name == COMPILED else '')
                print(f"| {label} | {device} | {shape_of(case)} | {r['params'] / 1e6:.2f} M | "
                      f"{r['fwd_ms']:.1f} | {r['fwdbwd_ms']:.1f} | {r['cpu_ms']:.0f} | "
                      f"{r['peak_mib']:.0f} |")
        return
    names = [n for n in (OURS, COMPILED) if n in rows[0][1]]
    rss = 'rss_mib' in rows[0][1][OURS]
    # on a shared CPU the process's CPU time is the steadier figure; on CUDA the wall time
    key, unit = ('cpu_ms', 'CPU-time ms') if device == 'cpu' else ('fwdbwd_ms', 'ms')
    head = ['case', 'input (student)', f'authors fwd+bwd {unit}']
    for n in names:
        head += [f'{n} fwd+bwd {unit}', f'{n} / authors time', f'{n} / authors wall time']
    head += ['authors peak MiB'] + [f'{n} peak MiB' for n in names] + \
        [f'{n} / authors memory' for n in names]
    if rss:
        head += ['authors RSS rise MiB', 'ours RSS rise MiB']
    head += ['loss rel. diff']
    print('| ' + ' | '.join(head) + ' |')
    print('|' + '---|' * len(head))
    for case, res in rows:
        a = res[AUTHORS]
        cells = [case, shape_of(case), f"{a[key]:.0f}"]
        for n in names:
            cells += [f"{res[n][key]:.0f}", f"{res[n][key] / a[key]:.2f}",
                      f"{res[n]['fwdbwd_ms'] / a['fwdbwd_ms']:.2f}"]
        o = res[OURS]
        cells += [f"{a['peak_mib']:.1f}"] + [f"{res[n]['peak_mib']:.1f}" for n in names] + \
            [f"{res[n]['peak_mib'] / a['peak_mib']:.2f}" for n in names]
        if rss:
            cells += [f"{a['rss_mib']:.0f}", f"{o['rss_mib']:.0f}"]
        cells += [f"{abs(o['total'] - a['total']) / abs(a['total']):.1e}"]
        print('| ' + ' | '.join(cells) + ' |', flush=True)
    if COMPILED in names:
        print('\ncompile time (first pass) s: ' + ', '.join(
            f"{case} {res[COMPILED]['compile_s']:.0f}" for case, res in rows))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--cases', nargs='+', default=DEFAULT_CASES, choices=list(CASES))
    parser.add_argument('--device', nargs='+', default=None, choices=['cpu', 'cuda'],
                        help='default: cpu, and cuda when available')
    parser.add_argument('--authors-dir', default=None,
                        help="the authors' DiffKD package folder (or their repository): adds "
                             'the side-by-side comparison')
    parser.add_argument('--compile', action='store_true',
                        help='also time DiffKD(compile=True); its compile time is apart')
    parser.add_argument('--rss', action='store_true',
                        help='CPU: also the peak-RSS rise of a fresh process per module')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--amp', action='store_true', help='autocast to bfloat16')
    parser.add_argument('--grad-checkpoint', action='store_true',
                        help='the project\'s module with grad_checkpoint=True (recomputes the '
                             'predictor\'s activations in backward)')
    parser.add_argument('--worker', default=None, choices=['time', 'rss'],
                        help=argparse.SUPPRESS)
    parser.add_argument('--impls', nargs='+', default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.authors_dir:
        load_authors(args.authors_dir)  # a wrong folder fails here, before any timing
    if args.worker == 'time':
        print(json.dumps(measure(args.cases[0], 'cpu', args.impls, args)))
        return
    if args.worker == 'rss':
        print(json.dumps(rss_rise_mib(args.cases[0], args.impls[0], args)))
        return
    devices = args.device or (['cpu', 'cuda'] if torch.cuda.is_available() else ['cpu'])
    if 'cuda' in devices and not torch.cuda.is_available():
        parser.error('--device cuda given but CUDA is not available')
    impls = ([AUTHORS] if args.authors_dir else []) + [OURS] + \
        ([COMPILED] if args.compile else [])

    gpu = torch.cuda.get_device_name() if 'cuda' in devices else None
    print(f'torch {torch.__version__}, {platform.machine()}, {os.cpu_count()} CPUs, '
          f'{args.threads} torch threads' + (f', {gpu}' if gpu else ''))
    print(f'inference_steps=5, warmup={args.warmup}, iters={args.iters} (median), '
          f'autocast bf16={args.amp}, grad_checkpoint={args.grad_checkpoint}, '
          f'modules: {", ".join(impls)}')
    print(f'load average before: {os.getloadavg()[0]:.2f}\n')
    for device in devices:
        rows = []
        for case in args.cases:
            rows.append((case, run_case(args, case, device, impls)))
            print(f'  measured {case} on {device}', file=sys.stderr, flush=True)
        print_table(rows, device, compare=bool(args.authors_dir))
        print()
    print(f'load average after: {os.getloadavg()[0]:.2f}')


if __name__ == '__main__':
    main()
