"""Pre-train the DiffKD modules of a distiller on the teacher's features, before distillation.

The diffusion model and the autoencoder learn from teacher features only (the diffusion and
reconstruction losses), and the teacher is frozen, so they can be trained before the student is
taught: the distillation run then starts from a denoiser that already knows the teacher's
features instead of pulling the student towards the output of an untrained one. This is an
addition to the paper (which trains everything jointly from the first step); ``docs/diffkd.md``
gives its measured effect. ``tools/pretrain_diffkd.py`` is the command; the distillation config
loads the result with ``model.init_distill_losses=<file>``.
"""
import os
import os.path as osp
import time
from typing import Callable, Dict, Iterable, List

import torch
from mmengine.logging import print_log

from mmdiffkd.models.diffkd import DiffKD

from .atomic import atomic_torch_save


def diffkd_modules(distiller) -> List[DiffKD]:
    """The distiller's DiffKD modules (each once, also when FPN levels share one)."""
    found, seen = [], set()
    for m in distiller.distill_losses.modules():
        if isinstance(m, DiffKD) and id(m) not in seen:
            seen.add(id(m))
            found.append(m)
    if not found:
        raise ValueError('The distiller has no DiffKD declaration in distill_losses: there is '
                         'nothing to pre-train (declare loss=dict(type="DiffKD", ...)).')
    return found


def pretrain_diffkd(distiller, batches: Iterable, iters: int, lr: float = 1e-3,
                    log_interval: int = 50,
                    log: Callable[[str], None] = lambda msg: print_log(msg, logger='current')
                    ) -> List[Dict[str, float]]:
    """Train the DiffKD modules' diffusion (and autoencoder) losses for ``iters`` iterations.

    ``batches`` is a (re-iterable) data loader of the distillation config's training data; each
    batch goes through the distiller's data preprocessor and the frozen teacher only. AdamW
    (``lr``, no weight decay) updates the DiffKD parameters that these losses reach (noise
    predictor, autoencoder); the student is not run. Returns the logged rows.
    """
    if not isinstance(iters, int) or iters < 1:
        raise ValueError(f'iters must be an int >= 1; got {iters!r}.')
    if not lr > 0:
        raise ValueError(f'lr must be > 0; got {lr!r}.')
    modules = diffkd_modules(distiller)
    params = [p for m in modules for p in m.parameters()]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    distiller.train()
    rows, it, start = [], 0, time.perf_counter()
    while it < iters:
        empty = True
        for batch in batches:
            empty = False
            data = distiller.data_preprocessor(batch, True)
            _, pairs = distiller.distill_pairs(data['inputs'], data['data_samples'],
                                               run_student=False)
            losses = {f'{p.key}.{k}': v for p in pairs if isinstance(p.module, DiffKD)
                      for k, v in p.module.teacher_losses(p.teacher).items()}
            total = sum(losses.values())
            if not torch.isfinite(total):
                raise FloatingPointError(f'DiffKD pre-training: the loss is {total.item()} at '
                                         f'iteration {it + 1} ({_fmt(losses)}); lower --lr.')
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            optimizer.step()
            it += 1
            if it % log_interval == 0 or it == iters:
                row = dict(iter=it, total=total.item(),
                           **{k: v.item() for k, v in losses.items()})
                rows.append(row)
                log(f'DiffKD pre-training iter {it}/{iters}: {_fmt(losses)} '
                    f'({time.perf_counter() - start:.0f} s)')
            if it >= iters:
                break
        if empty:
            raise ValueError('DiffKD pre-training: the data loader yielded no batch.')
    return rows


def _fmt(losses):
    return ', '.join(f'{k} {v.item():.4f}' for k, v in losses.items())


def save_distill_losses(distiller, path: str, meta: dict) -> str:
    """Write ``distill_losses.state_dict()`` (+ ``meta``) to ``path`` atomically."""
    state = {k: v.detach().cpu() for k, v in distiller.distill_losses.state_dict().items()}
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    atomic_torch_save(dict(state_dict=state, meta=meta), path)
    return path

