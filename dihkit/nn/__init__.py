"""Building blocks mounted on models: stage taps (read intermediate activations), classifier
heads and the DIH teacher cohort, a student's exits (MHKD/DSKD/DSN/BYOT classifiers) and feature
projections. May import: ``models``, ``errors``."""
