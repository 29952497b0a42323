"""The sound track as the app passes it around: what a model renders, a file decodes and the
encoder writes. Kept apart from generation.backends (whose package loads the models) so the
web process can read and write files with sound without loading torch."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Soundtrack:
    """Float32 samples in [-1, 1], shaped (samples, channels), at `sample_rate`."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])
