"""Two agents learn a bit language: the trainer (:mod:`.train`) and its grid (:mod:`.grid`)."""
