"""Figures are deterministic: a re-run of a notebook leaves `git status` clean."""
import io

import matplotlib

matplotlib.use("Agg")
import pandas as pd  # noqa: E402

from blurblib.analysis import plots  # noqa: E402


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=60, metadata={"Software": None})
    matplotlib.pyplot.close(fig)
    return buffer.getvalue()


def test_seed_dots_are_jittered_the_same_way_every_time():
    runs = pd.DataFrame({"task": ["BIOSSES"] * 6, "technique": ["standard", "reinit1"] * 3,
                         "test_score": [80.0, 81.0, 82.0, 79.0, 80.5, 83.0]})
    first = _png(plots.seed_distributions(runs, x="technique"))
    assert first == _png(plots.seed_distributions(runs, x="technique"))
