"""Write the student of a distiller checkpoint as an ordinary, publishable task checkpoint.

    python tools/export_student.py IN_CKPT OUT_FILE [--config STUDENT_CONFIG] [--no-hash]

``OUT_FILE`` is ``name.pth``; the file written is ``name-<first 8 hex of its sha256>.pth``
(OpenMMLab's publish convention) and its path is printed. With ``--config`` (the student's own
config, e.g. the mmdet config the distillation config was built on) the weights are checked to
load strictly into that model before anything is written. The input is loaded with
``torch.load(weights_only=True)``.
"""
import argparse
import os.path as osp
import sys

# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmdiffkd import install_safe_loaders  # noqa: E402
from mmdiffkd.engine.export import export_student  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Export the student of a distiller checkpoint.')
    parser.add_argument('in_file', help='distiller checkpoint (path or URL)')
    parser.add_argument('out_file', help='output name.pth (a sha256 suffix is added)')
    parser.add_argument('--config', help="the student's own config: check the export loads "
                                         'into it strictly, and store it in meta')
    parser.add_argument('--no-hash', action='store_true', help='do not add the sha256 suffix')
    return parser.parse_args(argv)


def main(argv=None):
    install_safe_loaders()
    args = parse_args(argv)
    final = export_student(args.in_file, args.out_file, config=args.config,
                           hash_suffix=not args.no_hash)
    print(final)
    return final


if __name__ == '__main__':
    main()
