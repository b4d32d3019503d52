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


def test_the_scan_figure_draws_other_learning_rates_and_the_larger_model_apart():
    def cell(steps, failed, lr=1e-4, model="minilm-l6", recipe="bert-original", learnable=False):
        return dict(task="NCBI-disease", model=model, head="token", lr=lr, recipe=recipe, steps=steps,
                    failed=failed, final_dev_sd=10.0, unstable_but_learnable=learnable)

    table = pd.DataFrame([cell(21, 0.1, learnable=True), cell(39, 0.0), cell(39, 0.1, lr=2e-4, learnable=True),
                          cell(21, 0.6, lr=5e-5), cell(21, 1.0, model="mpnet-base"), cell(39, 0.5, model="mpnet-base"),
                          dict(cell(21, 1.0), recipe="stabilised"), dict(cell(39, 0.3), recipe="stabilised")])
    fig = plots.instability_scan(table)
    top = fig.axes[0]
    lines = {line.get_label(): list(line.get_xdata()) for line in top.get_lines()}
    assert lines == {"token head, bert-original": [21, 39], "token head, stabilised": [21, 39],
                     "token head, bert-original, mpnet-base": [21, 39]}  # lines at the base lr only
    points = {c.get_label(): c.get_offsets().tolist() for c in top.collections if not c.get_label().startswith("_")}
    assert points == {"token head, bert-original, lr 0.0002": [[39.0, 0.1]], "token head, bert-original, lr 5e-05": [[21.0, 0.6]]}
    matplotlib.pyplot.close(fig)
