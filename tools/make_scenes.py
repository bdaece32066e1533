"""Generate (or reuse) the texture-scenes data set for the detection / segmentation demos.

    python tools/make_scenes.py --out data/scenes                       # 2000 train / 500 val
    python tools/make_scenes.py --out data/scenes_tiny --num-train 8 --num-val 4

Same settings -> byte-identical files; re-running with the settings already in ``--out`` does
nothing. See docs/scenes.md.
"""
import argparse
import os
import sys

# A checkout's tools use its own package, installed or not (dist_train.sh sets PYTHONPATH alike).
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from mmdiffkd.datasets.scenes import (DEFAULT_TEXTURES, FASHION_MNIST_ROOT,  # noqa: E402
                                      SceneSettings, generate_scenes)


def parse_args(argv=None):
    d = SceneSettings.__dataclass_fields__
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--out', default='data/scenes', help='output folder (default: data/scenes)')
    p.add_argument('--num-train', type=int, default=d['num_train'].default)
    p.add_argument('--num-val', type=int, default=d['num_val'].default)
    p.add_argument('--size', type=int, default=d['size'].default, help='image side in pixels')
    p.add_argument('--seed', type=int, default=d['seed'].default)
    p.add_argument('--min-items', type=int, default=d['min_items'].default)
    p.add_argument('--max-items', type=int, default=d['max_items'].default)
    p.add_argument('--min-scale', type=int, default=d['min_scale'].default,
                   help='smallest side of a pasted item, pixels')
    p.add_argument('--max-scale', type=int, default=d['max_scale'].default,
                   help='largest side of a pasted item, pixels')
    p.add_argument('--min-visible', type=float, default=d['min_visible'].default,
                   help='fraction of an item that must stay visible under later items')
    p.add_argument('--textures', nargs='+', default=list(DEFAULT_TEXTURES),
                   help='skimage.data textures to crop backgrounds from')
    p.add_argument('--fashion-mnist', default=FASHION_MNIST_ROOT,
                   help='folder with the gzipped Fashion-MNIST IDX files')
    p.add_argument('--force', action='store_true',
                   help='replace an --out folder that holds scenes made with other settings')
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    try:
        settings = SceneSettings(
            num_train=a.num_train, num_val=a.num_val, size=a.size, seed=a.seed,
            min_items=a.min_items, max_items=a.max_items, min_scale=a.min_scale,
            max_scale=a.max_scale, min_visible=a.min_visible, textures=tuple(a.textures))
        result = generate_scenes(a.out, settings, a.fashion_mnist, force=a.force)
    except (ValueError, FileExistsError, FileNotFoundError) as e:
        print(f'make_scenes: error: {e}', file=sys.stderr)
        return 2
    counts = ', '.join(f'{split}: {c["images"]} images / {c["instances"]} instances'
                       for split, c in result['counts'].items())
    if result['reused']:
        print(f'Reused the cached scenes in {result["out"]} (key {result["key"]}; {counts}).')
    else:
        print(f'Wrote scenes to {result["out"]} in {result["seconds"]:.1f} s '
              f'(key {result["key"]}; {counts}).')
    return 0


if __name__ == '__main__':
    sys.exit(main())
