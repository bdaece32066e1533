"""Un-gzip Debian's Fashion-MNIST into the folder mmpretrain's FashionMNIST reads; never downloads.

    python tools/prepare_fashion_mnist.py                      # -> data/fashion_mnist
    python tools/prepare_fashion_mnist.py --data-root DIR --source /path/with/idx/files
"""
import argparse
import os.path as osp
import sys

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
if REPO not in sys.path:  # run from a checkout without `pip install -e .`
    sys.path.insert(0, REPO)


def main(argv=None):
    from mmdiffkd.datasets.fashion_mnist import DEBIAN_DIR, FILES, prepare_fashion_mnist
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--data-root', default=osp.join(REPO, 'data', 'fashion_mnist'))
    parser.add_argument('--source', default=DEBIAN_DIR,
                        help='folder with the four IDX files, .gz or not (default: Debian\'s)')
    args = parser.parse_args(argv)
    try:
        root = prepare_fashion_mnist(args.data_root, args.source)
    except (FileNotFoundError, ValueError) as err:
        print(f'error: {err}', file=sys.stderr)
        return 1
    for name, shape in FILES.items():
        print(f'{osp.join(root, name)}  {shape}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
