"""The distiller wrapped by MMEngine's DDP on CPU (gloo, 2 processes): the teacher is not a DDP
parameter, every distillation parameter gets a gradient (no find_unused_parameters needed), and
the ranks stay in sync."""
import os
import sys

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import TESTS_DIR


def _worker(rank, world_size, init_file, ckpt, out_dir):
    sys.path.insert(0, TESTS_DIR)
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank,
                            world_size=world_size)
    from mmengine.model import MMDistributedDataParallel
    from mmengine.optim import build_optim_wrapper
    from tiny_models import toy_batch, toy_model

    import mmdiffkd.models  # noqa: F401
    from mmdiffkd.registry import MODELS
    torch.manual_seed(0)
    model = MODELS.build(dict(
        type='Distiller', student=toy_model(8),
        teacher=dict(config=toy_model(16), checkpoint=ckpt),
        distill_losses=dict(feat=dict(loss=dict(type='FitNets'), student='stage2'),
                            diffkd=dict(loss=dict(type='DiffKD', inference_steps=2),
                                        student='stage1')),
        dry_run=dict(input_size=(16, 16))))
    model.student.stage1[3].p = 0.0  # no dropout: ranks see different data, not different masks
    ddp = MMDistributedDataParallel(module=model, broadcast_buffers=False,
                                    find_unused_parameters=False)
    optim = build_optim_wrapper(ddp, dict(optimizer=dict(type='SGD', lr=0.1)))
    n_ddp = sum(1 for _ in ddp.parameters())
    for step in range(3):
        ddp.train_step(toy_batch(seed=10 * step + rank), optim)
    flat = torch.cat([p.detach().flatten() for p in model.parameters()])
    gathered = [torch.zeros_like(flat) for _ in range(world_size)]
    dist.all_gather(gathered, flat)
    torch.save(dict(same=all(torch.equal(gathered[0], g) for g in gathered), n_ddp=n_ddp,
                    n_model=sum(1 for _ in model.parameters()),
                    n_teacher=sum(1 for _ in model.teacher.parameters())),
               os.path.join(out_dir, f'rank{rank}.pt'))
    dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: ~30 s on the 2-core CPU box
@pytest.mark.skipif(not dist.is_gloo_available(), reason='torch built without gloo')
def test_ddp_two_processes(tmp_path):
    sys.path.insert(0, TESTS_DIR)
    from tiny_models import toy_teacher_checkpoint
    ckpt = toy_teacher_checkpoint(tmp_path / 'teacher.pth')
    mp.spawn(_worker, args=(2, str(tmp_path / 'init'), ckpt, str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        res = torch.load(tmp_path / f'rank{rank}.pt', weights_only=True)
        assert res['same'], 'ranks diverged'
        assert res['n_ddp'] == res['n_model'] and res['n_teacher'] > 0
