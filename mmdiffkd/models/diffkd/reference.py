"""Key mapping between the authors' DiffKD state_dict layout and ours.

Lets a checkpoint of the released classification code (its ``DiffKD`` module) load into
``mmdiffkd.DiffKD``, and the parity test replay the reference files. Each table maps a
reference module prefix to ours; the suffix (``weight``, ``bias``, ``running_mean``, ...) is
kept. Nothing depends on channel counts, shapes or step counts.
"""
from typing import Dict, List, Tuple

from torch import Tensor

# (reference prefix, our prefix); kernel-3 nets: Bottleneck = Sequential at .block
_BOTTLENECK = [('block.0', 'conv1'), ('block.1', 'bn1'), ('block.3', 'conv2'),
               ('block.4', 'bn2'), ('block.6', 'conv3'), ('block.7', 'bn3')]

COMMON = [
    ('trans', 'align'),
    ('model.time_embedding', 'noise_predictor.time_embed'),
    ('noise_adapter.pred', 'noise_adapter.fc'),
    ('proj.0', 'proj_conv'),
    ('proj.1', 'proj_bn'),
    ('ae.encoder.0', 'autoencoder.enc_conv'),
    ('ae.encoder.1', 'autoencoder.enc_bn'),
    ('ae.decoder.0', 'autoencoder.dec_conv'),
]

KERNEL3 = (
    [(f'model.pred.0.{r}', f'noise_predictor.block1.{o}') for r, o in _BOTTLENECK]
    + [(f'model.pred.1.{r}', f'noise_predictor.block2.{o}') for r, o in _BOTTLENECK]
    + [('model.pred.2', 'noise_predictor.out_conv'), ('model.pred.3', 'noise_predictor.out_bn')]
    + [(f'noise_adapter.feat.0.{r}', f'noise_adapter.block.{o}') for r, o in _BOTTLENECK])

KERNEL1 = [
    ('model.pred.0', 'noise_predictor.conv1'), ('model.pred.1', 'noise_predictor.bn1'),
    ('model.pred.3', 'noise_predictor.conv2'), ('model.pred.4', 'noise_predictor.bn2'),
    ('model.pred.5', 'noise_predictor.conv3'), ('model.pred.6', 'noise_predictor.bn3'),
    ('model.pred.8', 'noise_predictor.conv4'),
    ('noise_adapter.feat.0', 'noise_adapter.conv1'), ('noise_adapter.feat.1', 'noise_adapter.bn1'),
    ('noise_adapter.feat.3', 'noise_adapter.conv2'), ('noise_adapter.feat.4', 'noise_adapter.bn2'),
]


def key_table(kernel_size: int) -> List[Tuple[str, str]]:
    """The (reference prefix, our prefix) table for one kernel size."""
    if kernel_size not in (1, 3):
        raise ValueError(f'kernel_size must be 1 or 3; got {kernel_size!r}.')
    return COMMON + (KERNEL3 if kernel_size == 3 else KERNEL1)


def convert_key(key: str, kernel_size: int, to_reference: bool = False) -> str:
    """Map one key; raises KeyError naming it when no prefix of the table matches."""
    for ref, ours in key_table(kernel_size):
        src, dst = (ours, ref) if to_reference else (ref, ours)
        if key.startswith(src + '.'):
            return dst + key[len(src):]
    raise KeyError(f'{key!r} matches no entry of the DiffKD kernel_size={kernel_size} key table '
                   f'({"ours" if to_reference else "reference"} layout).')


def from_reference(state_dict: Dict[str, Tensor], kernel_size: int) -> Dict[str, Tensor]:
    """A reference-layout state_dict (or gradient dict) in our layout."""
    return {convert_key(k, kernel_size): v for k, v in state_dict.items()}


def to_reference(state_dict: Dict[str, Tensor], kernel_size: int) -> Dict[str, Tensor]:
    """Our state_dict in the reference layout."""
    return {convert_key(k, kernel_size, to_reference=True): v for k, v in state_dict.items()}
