"""Parity of mmdiffkd's DiffKD with the authors' module, replayed from recorded reference files.

Every ``*.pt`` in ``tests/data/golden/diffkd`` (shipped with the repository; its README describes
the recording) and, when set, in ``$MMDIFFKD_GOLDEN_DIR`` (extra cases) holds one training-mode
forward + backward of the reference ``DiffKD``: weights,
inputs, random draws, outputs, gradients and BatchNorm statistics after the pass. We build our
module from the file's ``case``, map the reference keys onto ours with the explicit table of
``mmdiffkd.models.diffkd.reference``, replay the draws and compare everything to 1e-5.
Nothing here is specific to the shapes, channel counts or step counts of the shipped files.
"""
import os
import re
from pathlib import Path

import pytest
import torch
from helpers import DATA_DIR

from mmdiffkd.models.diffkd import DiffKD
from mmdiffkd.models.diffkd.reference import from_reference, key_table, to_reference

DEFAULT_DIR = Path(DATA_DIR) / 'golden' / 'diffkd'
EXTRA_DIR = os.environ.get('MMDIFFKD_GOLDEN_DIR')
FILES = sorted(DEFAULT_DIR.glob('*.pt')) + (sorted(Path(EXTRA_DIR).glob('*.pt'))
                                            if EXTRA_DIR else [])
TOL = dict(rtol=1e-5, atol=1e-5)

# Reference state_dict layout as the golden README states it (module prefixes, any index).
REFERENCE_LAYOUT = {
    3: [r'trans', r'model\.time_embedding', r'model\.pred\.[01]\.block\.[013467]',
        r'model\.pred\.[23]', r'noise_adapter\.feat\.0\.block\.[013467]', r'noise_adapter\.pred',
        r'proj\.[01]', r'ae\.encoder\.[01]', r'ae\.decoder\.0'],
    1: [r'trans', r'model\.time_embedding', r'model\.pred\.[0134568]',
        r'noise_adapter\.feat\.[0134]', r'noise_adapter\.pred', r'proj\.[01]'],
}
SUFFIX = r'\.(weight|bias|running_mean|running_var|num_batches_tracked)'


def test_golden_cases_are_there():
    """The shipped cases always run (a clone has them); an extra directory must not be empty."""
    assert {p.name for p in DEFAULT_DIR.glob('*.pt')} >= {'feature_ae.pt', 'feature_noae.pt',
                                                         'logits.pt'}
    if EXTRA_DIR:
        assert sorted(Path(EXTRA_DIR).glob('*.pt')), f'no *.pt reference files in {EXTRA_DIR}'


def build_from_case(case):
    """Our module with the settings recorded in a reference file."""
    loss = case['distill_loss']
    if loss == 'mse_mean':
        distill = dict(distill_loss='mse')
    else:
        m = re.fullmatch(r'kl_tau([0-9.]+)_batchmean', loss)
        assert m, f'unknown distill_loss {loss!r} in the reference case'
        distill = dict(distill_loss='kl', tau=float(m.group(1)))
    return DiffKD(case['student_channels'], case['teacher_channels'],
                  kernel_size=case['kernel_size'], use_ae=case['use_ae'],
                  ae_channels=case.get('ae_channels') if case['use_ae'] else None,
                  inference_steps=case['inference_steps'],
                  num_train_timesteps=case['num_train_timesteps'], **distill)


def _load(path):
    return torch.load(path, weights_only=True)


def _replay_draws(monkeypatch, draws):
    """Serve the recorded draws, in order, to torch.randn / torch.randint; check kind & shape."""
    queue = list(draws)
    real = {'randn': torch.randn, 'randint': torch.randint}

    def fake(kind):
        def draw(*args, **kwargs):
            assert queue, f'the module drew an extra {kind}'
            want_kind, value = queue.pop(0)
            assert want_kind == kind, f'the module drew {kind} where the reference drew ' \
                                      f'{want_kind}'
            shape = args[-1] if kind == 'randint' else args[0]
            assert tuple(shape) == tuple(value.shape), (kind, shape, value.shape)
            return value.clone()
        return draw

    for kind in real:
        monkeypatch.setattr(torch, kind, fake(kind))
    return queue


@pytest.mark.parametrize('replay', ['kwargs', 'rng'])
@pytest.mark.parametrize('path', FILES, ids=[p.stem for p in FILES])
def test_parity(path, replay, monkeypatch):
    ref = _load(path)
    case = ref['case']
    kernel_size = case['kernel_size']
    module = build_from_case(case).train()

    # the explicit key table maps the reference layout onto ours, one-to-one, shapes equal
    ours = module.state_dict()
    mapped = from_reference(ref['state_dict'], kernel_size)
    assert set(mapped) == set(ours)
    for key, value in mapped.items():
        assert value.shape == ours[key].shape, key
    module.load_state_dict(mapped)

    student = ref['student_feat'].clone().requires_grad_(True)
    teacher = ref['teacher_feat'].clone()
    kinds = [kind for kind, _ in ref['draws']]
    assert kinds == ['randn', 'randn', 'randint'], kinds
    if replay == 'kwargs':
        (_, noise), (_, diffusion_noise), (_, timesteps) = ref['draws']
        losses, extras = module(student, teacher, noise=noise, diffusion_noise=diffusion_noise,
                                timesteps=timesteps, return_denoised=True)
    else:  # the module's own draws, intercepted: same order, kinds and shapes as the reference
        left = _replay_draws(monkeypatch, ref['draws'])
        losses, extras = module(student, teacher, return_denoised=True)
        monkeypatch.undo()
        assert left == [], 'the module drew fewer random tensors than the reference'

    out = ref['outputs']
    total = sum(losses.values())
    total.backward()
    refined = out['refined']
    torch.testing.assert_close(extras['denoised'].reshape(refined.shape), refined, **TOL)
    torch.testing.assert_close(extras['target'], out['teacher_target'], **TOL)
    torch.testing.assert_close(losses['diffusion'], out['ddim_loss'], **TOL)
    torch.testing.assert_close(losses['distill'], out['distill_loss'], **TOL)
    if out['rec_loss'] is None:
        assert 'ae' not in losses
    else:
        torch.testing.assert_close(losses['ae'], out['rec_loss'], **TOL)
    torch.testing.assert_close(total, out['total'], **TOL)

    torch.testing.assert_close(student.grad, ref['grads']['student_feat'], **TOL)
    ref_grads = from_reference(ref['grads']['params'], kernel_size)
    params = dict(module.named_parameters())
    assert set(ref_grads) == set(params)
    for name, grad in ref_grads.items():
        assert params[name].grad is not None, name
        torch.testing.assert_close(params[name].grad, grad, **TOL, msg=lambda m: f'{name}: {m}')

    after = from_reference(ref['state_dict_after'], kernel_size)
    state = module.state_dict()
    assert set(after) == set(state)
    for name, value in after.items():
        torch.testing.assert_close(state[name], value, **TOL, msg=lambda m: f'{name}: {m}')


CONFIGS = [dict(kernel_size=3, use_ae=True, ae_channels=24), dict(kernel_size=3),
           dict(kernel_size=1, inference_steps=7)]


@pytest.mark.parametrize('cfg', CONFIGS)
def test_key_table_covers_any_shape(cfg):
    """Our layout -> reference layout -> ours is the identity and hits only README prefixes."""
    module = DiffKD(40, 48, **cfg)
    state = module.state_dict()
    ref = to_reference(state, cfg['kernel_size'])
    patterns = REFERENCE_LAYOUT[cfg['kernel_size']]
    for key in ref:
        assert any(re.fullmatch(p + SUFFIX, key) for p in patterns), key
    back = from_reference(ref, cfg['kernel_size'])
    assert back.keys() == state.keys()
    # every table row is used by a module that has it (no stale rows besides the autoencoder)
    used = {r for r, _ in key_table(cfg['kernel_size']) if any(k.startswith(r + '.') for k in ref)}
    unused = {r for r, _ in key_table(cfg['kernel_size'])} - used
    assert unused <= ({'ae.encoder.0', 'ae.encoder.1', 'ae.decoder.0'} if not cfg.get('use_ae')
                      else set())


def test_unknown_reference_key_is_named():
    with pytest.raises(KeyError, match='model.pred.9.weight'):
        from_reference({'model.pred.9.weight': torch.zeros(1)}, kernel_size=1)
