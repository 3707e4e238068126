"""Error reports built on the emulator and the torch library:

- :mod:`.formats`: cast, dot-product and MLP-accuracy error per format (``lowbit report``);
- :mod:`.lns`: LNS adders and dot products in detail (``lowbit lns-report``);
- :mod:`.gradient_range`: the share of a float network's gradients a format flushes to zero;
- :mod:`.eqprop_check`: EP's gradient estimate against BPTT (grid ``eqprop-check``).
"""
