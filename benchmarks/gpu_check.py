"""The checks that need a GPU, in one command (about 8 minutes on one GPU), printing one table.

    .venv/bin/python benchmarks/gpu_check.py [--out FILE.md]

1. ``pytest -m cuda``: the CUDA-only tests (skipped without a GPU, so CI never runs them; this
   script is where they run).
2. The DiffKD benchmark on CUDA (``benchmarks/bench_diffkd.py``'s measurement): fwd+bwd time
   and ``torch.cuda.max_memory_allocated``, float32 and bfloat16 autocast, eager on
   ``r18-layer4``, ``r18-layer4-ae``, ``logits-1k`` and the five RetinaNet FPN levels through
   one module (``fpn-p3p7``), and with ``compile=True`` on ``r18-layer4`` and ``fpn-p3p7``
   (per-level dynamic shapes); the compiled loss must match the eager one.
3. No host-device synchronisation in a DiffKD forward + backward (sampling loop included),
   eager and compiled: both run under ``torch.cuda.set_sync_debug_mode('error')``.
4. A few training iterations of the scenes RetinaNet DiffKD distillation
   (``configs/scenes/diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py``) with AMP, on
   scenes made by ``tools/make_scenes.py`` in a temporary folder and a random-init teacher saved
   to a temporary checkpoint (as the tests do): losses finite, time per iteration, peak memory.

``--device cpu --dry-run`` walks the same code on the CPU with tiny sizes (the tests are only
collected, the sync check forbids host reads of tensor values instead, compilation uses the
``aot_eager`` backend, training runs two float32 iterations): ``tests/benchmarks/test_gpu_check.py`` runs it,
so the script stays correct where no GPU is lent. Exit status 1 when a check fails.
"""
import argparse
import contextlib
import math
import os
import os.path as osp
import re
import subprocess
import sys
import tempfile
import time
import traceback
from types import SimpleNamespace

import torch

HERE = osp.dirname(osp.abspath(__file__))
ROOT = osp.dirname(HERE)
sys.path[:0] = [ROOT, HERE, osp.join(ROOT, 'tests')]

import bench_diffkd as bench  # noqa: E402

from mmdiffkd.models.diffkd import DiffKD  # noqa: E402

SCENES_CONFIG = osp.join(ROOT, 'configs', 'scenes',
                         'diffkd_fpn_retinanet_r50_retinanet_r18_1xb8-6e_scenes.py')
GPU_CASES = ['r18-layer4', 'r18-layer4-ae', 'logits-1k', 'fpn-p3p7']
# compiled too (each compile takes tens of seconds): a fixed shape and the dynamic FPN levels
GPU_COMPILED = ['r18-layer4', 'fpn-p3p7']
# dry run: tiny stand-ins for a map case (two levels: the dynamic-shape path) and logits
bench.CASES.setdefault('dry-map', dict(cfg=dict(student_channels=8, teacher_channels=16),
                                       shapes=[((2, 8, 6, 5), (2, 16, 6, 5)),
                                               ((2, 8, 3, 3), (2, 16, 3, 3))]))
bench.CASES.setdefault('dry-logits', dict(cfg=dict(student_channels=10, teacher_channels=10,
                                                   kernel_size=1),
                                          shapes=[((4, 10), (4, 10))]))
DRY_CASES = ['dry-map', 'dry-logits']


class Table:
    """Rows of (check, setting, result, time, memory, ok)."""

    def __init__(self):
        self.rows = []

    def add(self, check, setting, result, seconds='', memory='', ok=True):
        self.rows.append((check, setting, result, seconds, memory, ok))
        print(f'[{"ok" if ok else "FAIL"}] {check} | {setting} | {result}', flush=True)

    @property
    def ok(self):
        return all(r[-1] for r in self.rows)

    def markdown(self):
        lines = ['| check | setting | result | time | peak memory | status |',
                 '|---|---|---|---|---|---|']
        lines += [f'| {c} | {s} | {r} | {t} | {m} | {"ok" if ok else "FAIL"} |'
                  for c, s, r, t, m, ok in self.rows]
        return '\n'.join(lines)


@contextlib.contextmanager
def no_host_sync(device):
    """CUDA: any synchronising call raises. CPU: reading a tensor value on the host raises."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode('error')
        try:
            yield
        finally:
            torch.cuda.set_sync_debug_mode(0)
        return

    def forbidden(*args, **kwargs):
        raise RuntimeError('a tensor value was read on the host (a device sync on CUDA)')

    names = ('item', 'tolist', '__bool__', '__int__', '__float__', 'numpy')
    saved = {n: getattr(torch.Tensor, n) for n in names}
    for n in names:
        setattr(torch.Tensor, n, forbidden)
    try:
        yield
    finally:
        for n, f in saved.items():
            setattr(torch.Tensor, n, f)


# ---------------------------------------------------------------------------- 1. tests
def check_cuda_tests(table, dry_run):
    cmd = [sys.executable, '-m', 'pytest', '-q', '-m', 'cuda', '-p', 'no:cacheprovider',
           osp.join(ROOT, 'tests')]
    if dry_run:
        cmd.append('--collect-only')
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=ROOT))
    seconds = f'{time.perf_counter() - t0:.0f} s'
    last = (proc.stdout.strip().splitlines() or ['(no output)'])[-1]
    if dry_run:  # collected, not run: there must be some
        found = re.search(r'(\d+)(/\d+)? tests? collected', last)
        ok = proc.returncode == 0 and found is not None and int(found.group(1)) > 0
        table.add('CUDA tests (pytest -m cuda)', 'collected only (dry run)', last, seconds,
                  ok=ok)
        return
    ok = proc.returncode == 0 and 'passed' in last and 'skipped' not in last
    table.add('CUDA tests (pytest -m cuda)', 'run', last, seconds, ok=ok)
    if not ok:
        print(proc.stdout[-4000:], proc.stderr[-2000:], sep='\n')


# ---------------------------------------------------------------------------- 2. benchmark
def check_benchmark(table, device, cases, compiled_cases, compile_options, iters):
    for amp in (False, True):
        for case in cases:
            args = SimpleNamespace(authors_dir=None, amp=amp, warmup=1, iters=iters,
                                   compile_options=compile_options)
            label = f'{case}, {"bf16 autocast" if amp else "float32"}'
            compiled = case in compiled_cases
            try:
                res = bench.measure(case, device, [bench.OURS] + [bench.COMPILED] * compiled,
                                    args)
            except Exception as e:  # noqa: BLE001  (reported as a failed row)
                traceback.print_exc()
                table.add('DiffKD fwd+bwd', label, f'error: {type(e).__name__}: {e}', ok=False)
                continue
            eager = res[bench.OURS]
            finite = math.isfinite(eager['total'])
            table.add('DiffKD fwd+bwd eager', label, f"loss {eager['total']:.4g}",
                      f"{eager['fwdbwd_ms']:.1f} ms", f"{eager['peak_mib']:.1f} MiB",
                      ok=finite)
            if not compiled:
                continue
            comp = res[bench.COMPILED]
            # the compiled module starts from the same weights: same numbers to rounding
            rel = abs(comp['total'] - eager['total']) / max(abs(eager['total']), 1e-12)
            close = rel < (1e-5 if not amp else 2e-2)
            finite = finite and math.isfinite(comp['total'])
            table.add('DiffKD fwd+bwd compiled', label,
                      f"loss rel. diff to eager {rel:.1e}; compile {comp['compile_s']:.0f} s",
                      f"{comp['fwdbwd_ms']:.1f} ms", f"{comp['peak_mib']:.1f} MiB",
                      ok=finite and close)


# ---------------------------------------------------------------------------- 3. no sync
def check_no_sync(table, device, compile_options):
    for compiled in (False, True):
        torch.manual_seed(0)
        module = DiffKD(16, 32, use_ae=True,
                        compile=compile_options if compiled else False).to(device)
        s = torch.randn(2, 16, 7, 7, device=device, requires_grad=True)
        t = torch.randn(2, 32, 7, 7, device=device)
        mode = 'compiled' if compiled else 'eager'
        try:
            for _ in range(2):  # warm-up: lazy initialisation and compilation may synchronise
                sum(module(s, t).values()).backward()
            with no_host_sync(device):
                sum(module(s, t).values()).backward()
            table.add('no host sync in fwd+bwd', mode,
                      "set_sync_debug_mode('error')" if device == 'cuda' else
                      'no host reads of tensor values')
        except RuntimeError as e:
            traceback.print_exc()
            table.add('no host sync in fwd+bwd', mode, f'{type(e).__name__}: {e}'[:200],
                      ok=False)


# ---------------------------------------------------------------------------- 4. training
@contextlib.contextmanager
def mmengine_instances_restored():
    """MMEngine keeps its managers (visualizer, message hub, logger, scope) by name in global
    dicts: drop the ones the training run made, whose files lie in its temporary folder."""
    from mmengine.utils import ManagerMixin

    def classes(cls):
        for sub in cls.__subclasses__():
            yield sub
            yield from classes(sub)

    before = {cls: dict(cls._instance_dict) for cls in classes(ManagerMixin)}
    try:
        yield
    finally:
        for cls in classes(ManagerMixin):
            for name, instance in cls._instance_dict.items():
                if name not in before.get(cls, {}):
                    for handler in getattr(instance, 'handlers', []):  # a logger's log file
                        handler.close()
            cls._instance_dict.clear()
            cls._instance_dict.update(before.get(cls, {}))


def scenes_config(root, work_dir, teacher_ckpt, size, iters, batch):
    from mmengine.config import Config
    cfg = Config.fromfile(SCENES_CONFIG)
    cfg.model.teacher.checkpoint = teacher_ckpt
    cfg.work_dir = work_dir
    cfg.data_root = root
    for name in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg[name]
        loader.update(batch_size=batch, num_workers=0, persistent_workers=False)
        loader.dataset.data_root = root
        for t in loader.dataset.pipeline:
            if t['type'] == 'Resize':
                t['scale'] = (size, size)
    for name in ('val_evaluator', 'test_evaluator'):
        cfg[name].ann_file = root + 'annotations/val.json'
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters, val_interval=iters + 1)
    cfg.val_cfg = cfg.test_cfg = None
    cfg.val_dataloader = cfg.test_dataloader = None
    cfg.val_evaluator = cfg.test_evaluator = None
    cfg.param_scheduler = None
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=iters + 1,
                                        by_epoch=False)
    cfg.default_hooks.pop('visualization', None)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.custom_hooks = []
    cfg.log_processor = dict(by_epoch=False)
    cfg.randomness = dict(seed=0)
    cfg.model.dry_run = dict(input_size=(size, size))
    return cfg


def check_training(table, device, dry_run):
    from mmengine.runner import Runner

    import mmdiffkd.engine  # noqa: F401  (hooks, safe checkpoint loading)
    from mmdiffkd.engine.launch import prepare_launch, setup_amp
    from tiny_models import teacher_checkpoint
    size, iters, batch = (64, 2, 2) if dry_run else (128, 10, 8)
    amp = device == 'cuda'
    setting = f'{iters} iters, batch {batch}, {size} px, ' + ('AMP' if amp else 'float32')
    with tempfile.TemporaryDirectory() as tmp, mmengine_instances_restored():
        root = osp.join(tmp, 'scenes') + '/'
        num_train = batch * 2
        make = subprocess.run(
            [sys.executable, osp.join(ROOT, 'tools', 'make_scenes.py'), '--out', root,
             '--num-train', str(num_train), '--num-val', '2', '--size', str(size),
             '--min-scale', str(size // 4), '--max-scale', str(size // 2)],
            capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
        if make.returncode != 0:
            table.add('scenes distillation', setting,
                      f'make_scenes failed: {make.stderr.strip()[-300:]}', ok=False)
            return
        cfg = scenes_config(root, osp.join(tmp, 'work'), None, size, iters, batch)
        cfg.model.teacher.checkpoint = teacher_checkpoint(cfg, osp.join(tmp, 'teacher.pth'))
        if amp:
            setup_amp(cfg)
        prepare_launch(cfg, 'none')
        if device == 'cuda':
            torch.cuda.reset_peak_memory_stats()
        t0 = time.perf_counter()
        try:
            runner = Runner.from_cfg(cfg)
            runner.train()
        except Exception as e:  # noqa: BLE001
            traceback.print_exc()
            table.add('scenes distillation', setting, f'error: {type(e).__name__}: {e}'[:300],
                      ok=False)
            return
        seconds = time.perf_counter() - t0
        hub = runner.message_hub
        losses = {k[len('train/'):]: v.current() for k, v in hub.log_scalars.items()
                  if k.startswith('train/loss')}
        per_iter = hub.get_scalar('train/time').mean() if 'train/time' in hub.log_scalars \
            else float('nan')
        finite = bool(losses) and all(math.isfinite(v) for v in losses.values())
        diffkd = [k for k in losses if k.startswith('loss_fpn_')]
        memory = (f'{torch.cuda.max_memory_allocated() / 2**20:.0f} MiB'
                  if device == 'cuda' else '')
        table.add('scenes distillation (RetinaNet R-50 -> R-18, DiffKD on FPN)', setting,
                  f"{runner.iter} iters, loss {losses.get('loss', float('nan')):.3f}, "
                  f'{len(diffkd)} DiffKD parts, all finite: {finite}',
                  f'{per_iter:.2f} s/iter ({seconds:.0f} s in all)', memory,
                  ok=finite and runner.iter == iters and len(diffkd) == 10)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--device', default='cuda', choices=['cuda', 'cpu'])
    parser.add_argument('--dry-run', action='store_true',
                        help='tiny sizes, tests only collected, aot_eager compilation (CPU)')
    parser.add_argument('--cases', nargs='+', default=None,
                        help=f'benchmark cases (default: {" ".join(GPU_CASES)})')
    parser.add_argument('--compiled-cases', nargs='+', default=None,
                        help=f'cases also timed with compile=True (default: '
                             f'{" ".join(GPU_COMPILED)}; every case in a dry run)')
    parser.add_argument('--iters', type=int, default=5, help='timed benchmark passes')
    parser.add_argument('--skip', nargs='+', default=[],
                        choices=['tests', 'bench', 'sync', 'train'])
    parser.add_argument('--out', default=None, help='also write the table to this file')
    args = parser.parse_args(argv)
    if args.device == 'cuda' and not torch.cuda.is_available():
        parser.error('no CUDA device here; --device cpu --dry-run checks the script itself')
    if args.device == 'cuda':
        torch.backends.cuda.matmul.allow_tf32 = False  # float32 rows are float32
        torch.backends.cudnn.allow_tf32 = False
    else:
        torch.set_num_threads(1)
    compile_options = dict(backend='aot_eager') if args.dry_run else {}
    cases = args.cases or (DRY_CASES if args.dry_run else GPU_CASES)
    compiled_cases = args.compiled_cases or (cases if args.dry_run else GPU_COMPILED)
    where = torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'
    print(f'torch {torch.__version__}, {where}' + (' (dry run)' if args.dry_run else ''))

    table = Table()
    t0 = time.perf_counter()
    if 'tests' not in args.skip:
        check_cuda_tests(table, args.dry_run or args.device != 'cuda')
    if 'bench' not in args.skip:
        check_benchmark(table, args.device, cases, compiled_cases, compile_options, args.iters)
    if 'sync' not in args.skip:
        check_no_sync(table, args.device, compile_options)
    if 'train' not in args.skip:
        check_training(table, args.device, args.dry_run)
    text = (f'GPU check: torch {torch.__version__}, {where}, {time.perf_counter() - t0:.0f} s'
            + (' (dry run)' if args.dry_run else '') + '\n\n' + table.markdown())
    print('\n' + text)
    if args.out:
        from mmdiffkd.engine.metafile import write_atomic
        write_atomic(args.out, text + '\n')
    return 0 if table.ok else 1


if __name__ == '__main__':
    sys.exit(main())
