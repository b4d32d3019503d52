"""Recipe calibration: chosen on dev, never on a collapsed epoch, never reading test."""
import pandas as pd

from blurblib.runs import calibration
from blurblib.training import train


def _curves(rows):
    return pd.DataFrame(rows, columns=["task", "lr", "epoch", "dev_score", "collapsed"]).assign(
        reference_dev=50.0, train_limit=300, max_length=128, batch_size=16, head="mean", status="ok",
        margin=lambda df: df["dev_score"] - 50.0)


def test_choose_takes_the_best_dev_epoch_but_never_a_collapsed_one():
    curves = _curves([
        ("GAD", 1e-4, 1, 68.8, True),   # "1" for everything: F1 69, but nothing learned
        ("GAD", 1e-4, 2, 64.0, False),
        ("GAD", 5e-5, 3, 66.0, False),
        ("HoC", 1e-4, 1, 0.0, True), ("HoC", 1e-4, 2, 0.0, True), ("HoC", 3e-4, 1, 0.0, True),
    ])
    chosen = calibration.choose(curves)
    assert (chosen.loc["GAD", "lr"], chosen.loc["GAD", "epoch"]) == (5e-5, 3)
    # nothing learned anywhere: the cheapest candidate (fewest epochs, then the smaller rate)
    assert (chosen.loc["HoC", "lr"], chosen.loc["HoC", "epoch"]) == (1e-4, 1)


def test_calibration_runs_never_read_test(tmp_path, one_torch_thread):
    tiny = {"BIOSSES": calibration.Candidate(train_limit=8, max_length=32, epochs=2, lrs=(1e-4,), batch_size=4, eval_limit=8)}
    curves = calibration.run(tmp_path, tasks=["BIOSSES"], candidates=tiny, progress=False)
    assert list(curves["epoch"]) == [1, 2] and curves["reference_dev"].notna().all()
    record = train.run(calibration.configs(["BIOSSES"], candidates=tiny)[0], progress=False, score_test=False)
    assert record["test_score"] is None and record["trivial_test_score"] is None
    assert len(record["dev_curve"]) == 2 and len(record["dev_degenerate"]) == 2
