"""The repository's model index, its metafiles and docs/model_zoo.md agree.

model-index.yml must validate with Papers with Code's ``model-index`` package, name one
collection per method with its paper, import a metafile for every config folder; every entry
must be consistent (weights named after their sha256, config present); docs/model_zoo.md must
be exactly what tools/model_zoo.py renders from them (run ``python tools/model_zoo.py`` after
publishing). End-to-end publishing is tested in test_publish_model.py.
"""
import copy
import glob
import os.path as osp

import modelindex
import pytest
import yaml
from helpers import REPO, load_tool

from mmdiffkd.engine.metafile import load_index, metafile_with_model

METHODS = ['DiffKD', 'VkD', 'RTK', 'AEKT', 'KD', 'DIST', 'DKD', 'FitNets', 'CWD', 'PKD']
INDEX = osp.join(REPO, 'model-index.yml')


def test_model_index_validates_and_names_every_method():
    index = modelindex.load(INDEX)
    assert index.check(silent=True) == []
    assert [c.name for c in index.collections] == METHODS
    for col in index.collections:
        assert col.paper['URL'].startswith('https://arxiv.org/abs/'), col.name
        assert col.paper['Title']
    papers = {c.name: c.paper for c in index.collections}
    assert papers['DiffKD'] == {'Title': 'Knowledge Diffusion for Distillation',
                                'URL': 'https://arxiv.org/abs/2305.15712'}


def test_every_config_folder_has_an_imported_metafile():
    folders = sorted({osp.dirname(p) for p in glob.glob(osp.join(REPO, 'configs', '*', '*.py'))})
    imported = {osp.dirname(p) for p in load_index(INDEX)['metafiles']}
    assert folders and set(folders) == imported


def test_metafiles_name_no_machine_path():
    for path in [INDEX] + load_index(INDEX)['metafiles']:
        text = open(path).read()
        for bad in ('/work/', '/tmp/', '/root/', '/home/'):
            assert bad not in text, (path, bad)


def test_zoo_page_is_generated_from_the_metafiles(tmp_path):
    zoo = load_tool('model_zoo')
    with open(osp.join(REPO, 'docs', 'model_zoo.md')) as f:
        assert f.read() == zoo.render(INDEX), 'run: python tools/model_zoo.py'
    assert zoo.main(['--check']) == 0
    stale = tmp_path / 'model_zoo.md'
    stale.write_text(zoo.render(INDEX).replace('## Methods', '## Methods (edited)'))
    assert zoo.main(['--check', '--out', str(stale)]) == 1
    assert zoo.main(['--out', str(stale)]) == 0 and stale.read_text() == zoo.render(INDEX)


def test_readme_points_to_the_zoo_page():
    assert 'docs/model_zoo.md' in open(osp.join(REPO, 'README.md')).read()


ENTRY = {
    'Name': 'kd_toy', 'In Collection': 'KD', 'Config': 'configs/x/kd_toy.py',
    'Metadata': {'Training Data': 'Toy', 'Distillation Losses': ['KD'],
                 'Teacher': {'Name': 'big', 'Metrics': {'Top 1 Accuracy': 90.0}},
                 'Student': {'Name': 'small', 'Metrics': {'Top 1 Accuracy': 80.0}},
                 'SHA256': '1a2b3c4d' + '0' * 56},
    'Results': [{'Task': 'Image Classification', 'Dataset': 'Toy',
                 'Metrics': {'Top 1 Accuracy': 85.0}}],
    'Weights': 'https://example.org/kd_toy_20261130-1a2b3c4d.pth',
}


def write_index(root, entries):
    """An index with the repository's collections and one metafile holding ``entries``."""
    (root / 'configs' / 'x').mkdir(parents=True)
    (root / 'configs' / 'x' / 'kd_toy.py').write_text('model = dict()\n')
    collections = [{k: v for k, v in col.items() if k != 'README'}  # paths of the repo
                   for col in yaml.safe_load(open(INDEX))['Collections']]
    (root / 'model-index.yml').write_text(yaml.safe_dump(
        {'Import': ['configs/x/metafile.yml'], 'Collections': collections}, sort_keys=False))
    metafile = root / 'configs' / 'x' / 'metafile.yml'
    metafile.write_text('Models: []\n')
    for entry in entries:
        metafile.write_text(metafile_with_model(str(metafile), entry))
    return str(root / 'model-index.yml')


def test_zoo_row_and_gap_closed(tmp_path):
    index = write_index(tmp_path, [ENTRY])
    assert modelindex.load(index).check(silent=True) == []
    page = load_tool('model_zoo').render(index)
    assert ('| KD | small (80.0 alone) | big (90.0) | 85.0 | 50 % | '
            '[kd_toy](../configs/x/kd_toy.py) |  | '
            '[kd_toy_20261130-1a2b3c4d.pth](https://example.org/kd_toy_20261130-1a2b3c4d.pth) | '
            f'`{ENTRY["Metadata"]["SHA256"]}` |') in page
    # a teacher hardly ahead of the student alone: no ratio over a sub-point gap
    entry = copy.deepcopy(ENTRY)
    entry['Metadata']['Teacher']['Metrics'] = {'Top 1 Accuracy': 80.4}
    page = load_tool('model_zoo').render(write_index(tmp_path / 'small_gap', [entry]))
    assert '| 85.0 | n/a (gap 0.40) |' in page
    # what a run changed from its config is in its row
    entry = copy.deepcopy(ENTRY)
    entry['Metadata']['Config Changes'] = {'train_cfg.max_epochs': 3,
                                           'model.distill_losses.logits.weight': 2.0}
    page = load_tool('model_zoo').render(write_index(tmp_path / 'changed', [entry]))
    assert ('[kd_toy](../configs/x/kd_toy.py) | `train_cfg.max_epochs=3`, '
            '`model.distill_losses.logits.weight=2.0` | [kd_toy_') in page
    assert '## Image Classification\n\n### Toy\n' in page


@pytest.mark.parametrize('change, message', [
    (lambda e: e.update(Weights='https://example.org/kd_toy_20261130-ffffffff.pth'),
     r'is not named kd_toy_<YYYYMMDD>-1a2b3c4d.pth after its SHA256'),
    (lambda e: e.update(Config='configs/x/missing.py'), r"Config 'configs/x/missing.py' does "
                                                        'not exist'),
    (lambda e: e.update({'In Collection': 'KDD'}), r"In Collection 'KDD' is not one of"),
    (lambda e: e.pop('In Collection'), 'has a teacher but no In Collection'),
    (lambda e: e['Metadata'].pop('SHA256'), 'has no Metadata / SHA256'),
])
def test_zoo_refuses_inconsistent_entries(tmp_path, change, message):
    entry = copy.deepcopy(ENTRY)
    change(entry)
    with pytest.raises(ValueError, match=message):
        load_tool('model_zoo').render(write_index(tmp_path, [entry]))


def test_metafile_refuses_a_second_model_of_the_same_name(tmp_path):
    with pytest.raises(ValueError, match="already has a model named 'kd_toy'; pass --overwrite"):
        write_index(tmp_path, [ENTRY, ENTRY])
    metafile = tmp_path / 'configs' / 'x' / 'metafile.yml'
    metafile.write_text(yaml.safe_dump({'Models': [ENTRY, ENTRY]}))  # edited by hand
    with pytest.raises(ValueError, match=r"unique across the index; repeated: \['kd_toy'\]"):
        load_index(str(tmp_path / 'model-index.yml'))
