"""A teacher selects the student's data: the trainer (:mod:`.train`) and its grid
(:mod:`.grid`)."""
