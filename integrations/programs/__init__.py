"""The training programs built with lowbit's torch library, each with its result grid:

- :mod:`.qnn`: quantized networks (``lowbit train qnn``), mixed-precision training (its
  ``mp-*`` recipes) and the LNS table (its ``lns-*`` recipes); grids ``qnn``,
  ``mixed-precision`` and ``lns``, ``lns-sweep``, ``lns-matmul-parts``;
- :mod:`.eqprop`: equilibrium propagation (``lowbit train eqprop``); grids ``eqprop``,
  ``eqprop-sweep``;
- :mod:`.nodes`: communicating nodes, simulated or over torch.distributed
  (``lowbit train nodes``); grids ``nodes``, ``nodes-cnn``;
- :mod:`.teacher`: a teacher selects the student's data (``lowbit train teacher``);
- :mod:`.language`: two agents learn a bit language (``lowbit train language``);
- :mod:`.slide`: SLIDE's LSH-sampled layers (``lowbit train slide``); grids ``slide-xmc``,
  ``slide-wide``;
- :mod:`.compare`: the demo's short float-vs-emulated comparison (``lowbit compare``);
- :mod:`.experiments`: runs a grid by name and writes every table of docs/results
  (``lowbit experiment run|tables``).

Each program is a function of a config dataclass (``train(cfg)``), callable without the CLI.
"""

GRIDS = ("qnn", "mixed-precision", "mp-large-batch", "lns", "lns-sweep", "lns-matmul-parts", "eqprop", "eqprop-sweep",
         "eqprop-check", "nodes", "nodes-cnn", "teacher", "language", "slide-xmc", "slide-wide")
"""The grids ``lowbit experiment run`` knows (:mod:`.experiments` runs them)."""
