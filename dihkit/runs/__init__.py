"""Whole runs as the CLI and the notebooks ask for them: the pipeline (train a teacher, its
heads, distil), ``compare`` over seeds, the notebooks' run cache, the profiles and the results
files the notebooks record. May import: ``teachers``, ``methods``, ``training`` and below."""
