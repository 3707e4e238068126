"""Equilibrium propagation: the trainer (:mod:`.train`) and its grids (:mod:`.grid`)."""
