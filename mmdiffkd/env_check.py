"""Check, without importing them, that the OpenMMLab packages match this release.

mmcv and mmengine are required; mmdet, mmsegmentation and mmpretrain are optional
(a classification-only user need not install mmdet) but, when present, should be in range.
mmcv should carry its compiled ops (``mmcv._ext``): mmcv-lite or a source install made
with ``MMCV_WITH_OPS=0`` breaks mmdet's RoI ops and NMS at run time.

``import mmdiffkd`` runs :func:`check_environment`: a mismatch is an
:class:`EnvironmentWarning` naming each problem and the versions this release was tested with,
and the import goes on (a newer patch release usually works; the warning says what to suspect
when something fails). With ``MMDIFFKD_STRICT_ENV=1`` (set by ``tools/run_tests.sh``, so CI is
strict) a mismatch is an ``ImportError`` instead.
"""
import importlib.metadata
import importlib.util
import os
import warnings

from .version import SUPPORTED, TESTED_WITH

REQUIRED = ('mmcv', 'mmengine')
STRICT_VARIABLE = 'MMDIFFKD_STRICT_ENV'
FIX = ('Fix: run `bash tools/setup.sh` from the mmdiffkd checkout (it builds mmcv with ops), '
       'or install the versions listed above.')


class EnvironmentWarning(UserWarning):
    """The installed OpenMMLab stack differs from the one this release was tested with."""


def _parse(version):
    parts = []
    for piece in version.split('+')[0].split('.')[:3]:
        digits = ''.join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    return tuple(parts + [0] * (3 - len(parts)))


def installed_version(dist):
    """Installed version of a distribution, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def has_mmcv_ops():
    return importlib.util.find_spec('mmcv._ext') is not None


def find_problems(version_of=None, ops_present=None):
    """Return a list of human-readable problems (empty when all is well)."""
    version_of = version_of or installed_version
    ops_present = ops_present or has_mmcv_ops
    problems = []
    for dist, (low, high) in SUPPORTED.items():
        found = version_of(dist)
        wanted = f'{dist}>={low},<{high} (tested: {dist}=={TESTED_WITH[dist]})'
        if found is None:
            if dist in REQUIRED:
                problems.append(f'{dist} is not installed; need {wanted}.')
            continue
        if not _parse(low) <= _parse(found) < _parse(high):
            problems.append(f'{dist}=={found} is installed; need {wanted}.')
    if version_of('mmcv-lite') is not None and version_of('mmcv') is None:
        problems.append('mmcv-lite is installed; mmdiffkd needs the full mmcv with compiled ops.')
    elif version_of('mmcv') is not None and not ops_present():
        problems.append('mmcv is installed without its compiled ops (mmcv._ext is missing); '
                        'rebuild it with MMCV_WITH_OPS=1.')
    return problems


def tested_versions():
    """``'torch==2.14.1, mmcv==2.1.0, ...'``: the stack this release was tested with."""
    return ', '.join(f'{dist}=={version}' for dist, version in TESTED_WITH.items())


def check_environment(strict=None):
    """Warn (:class:`EnvironmentWarning`) naming every mismatch, the tested versions and the
    fix; with ``strict`` (default: ``MMDIFFKD_STRICT_ENV=1`` in the environment) raise
    ``ImportError`` instead. Returns the problems found (empty when all is well)."""
    if strict is None:
        strict = os.environ.get(STRICT_VARIABLE) == '1'
    problems = find_problems()
    if problems:
        details = (' an environment it was not tested with:\n  - ' + '\n  - '.join(problems) +
                   f'\nTested with: {tested_versions()}.\n' + FIX)
        if strict:
            raise ImportError(f'mmdiffkd refuses ({STRICT_VARIABLE}=1){details}')
        warnings.warn(f'mmdiffkd imports, but runs in{details} Set {STRICT_VARIABLE}=1 to make '
                      'this an error.', EnvironmentWarning, stacklevel=2)
    return problems
