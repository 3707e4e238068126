"""Quantized networks and the LNS table: the trainer (:mod:`.train`), the ``qnn`` grid
(:mod:`.grid`) and the LNS table's grids (:mod:`.lns_grid`)."""

QNN_RECIPES = ("float", "binaryconnect", "binarynet", "ternary", "fixed2", "fixed4", "fixed8",
               "kbit-float")
"""The QNN recipes of ``lowbit train qnn --format`` (:mod:`.train` says what each is)."""
LNS_RECIPES = ("lns-float", "lns-matmul", "lns-everywhere", "lns-kahan")
"""The LNS table's recipes."""
MP_RECIPES = ("mp-fp16", "mp-bf16", "mp-fp8", "mp-fp8-delayed", "mp-fp8-hopper",
              "mp-fp8-hopper-promote",
              "mp-mxfp8", "mp-mxfp8-hopper", "mp-mxfp8-hopper-promote", "mp-mxfp4", "mp-nvfp4",
              "mp-mxfp8-train", "mp-nvfp4-train", "mp-nvfp4-train-sr")
"""Mixed-precision training (fp32 master weights; :mod:`.train` says what each is)."""
RECIPES = QNN_RECIPES + LNS_RECIPES + MP_RECIPES
