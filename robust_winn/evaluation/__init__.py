"""Evaluation beyond attacks: error and correction-rate metrics, Inception and digit scores,
calibration, out-of-distribution detection (:mod:`.ood`, issue 14) and the texture SWD (:mod:`.swd`,
issue 15)."""
