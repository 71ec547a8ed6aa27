"""What things cost: model throughput, each method's step time live and from cached targets,
a conventional KD loop as the yardstick, peak memory, and the cached-vs-live accuracy study.
May import: ``runs`` and below."""
