"""Record transforms: small, named reshapes of one side's record, declared in the config.

A declaration side may list transforms, applied in order to the recorded tensor (after
``index``) before the loss sees it::

    student=dict(path='backbone.ln1',
                 transform=[dict(type='drop_tokens', n=2), 'mean_tokens'])

They are what transformer features need to meet a CNN's or a teacher's layout: drop the class
and distillation tokens, mean-pool the patch tokens, turn tokens into a map or back. Each one is
a frozen object that checks its input and names the fix when it does not fit; the distiller
applies them to the dry-forward records at build time, so a record they cannot take is an error
before training starts.

| name | input -> output |
|---|---|
| ``drop_tokens(n=1)`` | (B, N, C) -> (B, N - n, C): drop the n leading tokens |
| ``mean_tokens`` | (B, N, C) -> (B, C): mean over the tokens |
| ``tokens_to_map(hw=None)`` | (B, N, C) -> (B, C, H, W); ``hw`` (H, W), else a square N |
| ``map_to_tokens`` | (B, C, H, W) -> (B, H * W, C) |
"""
from dataclasses import dataclass
from typing import ClassVar, Optional, Tuple

from torch import Tensor

from ..losses._utils import token_grid


def _need_tokens(name, x):
    if x.dim() != 3:
        hint = " (a (B, C, H, W) map: add 'map_to_tokens' before it)" if x.dim() == 4 else ''
        raise ValueError(f'{name} takes (B, N, C) tokens; got shape {tuple(x.shape)}{hint}.')


@dataclass(frozen=True)
class DropTokens:
    """(B, N, C) -> (B, N - n, C): drop the ``n`` leading tokens (ViT's class token: n=1;
    DeiT's class and distillation tokens: n=2)."""

    name: ClassVar[str] = 'drop_tokens'
    n: int = 1

    def __post_init__(self):
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            raise ValueError(f'drop_tokens: n must be an int >= 1; got {self.n!r}.')

    def __call__(self, x: Tensor) -> Tensor:
        _need_tokens(self.name, x)
        if x.shape[1] <= self.n:
            raise ValueError(f'drop_tokens(n={self.n}) needs more than {self.n} tokens; got '
                             f'shape {tuple(x.shape)}.')
        return x[:, self.n:]

    def __str__(self):
        return f'drop_tokens(n={self.n})'


@dataclass(frozen=True)
class MeanTokens:
    """(B, N, C) -> (B, C): the mean over the tokens (a pooled feature)."""

    name: ClassVar[str] = 'mean_tokens'

    def __call__(self, x: Tensor) -> Tensor:
        _need_tokens(self.name, x)
        return x.mean(dim=1)

    def __str__(self):
        return self.name


@dataclass(frozen=True)
class TokensToMap:
    """(B, N, C) -> (B, C, H, W) with ``hw=(H, W)``, or a square grid when ``hw`` is None."""

    name: ClassVar[str] = 'tokens_to_map'
    hw: Optional[Tuple[int, int]] = None

    def __post_init__(self):
        if self.hw is not None:
            hw = self.hw
            if (not isinstance(hw, (tuple, list)) or len(hw) != 2
                    or not all(isinstance(v, int) and v > 0 for v in hw)):
                raise ValueError(f'tokens_to_map: hw must be a pair of positive ints (H, W); '
                                 f'got {hw!r}.')
            object.__setattr__(self, 'hw', tuple(hw))

    def __call__(self, x: Tensor) -> Tensor:
        _need_tokens(self.name, x)
        b, n, c = x.shape
        try:
            h, w = token_grid(n, self.hw)
        except ValueError as err:
            raise ValueError(f'tokens_to_map: {err} Set tokens_to_map hw=(H, W), or put '
                             f"dict(type='drop_tokens', n=...) before it.") from None
        return x.transpose(1, 2).reshape(b, c, h, w)

    def __str__(self):
        return self.name if self.hw is None else f'tokens_to_map(hw={self.hw})'


@dataclass(frozen=True)
class MapToTokens:
    """(B, C, H, W) -> (B, H * W, C), positions in row-major order."""

    name: ClassVar[str] = 'map_to_tokens'

    def __call__(self, x: Tensor) -> Tensor:
        if x.dim() != 4:
            raise ValueError(f'map_to_tokens takes (B, C, H, W) maps; got shape '
                             f'{tuple(x.shape)}.')
        return x.flatten(2).transpose(1, 2)

    def __str__(self):
        return self.name


TRANSFORMS = {t.name: t for t in (DropTokens, MeanTokens, TokensToMap, MapToTokens)}


def build_transforms(spec, where: str) -> tuple:
    """``spec`` (None, a name, ``dict(type=name, **args)`` or a list of them) -> transforms."""
    if spec is None:
        return ()
    items = spec if isinstance(spec, (list, tuple)) else [spec]
    out = []
    for item in items:
        if isinstance(item, str):
            item = dict(type=item)
        if not isinstance(item, dict) or 'type' not in item:
            raise TypeError(f'{where}.transform: each transform is a name or dict(type=name, '
                            f'...); got {item!r}. Valid names: {sorted(TRANSFORMS)}.')
        args = dict(item)
        name = args.pop('type')
        if name not in TRANSFORMS:
            raise KeyError(f'{where}.transform: unknown transform {name!r}; valid: '
                           f'{sorted(TRANSFORMS)}.')
        try:
            out.append(TRANSFORMS[name](**args))
        except TypeError as err:
            raise TypeError(f'{where}.transform {name}: {err}') from None
    return tuple(out)
