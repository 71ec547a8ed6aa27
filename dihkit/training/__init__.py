"""Training one run: the configuration (:mod:`~dihkit.training.config`), the loop
(:mod:`~dihkit.training.loop`), checkpoints, run folders, a run's identity, the divergence stop,
the cached teacher targets, evaluation, devices and ``torchrun``. Knows nothing of any method's
name: a method is anything with the :class:`~dihkit.training.loop.Trainable` interface.
May import: ``data``, ``nn``, ``models``, ``losses``, ``errors``, ``files``."""
