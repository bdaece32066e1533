from pathlib import Path

from setuptools import find_packages, setup


def read_requirements(name):
    lines = Path(__file__).parent.joinpath('requirements', name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


version = {}
exec(Path(__file__).parent.joinpath('mmdiffkd', 'version.py').read_text(), version)

setup(
    name='mmdiffkd',
    version=version['__version__'],
    description='Knowledge distillation (DiffKD, VkD, RTK, AEKT and baselines) for OpenMMLab',
    long_description=Path(__file__).parent.joinpath('README.md').read_text(),
    long_description_content_type='text/markdown',
    packages=find_packages(exclude=('configs', 'tools', 'tests', 'docs')),
    python_requires='>=3.9',
    # mmcv/mmengine/mmdet/mmseg/mmpretrain are checked at import (mmdiffkd/env_check.py)
    # rather than pinned here: pip cannot build mmcv with ops for torch 2.14 by itself.
    install_requires=read_requirements('runtime.txt'),
    extras_require={'tests': read_requirements('tests.txt')},
    include_package_data=True,
    zip_safe=False,
)
