"""Quantized networks and the LNS table: the trainer (:mod:`.train`), the ``qnn`` grid
(:mod:`.grid`) and the LNS table's grids (:mod:`.lns_grid`)."""
