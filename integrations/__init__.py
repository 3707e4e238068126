"""lowbit.integrations: lowbit in PyTorch, and what is built with it.

- :mod:`~lowbit.integrations.torch`: the library part — autograd functions, swap-in
  layers, ``swap_layers``, emulated-precision optimizers and weight updates, carriers,
  ``EmulationSpec``. Other code builds on it; it imports no program, report or CLI.
- :mod:`~lowbit.integrations.data`: the datasets (digits, Fashion-MNIST/MNIST IDX files);
- :mod:`~lowbit.integrations.runs`: the files a run writes (atomically) and reads back;
- :mod:`~lowbit.integrations.programs`: the training programs built with the library
  (QNN and the LNS table, equilibrium propagation, communicating nodes, teacher,
  language, the demo's comparison), each with its result grid beside it;
- :mod:`~lowbit.integrations.reports`: the error reports (per format, LNS adders,
  gradient range, the EP gradient check);
- :mod:`~lowbit.integrations.cli`: the ``lowbit`` command, a front door to the above.
"""
