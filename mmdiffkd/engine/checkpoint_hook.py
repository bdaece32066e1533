"""MMEngine's ``CheckpointHook`` with crash-safe writes: a ``kill -9`` never leaves a truncated
checkpoint where ``--resume`` would pick it up.

What MMEngine 0.10.7 does and what changes here:

- The ``.pth`` file is written in place (``LocalBackend.put``: ``open(path, 'wb')``); a kill
  mid-write leaves a truncated ``iter_N.pth``. Here local checkpoints (periodic, last, best)
  go through :class:`~mmdiffkd.engine.atomic.AtomicLocalBackend`: temporary file, fsync,
  rename, fsync of the directory.
- ``last_checkpoint`` (the file ``--resume`` reads) is rewritten in place after the save.
  Here it is replaced atomically, and only once the checkpoint it names is complete.
- With ``max_keep_ckpts`` the oldest checkpoint is deleted *before* the new one is written, so
  with ``max_keep_ckpts=1`` a kill during the write leaves no checkpoint at all. Here old
  checkpoints are deleted after the new one and ``last_checkpoint`` are on disk.
- ``published_keys`` exports are written atomically too, and their name carries the sha256 of
  the file itself (MMEngine hashes an in-memory pickle, which ``torch.hub``'s ``check_hash``
  cannot verify).
- At the start of training, hidden temporary files that a killed run left behind
  (``.iter_N.pth.<random>.tmp``) are deleted.

``tools/train.py`` uses this hook in place of ``CheckpointHook`` without any change to the
config; in a config of your own write ``default_hooks.checkpoint.type =
'mmdiffkd.AtomicCheckpointHook'`` (same arguments). Object-store out dirs (``s3://``,
``petrel://``) keep their own backend (their uploads are already all-or-nothing).
"""
import hashlib
import logging
import os.path as osp

from mmengine.dist import is_main_process, master_only
from mmengine.hooks import CheckpointHook
from mmengine.logging import print_log

from mmdiffkd.registry import HOOKS
from mmdiffkd.utils.checkpoint import load_checkpoint_file
from mmdiffkd.utils.integrity import LAST_CHECKPOINT, is_remote

from .atomic import (ATOMIC_BACKEND, atomic_write_bytes, atomic_write_text,
                     remove_stale_temporaries, torch_save_bytes)


def publish_last_checkpoint(work_dir, checkpoint_path):
    """Point ``work_dir/last_checkpoint`` at ``checkpoint_path``, atomically."""
    atomic_write_text(osp.join(work_dir, LAST_CHECKPOINT), str(checkpoint_path))


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` (same arguments) whose files are complete or absent; see module doc."""

    def before_train(self, runner):
        out_dir = self.out_dir if self.out_dir is not None else runner.work_dir
        self._atomic = (not is_remote(out_dir) and self.backend_args is None
                        and self.file_client_args is None)
        if self._atomic:
            self.backend_args = dict(backend=ATOMIC_BACKEND)
        elif not is_remote(out_dir):
            print_log(f'AtomicCheckpointHook: backend_args={self.backend_args} / '
                      f'file_client_args={self.file_client_args} were given, so checkpoints '
                      'are written by that backend, not atomically; last_checkpoint still is.',
                      logger='current', level=logging.WARNING)
        super().before_train(runner)
        if is_main_process():
            stale = remove_stale_temporaries(runner.work_dir, (LAST_CHECKPOINT, ))
            if self._atomic:
                stale += remove_stale_temporaries(str(self.out_dir))
            if stale:
                print_log('Removed the temporary files of checkpoints that an interrupted run '
                          f'was writing: {", ".join(osp.basename(p) for p in stale)}',
                          logger='current')

    def _save_checkpoint_with_step(self, runner, step, meta):
        filename = self.filename_tmpl.format(step)
        expired = []
        # the best-checkpoint logic calls this again for a step already saved: keep the list
        if self.max_keep_ckpts > 0 and not (self.keep_ckpt_ids
                                            and self.keep_ckpt_ids[-1] == step):
            if len(self.keep_ckpt_ids) == self.max_keep_ckpts:
                expired.append(self.keep_ckpt_ids.popleft())
            self.keep_ckpt_ids.append(step)
            runner.message_hub.update_info('keep_ckpt_ids', list(self.keep_ckpt_ids))
        # in the message hub before the save, so the checkpoint knows its own name on resume
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info('last_ckpt', self.last_ckpt)

        runner.save_checkpoint(self.out_dir, filename, self.file_client_args,
                               save_optimizer=self.save_optimizer,
                               save_param_scheduler=self.save_param_scheduler, meta=meta,
                               by_epoch=self.by_epoch, backend_args=self.backend_args,
                               **self.args)
        if not is_main_process():
            return
        publish_last_checkpoint(runner.work_dir, self.last_ckpt)
        for old_step in expired:  # only now that the new checkpoint is complete
            old = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(old_step))
            if self.file_backend.isfile(old):
                self.file_backend.remove(old)
            elif self.file_backend.isdir(old):  # DeepSpeed writes directories
                self.file_backend.rmtree(old)

    @master_only
    def _publish_model(self, runner, ckpt_path):
        checkpoint = load_checkpoint_file(ckpt_path, map_location='cpu')
        dropped = sorted(k for k in checkpoint if k not in self.published_keys)
        if dropped:
            print_log(f'Publishing {ckpt_path}: dropping {dropped} (not in published_keys).',
                      logger='current')
        data = torch_save_bytes({k: v for k, v in checkpoint.items() if k not in dropped})
        final = f'{osp.splitext(ckpt_path)[0]}-{hashlib.sha256(data).hexdigest()[:8]}.pth'
        if not is_remote(final):
            atomic_write_bytes(final, data)
        else:
            self.file_backend.put(data, final)
        print_log(f'The checkpoint {ckpt_path} is published to {final}.', logger='current')
