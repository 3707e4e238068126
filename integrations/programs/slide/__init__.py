"""SLIDE: LSH-sampled sparse training against dense training (:mod:`.train`)."""
