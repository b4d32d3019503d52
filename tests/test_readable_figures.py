"""Figures and tables that read at a glance at notebook width: legends outside the data, distinct
colours for learning rates, integer epochs, log axes for wide ratios, text of at least 9 pt, no
label touching its neighbour's, no marker cut at an edge; and no saved progress bar over nothing."""
import itertools

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402
from matplotlib.text import Text  # noqa: E402

from blurblib import bench
from blurblib.analysis import plots
from blurblib.bench import figures  # noqa: E402
from blurblib.core import paths
from blurblib.runs import calibration
from blurblib.workbook import reproduce  # noqa: E402

TABLES = paths.REPO_ROOT / "outputs" / "tables"


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _renderer(fig):
    fig.canvas.draw()
    return fig.canvas.get_renderer()


def _texts(fig):
    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def _smallest_font_at_notebook_width(fig) -> float:
    """The smallest text in points once the saved figure (tight box) is shrunk to notebook width."""
    width = fig.get_tightbbox(_renderer(fig)).width  # inches
    return min(t.get_fontsize() for t in _texts(fig)) * min(1.0, figures.NOTEBOOK_WIDTH_IN / width)


def _drawn_labels(ax):
    """An axes' title, axis labels and the tick labels inside its view."""
    (x0, x1), (y0, y1) = sorted(ax.get_xlim()), sorted(ax.get_ylim())
    ticks = [label for label, tick in zip(ax.get_xticklabels(), ax.get_xticks()) if x0 <= tick <= x1]
    ticks += [label for label, tick in zip(ax.get_yticklabels(), ax.get_yticks()) if y0 <= tick <= y1]
    return [t for t in [ax.title, ax.xaxis.label, ax.yaxis.label, *ticks] if t.get_visible() and t.get_text().strip()]


def _labels_of_neighbours_touch(fig) -> list[tuple[str, str]]:
    renderer = _renderer(fig)
    panels = [[(t.get_text(), t.get_window_extent(renderer)) for t in _drawn_labels(ax)]
              for ax in fig.axes if ax.get_visible()]
    return [(a, b) for one, other in itertools.combinations(panels, 2)
            for (a, box_a), (b, box_b) in itertools.product(one, other) if box_a.overlaps(box_b)]


def _legends_on_data(fig) -> list[str]:
    renderer = _renderer(fig)
    legends = list(fig.legends) + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
    assert legends, "the figure has a legend"
    return [ax.get_title() for legend in legends for ax in fig.axes
            if ax.get_visible() and legend.get_window_extent(renderer).overlaps(ax.get_window_extent(renderer))]


def _cut_markers(ax) -> int:
    """Markers whose disc reaches past the axes' edge (drawn clipped)."""
    renderer = _renderer(ax.figure)
    box, cut = ax.get_window_extent(renderer), 0
    for collection in ax.collections:
        if not isinstance(collection, PathCollection) or not len(collection.get_offsets()):
            continue
        points = collection.get_offset_transform().transform(collection.get_offsets())
        radius = np.sqrt(collection.get_sizes().max()) / 2 * ax.figure.dpi / 72
        cut += int(((points[:, 0] - radius < box.x0) | (points[:, 0] + radius > box.x1)).sum())
    return cut


def _readable(fig) -> None:
    assert _smallest_font_at_notebook_width(fig) >= figures.SMALLEST_FONT - 1e-9
    assert not _labels_of_neighbours_touch(fig)


# ----------------------------------------------------------------------------- notebook 05

def _calibration_table():
    rows = []
    for task, lrs, epochs in (("BioASQ", (1e-4, 3e-4), 4), ("BIOSSES", (2e-5, 5e-5, 1e-4), 10), ("GAD", (3e-5, 5e-5), 2)):
        for lr, epoch in itertools.product(lrs, range(1, epochs + 1)):
            collapsed = task == "BioASQ" and lr == 1e-4  # the higher line answers the same to every question
            rows.append({"task": task, "lr": lr, "epoch": epoch, "dev_score": 82.7 if collapsed else 70 + epoch + 1e4 * lr,
                         "collapsed": collapsed, "reference_dev": 75.0, "train_limit": 300, "max_length": 128,
                         "batch_size": 16, "head": "mean"})
    table = pd.DataFrame(rows)
    return table.assign(margin=table["dev_score"] - table["reference_dev"])


def test_learning_rates_get_clearly_different_colours():
    palette = plots.lr_palette([2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4, 1e-4, 3e-4])
    assert list(palette) == [2e-5, 3e-5, 5e-5, 1e-4, 2e-4, 3e-4]
    colours = [np.array(to_rgb(c)) for c in palette.values()]
    assert min(np.abs(a - b).sum() for a, b in itertools.combinations(colours, 2)) > 0.4
    assert plots.lr_label(2e-5) == "2e-5" and plots.lr_label(3e-4) == "3e-4"


def test_calibration_figure_marks_the_choice_and_the_collapsed_epochs():
    table = _calibration_table()
    chosen = calibration.choose(table)
    assert chosen.loc["BioASQ", "lr"] == 3e-4  # below 1e-4's collapsed line: the rule the figure must show
    fig = plots.calibration_curves(table, chosen)
    panels = {ax.get_title(): ax for ax in fig.axes if ax.get_visible()}
    for task, ax in panels.items():
        ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
        assert ticks and all(float(t).is_integer() for t in ticks), (task, ticks)
        ringed = [c for c in ax.collections if len(c.get_offsets()) == 1 and c.get_sizes().max() > 100]
        assert [tuple(r.get_offsets()[0]) for r in ringed] == [(chosen.loc[task, "epoch"], chosen.loc[task, "dev_score"])]
    crossed = [c for c in panels["BioASQ"].collections if len(c.get_offsets()) and c.get_sizes().max() < 100]
    assert sum(len(c.get_offsets()) for c in crossed) == 4  # every epoch of the collapsed rate
    assert not _legends_on_data(fig)
    _readable(fig)


def test_blurb_bars_keep_their_legend_off_the_bars():
    table = pd.DataFrame({"task": ["BIOSSES", "GAD", "HoC"], "mean": [87.0, 74.0, 61.0], "std": [0.3, 0.5, 0.4],
                          "frozen reference": [84.0, 63.0, 54.0], "PubMedBERT (Gu et al.)": [92.3, 82.3, 82.3]})
    assert not _legends_on_data(plots.blurb_bars(table, "minilm-l6"))


# ----------------------------------------------------------------------------- notebook 06

@pytest.fixture(scope="module")
def throughput():
    return bench.stored("throughput")


def test_throughput_figure_reads_the_speed_ups_on_a_log_axis(throughput):
    fig = figures.throughput_figure(throughput)
    bars, speedups = fig.axes
    order = [t.get_text() for t in bars.get_xticklabels()]
    assert order == [t.get_text() for t in speedups.get_xticklabels()] == list(dict.fromkeys(throughput["task"]))
    assert speedups.get_yscale() == "log"
    low, high = speedups.get_ylim()
    assert low < bench.THROUGHPUT_TUNED_GOAL and bench.THROUGHPUT_GOAL < high  # both goal lines drawn
    assert not _legends_on_data(fig)
    _readable(fig)


def test_throughput_table_shows_what_the_text_discusses(throughput):
    summary = bench.throughput_summary(throughput)
    view = figures.throughput_view(summary)
    assert len(view.columns) <= 10 < len(summary.columns)
    assert {"speed-up c/a", "speed-up c/b", "tokens / example"} <= set(view.columns.get_level_values(0))
    ncbi = summary.set_index("task").loc["NCBI-disease", "train_ratio_median"]
    assert view.loc["NCBI-disease", ("speed-up c/a", "train")] == f"{ncbi:.2f}"


def test_memory_figure_reads_at_notebook_width():
    memory = bench.stored("memory")
    cost = pd.DataFrame({"task": ["BIOSSES"] * 3 + ["NCBI-disease"] * 3, "freeze_layers": [0, 1, 3] * 2,
                         "change_vs_k0": [0.0, 0.1, -1.0, 0.0, -2.0, -15.0]})
    fig = figures.memory_figure(memory, cost)
    assert not _legends_on_data(fig)
    _readable(fig)


@pytest.fixture(scope="module")
def slimfit_runs():
    """The default profile's SlimFit comparison, from the committed store."""
    from blurblib.workbook import grids, profiles

    P = profiles.get("06_efficiency", "default")
    return P.records_for(grids.efficiency(P).parts["slimfit"])


def test_slimfit_figure_cuts_no_marker_and_reads_at_notebook_width(slimfit_runs):
    fig = figures.slimfit_figure(bench.stored("slimfit_memory"), slimfit_runs)
    assert all(_cut_markers(ax) == 0 for ax in fig.axes)
    assert not _legends_on_data(fig)
    _readable(fig)


def test_rate_figure_reads_at_notebook_width():
    _readable(bench.rate_figure(pd.read_csv(TABLES / "06_efficiency_slimfit_rates.csv")))


# ----------------------------------------------------------------------------- saved outputs

def _bar(state, name, left, value, total, right):
    state[name] = {"model_name": "HBoxModel", "state": {"children": [f"IPY_MODEL_{name}{p}" for p in "lbr"]}}
    state[f"{name}l"] = {"state": {"value": left}}
    state[f"{name}b"] = {"state": {"value": value, "max": total}}
    state[f"{name}r"] = {"state": {"value": right}}
    return {"output_type": "display_data", "metadata": {},
            "data": {"application/vnd.jupyter.widget-view+json": {"model_id": name}, "text/plain": ["..."]}}


def test_a_progress_bar_over_nothing_is_not_saved():
    state = {}
    empty = _bar(state, "e", "runs: ", 0, 0, "\u20070/0\u2007[00:00&lt;?,\u2007?it/s]")
    real = _bar(state, "r", "runs: 100%", 18, 18, "\u200718/18\u2007[03:07&lt;00:00,\u200710.4s/it]")
    settled_text = {"output_type": "display_data", "metadata": {},
                    "data": {"text/plain": ["references: |          | 0/0 [00:00<?, ?it/s]"]}}
    stream = {"output_type": "stream", "name": "stderr", "text": ["\rruns: 0it [00:00, ?it/s]\n", "a warning\n"]}
    only_bar = {"output_type": "stream", "name": "stderr", "text": ["runs: 0it [00:00, ?it/s]\n"]}
    nb = {"cells": [{"cell_type": "code", "metadata": {}, "source": [],
                     "outputs": [empty, real, settled_text, stream, only_bar]}],
          "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {"state": state}}}}
    [bar, warning] = reproduce.settle_progress_bars(nb)["cells"][0]["outputs"]
    assert bar["data"] == {"text/plain": ["runs: 100%|██████████| 18/18 [03:07<00:00, 10.4s/it]"]}
    assert warning["text"] == ["a warning\n"]
