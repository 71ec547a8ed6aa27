"""Training one run: the settings (:mod:`~dihkit.training.config`), the loop
(:mod:`~dihkit.training.loop`), its history and result (:mod:`~dihkit.training.history`),
checkpoints, run folders, a run's identity and resuming, the divergence stop, the cached
teacher targets, evaluation, devices and ``torchrun``. Knows nothing of any method's name: a
method is anything with the :class:`~dihkit.training.trainable.Trainable` interface.
May import: ``data``, ``nn``, ``models``, ``losses``, ``errors``, ``files``, ``checks``."""
