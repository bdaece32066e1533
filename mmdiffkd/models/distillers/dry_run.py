"""The dry forward: one fake batch through a model at build time, to see what it records.

Losses are built before MMEngine builds the optimizer and DDP, so their shapes (channel counts,
kernel sizes) must be known in ``Distiller.__init__``: each model runs once on a random
``(1, C, H, W)`` batch, in eval mode and under ``no_grad`` (BatchNorm statistics untouched),
trying the modes below until one reaches every recorded module.
"""
import torch
import torch.nn as nn
from mmengine.registry import DefaultScope
from mmengine.structures import BaseDataElement

DRY_RUN_DEFAULTS = dict(input_size=(224, 224), in_channels=None)


def check_dry_run_cfg(dry_run) -> dict:
    cfg = dict(DRY_RUN_DEFAULTS)
    unknown = set(dry_run or {}) - set(cfg)
    if unknown:
        raise KeyError(f'dry_run has unknown keys {sorted(unknown)}; valid: {sorted(cfg)}.')
    cfg.update(dry_run or {})
    return cfg


def input_channels(data_preprocessor, model: nn.Module) -> int:
    """C of the fake batch: the preprocessor's mean, else the first convolution's input, else 3."""
    mean = getattr(data_preprocessor, 'mean', None)
    if torch.is_tensor(mean) and mean.numel() > 0:
        return mean.numel()
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Conv3d)):
            return m.in_channels
    return 3


def fake_batch(input_size, in_channels: int) -> torch.Tensor:
    h, w = input_size
    return torch.randn(1, in_channels, h, w, generator=torch.Generator().manual_seed(0))


@torch.no_grad()
def dry_forward(role: str, model: nn.Module, records, inputs: torch.Tensor, scope) -> str:
    """Run ``model`` on ``inputs`` until a forward reaches every recorded module.

    Tried in order: ``mode='tensor'`` without data samples, with one fake sample carrying image
    metas (two-stage detectors need them), then ``mode='predict'``: mmdet's and mmseg's tensor
    mode call ``head.forward`` directly, which skips hooks on the head module itself, while their
    predict mode calls the head. Returns the mode that worked (the teacher runs in it at every
    step); the records of that forward stay in ``records`` until the caller clears them. The
    model's train / eval flags are restored.
    """
    flags = {m: m.training for m in model.modules()}
    model.eval()
    inputs = inputs.to(next(iter(model.parameters()), inputs).device)
    h, w = inputs.shape[-2:]
    meta = dict(img_shape=(h, w), ori_shape=(h, w), pad_shape=(h, w), batch_input_shape=(h, w),
                scale_factor=(1.0, 1.0))
    fake = [BaseDataElement(metainfo=meta)]
    errors = []
    try:
        for mode, samples in (('tensor', None), ('tensor', fake), ('predict', fake)):
            # No early stop: a full forward sees how often each module runs (call=...).
            with records.recording(stop_early=False):
                try:
                    with DefaultScope.overwrite_default_scope(scope):
                        model(inputs, samples, mode=mode)
                except Exception as err:  # noqa: BLE001 - the model's own complaint
                    errors.append(f'mode={mode!r}, data_samples='
                                  f'{"None" if samples is None else "[metas]"}: '
                                  f'{type(err).__name__}: {err}')
                    continue
            if not records.missing():
                return mode
            errors.append(f'mode={mode!r}: ran, but never reached {records.missing()}')
    finally:
        for m, training in flags.items():
            m.training = training
    raise RuntimeError(f'The dry forward of the {role} (a {tuple(inputs.shape)} batch) did not '
                       f'reach every recorded module. If a model rejects the input, set '
                       f'dry_run=dict(input_size=..., in_channels=...) (now {(h, w)}) to one it '
                       f'accepts; if a module never runs, record another one. Attempts: {errors}')
