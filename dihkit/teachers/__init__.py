"""Teachers: the bundled ones (``data/teachers/``, their manifest and sha256), loading a
teacher checkpoint with its head sets, and training heads on a frozen teacher.
May import: ``methods``, ``training`` and below."""
