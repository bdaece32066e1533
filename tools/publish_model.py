"""Publish a finished work dir as a model-zoo release: checkpoint, config, log and metafile entry.

    python tools/publish_model.py WORK_DIR [--out release] [--checkpoint CKPT] [--config CFG]
        [--name NAME] [--metric KEY ...] [--teacher-work-dir DIR] [--student-work-dir DIR]
        [--collection METHOD] [--dataset NAME] [--task NAME] [--url-prefix URL]
        [--metafile configs/<folder>/metafile.yml] [--overwrite]

Writes ``<out>/<name>/``: ``<name>_<YYYYMMDD>-<sha256[:8]>.pth`` (the student, exported with
``mmdiffkd.engine.export_student`` and loaded strictly into the config next to it; a plain run
is exported whole), ``<name>.py`` (the student's config, standalone), the training log and
scalars, and ``metafile.yml`` (the model-index entry; metrics read from the log). With
``--metafile`` the entry is added to that metafile too; then regenerate the zoo page with
``python tools/model_zoo.py``. Nothing is left behind on an error. See docs/model_zoo.md.
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, REPO)

from mmdiffkd import install_safe_loaders  # noqa: E402
from mmdiffkd.engine.metafile import dump_yaml  # noqa: E402
from mmdiffkd.engine.publish import PublishError, publish  # noqa: E402
from mmdiffkd.utils import CheckpointMismatchError  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description='Publish a finished work dir as a release.')
    parser.add_argument('work_dir', help='the finished run\'s work dir')
    parser.add_argument('--out', default=osp.join(REPO, 'release'),
                        help='release root (default: release/ of this checkout, git-ignored)')
    parser.add_argument('--checkpoint', help='default: the one last_checkpoint names')
    parser.add_argument('--config', help='the training config file (default: configs/**/<name '
                                         'of the config the Runner dumped>)')
    parser.add_argument('--name', help='model name (default: the training config\'s name)')
    parser.add_argument('--metric', action='append', dest='metrics',
                        help='log key of a metric, repeatable; the first is the main one '
                             '(default: accuracy/top1, coco/bbox_mAP or mIoU by task)')
    parser.add_argument('--teacher-work-dir', help='the teacher\'s work dir, for its metric '
                        '(not needed when the run used mmdiffkd.TeacherValHook)')
    parser.add_argument('--student-work-dir', help='work dir of the student trained alone, for '
                                                   'its metric (the gap closed)')
    parser.add_argument('--collection', help='the method (default: from the loss types)')
    parser.add_argument('--dataset', help='default: from the config folder')
    parser.add_argument('--task', help='default: from the model\'s scope')
    parser.add_argument('--student-config', help='publish this student config instead of the '
                                                 'one derived from the run\'s config')
    parser.add_argument('--url-prefix', help='where the release files will be downloaded from '
                                             '(default: the release folder, relative)')
    parser.add_argument('--metafile', help='also add the entry to this metafile')
    parser.add_argument('--world-size', type=int, help='processes the run used (default: the '
                                                       'log\'s "GPU number")')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace a release folder and metafile entry of the same name')
    return parser.parse_args(argv)


def main(argv=None):
    install_safe_loaders()
    args = parse_args(argv)
    result = publish(
        args.work_dir, args.out, repo=REPO, checkpoint=args.checkpoint, config=args.config,
        name=args.name, metrics=args.metrics, task=args.task, dataset=args.dataset,
        collection=args.collection, teacher_work_dir=args.teacher_work_dir,
        student_work_dir=args.student_work_dir, student_config=args.student_config,
        url_prefix=args.url_prefix, metafile=args.metafile, world_size=args.world_size,
        overwrite=args.overwrite)
    print(f'published {result["folder"]}')
    print(dump_yaml({'Models': [result['entry']]}), end='')
    if args.metafile:
        print(f'added to {args.metafile}; now run: python tools/model_zoo.py')
    return result


if __name__ == '__main__':
    try:
        main()
    except (PublishError, CheckpointMismatchError) as e:
        sys.exit(f'publish_model.py: error: {e}')
