"""Check, without importing them, that the OpenMMLab packages match this release.

mmcv and mmengine are required; mmdet, mmsegmentation and mmpretrain are optional
(a classification-only user need not install mmdet) but, when present, must be in range.
mmcv must carry its compiled ops (``mmcv._ext``): mmcv-lite or a source install made
with ``MMCV_WITH_OPS=0`` breaks mmdet's RoI ops and NMS at run time, so we fail early.
"""
import importlib.metadata
import importlib.util
import os

from .version import SUPPORTED, TESTED_WITH

REQUIRED = ('mmcv', 'mmengine')
FIX = ('Fix: run `bash tools/setup.sh` from the mmdiffkd checkout (it builds mmcv with ops), '
       'or install the versions listed above. Set MMDIFFKD_SKIP_VERSION_CHECK=1 to import anyway.')


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


def check_environment():
    """Raise ImportError naming every mismatch and how to fix it."""
    if os.environ.get('MMDIFFKD_SKIP_VERSION_CHECK') == '1':
        return
    problems = find_problems()
    if problems:
        raise ImportError('mmdiffkd cannot run with this environment:\n  - ' +
                          '\n  - '.join(problems) + '\n' + FIX)
