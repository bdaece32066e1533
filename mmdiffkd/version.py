"""Version of mmdiffkd and of the OpenMMLab stack it was made for."""

__version__ = '0.1.0'

# Versions this release is built and tested with (tools/setup.sh installs them).
TESTED_WITH = {
    'torch': '2.14.1',
    'mmcv': '2.1.0',
    'mmengine': '0.10.7',
    'mmdet': '3.3.0',
    'mmsegmentation': '1.2.2',
    'mmpretrain': '1.2.0',
}

# Accepted ranges [low, high): outside them importing mmdiffkd warns (env_check.py), and
# refuses with MMDIFFKD_STRICT_ENV=1 (as CI runs).
SUPPORTED = {
    'mmcv': ('2.0.0', '2.2.0'),
    'mmengine': ('0.10.0', '1.0.0'),
    'mmdet': ('3.0.0', '3.4.0'),
    'mmsegmentation': ('1.0.0', '1.3.0'),
    'mmpretrain': ('1.0.0', '1.3.0'),
}
