"""The notebooks' computations (statistics over seeds, softened distributions, a cohort's
agreement and calibration, student-side heads, DSKD's recorded weights, the papers' published
numbers): they read models and finished runs, they neither train nor display.
May import: ``runs`` and below."""
