"""The paper's remedies tested where fine-tuning is unstable (settings the scan found).

On a stable setting a remedy has nothing to remove; its verdicts there say what it costs, not
whether it stabilises. Here each chosen unstable-but-learnable setting (`Setting`, from
`instability.unstable_settings`) is trained with every remedy and the controls that make the
claims mean what they say, over many seeds, and each remedy is compared with standard
fine-tuning on *helps* (mean) and *stabilises* (failure rate at the end of training, seed sd):

* the paper's: freezing the embeddings and the lower 2 or 4 blocks, layer-wise decay 0.8,
  re-initialising the top 1 or 2 blocks (the pooler with them);
* LP-FT (3 head-only epochs first), and its compute-matched control: standard fine-tuning with
  the same 3 extra epochs, so that LP-FT's gain is not just more training;
* Mosbach et al.'s (2021) "strong baseline": bias-corrected AdamW, warm-up, a 5x smaller
  learning rate and 3x the epochs;
* the larger encoder (mpnet-base) in the same setting, for the size claim.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import NamedTuple

import pandas as pd

from ..analysis import findings, power
from ..runs import sweep
from ..training.config import RunConfig, compute_matched_control
from . import instability

LARGER_MODEL = "mpnet-base"


def _lpft_control(base: RunConfig) -> dict:
    """LP-FT's compute-matched control: the lpft3 arm's 3 probe epochs as ordinary training."""
    return {"epochs": compute_matched_control(dataclasses.replace(base, **ARMS["lpft3"])).epochs}


def _strong_baseline(base: RunConfig) -> dict:
    return {**instability.RECIPES["stabilised"], "lr": base.lr / 5, "epochs": base.epochs * 3}


# arm -> the fields it changes in the setting's config (a dict, or a function of the config)
ARMS = {
    "standard": {},
    "freeze2": {"freeze_layers": 2},
    "freeze4": {"freeze_layers": 4},
    "llrd0.8": {"llrd_decay": 0.8},
    "reinit1": {"reinit_layers": 1},
    "reinit2": {"reinit_layers": 2},
    "lpft3": {"lpft_epochs": 3},
    "standard +3 epochs": _lpft_control,
    "strong baseline": _strong_baseline,
    LARGER_MODEL: {"model": LARGER_MODEL},
}
# The claim each arm tests, against standard unless the arm names its own control.
CLAIMS = {
    "freeze2": findings.CLAIMS["freeze"], "freeze4": findings.CLAIMS["freeze"],
    "llrd0.8": findings.CLAIMS["llrd"], "reinit1": findings.CLAIMS["reinit"], "reinit2": findings.CLAIMS["reinit"],
    "lpft3": "LP-FT beats standard fine-tuning.", "standard +3 epochs": "Three more epochs beat standard fine-tuning.",
    "strong baseline": "Mosbach et al.'s strong baseline (small lr, warm-up, bias correction, longer) beats standard.",
}
CONTROLS = {"lpft3": "standard +3 epochs"}  # LP-FT also against the same compute without the probe


@dataclass(frozen=True)
class Setting:
    """An unstable-but-learnable cell of the scan, and why it was chosen (the scan's numbers)."""

    task: str
    head: str
    train_limit: int | None
    recipe: str
    why: str = ""
    lr: float | None = None  # None: the scan's base learning rate

    @property
    def label(self) -> str:
        """How tables name the setting: `NCBI-disease token head, 100 examples, bert-original`
        (`, lr 0.0002` where the cell is one of the scan's other learning rates)."""
        size = "all" if self.train_limit is None else self.train_limit
        return f"{self.task} {self.head} head, {size} examples, {self.recipe}" + ("" if self.lr is None else f", lr {self.lr:g}")

    def matches(self, cell: instability.Cell, scan: instability.ScanSettings) -> bool:
        return ((cell.task, cell.head, cell.train_limit, cell.recipe, cell.lr)
                == (self.task, self.head, self.train_limit, self.recipe, self.lr or scan.base["lr"]))


class ArmConfig(NamedTuple):
    """One run of the remedies grid: which arm, its config, and the setting it belongs to (an arm
    may change the setting's own fields: the strong baseline changes its optimiser recipe)."""

    arm: str
    config: RunConfig
    setting: str


def base_config(setting: Setting, scan: instability.ScanSettings, seed: int, precision: str) -> RunConfig:
    """The setting's run as the scan trained it (same fields), for any seed."""
    cell = next(c for c in instability.cells(scan) if setting.matches(c, scan))
    return cell.config(seed, precision)


def configs(settings, scan: instability.ScanSettings, seeds, precision: str) -> list[ArmConfig]:
    """Every setting, arm and seed, seed-major so a stopped grid is even."""
    out = []
    for seed in seeds:
        for setting in settings:
            base = base_config(setting, scan, seed, precision)
            for arm, change in ARMS.items():
                fields = change(base) if callable(change) else change
                out.append(ArmConfig(arm, dataclasses.replace(base, **fields), setting.label))
    return out


def records(arm_configs: list[ArmConfig], store, any_precision: bool = True) -> pd.DataFrame:
    """The stored runs of the grid, each with its `arm` and `setting` (test scored: these are
    the notebook's final runs, not the scan's dev-only ones)."""
    df = sweep.records_for([a.config for a in arm_configs], store, any_precision=any_precision)
    if df.empty:
        return df
    of = {}
    for a in arm_configs:
        twin = dataclasses.replace(a.config, precision="fp32" if a.config.precision == "bf16" else "bf16")
        of[a.config.run_id] = of[twin.run_id] = a
    df["arm"] = df["run_id"].map(lambda run_id: of[run_id].arm)
    df["setting"] = df["run_id"].map(lambda run_id: of[run_id].setting)
    return df


def claims(df: pd.DataFrame) -> pd.DataFrame:
    """Per setting, each remedy and control against standard, and LP-FT against its
    compute-matched control: helps and stabilises, Holm over the whole table. The size claim
    (the larger model fails more often, varies more) is `size_claims`."""
    rows = []
    for setting, group in df.groupby("setting", sort=True):
        for arm in [a for a in ARMS if a not in ("standard", LARGER_MODEL)]:
            for control in ("standard", *([CONTROLS[arm]] if arm in CONTROLS else [])):
                rows += [{"setting": setting, "arm": arm, "against": control, **row}
                         for row in findings.arm_claims(group, "arm", arm, control, CLAIMS[arm], on=("seed",))]
    return findings.finish_claims(rows)


def size_claims(df: pd.DataFrame, small: str = "minilm-l6") -> pd.DataFrame:
    """Per setting, the larger encoder against the smaller one in standard fine-tuning: does it
    score higher, and is it less stable (failure rate, seed sd)? Holm over the table."""
    rows = []
    for setting, group in df.groupby("setting", sort=True):
        pair = group[group["arm"].isin(["standard", LARGER_MODEL])]
        table = findings.size_claims(pair, small, LARGER_MODEL)
        rows += [{"setting": setting, **row} for row in table.drop(columns=["p_holm", "p_opposite_holm", "power"])
                 .to_dict("records")]
    return findings.finish_claims(rows)


def claims_per_setting() -> int:
    """How many claims one setting adds to notebook 03's remedies table (Holm's m): each remedy
    against standard and LP-FT against its control, 3 kinds each (the larger model's size claim
    is notebook 02's table)."""
    compared = len(ARMS) - 2 + len(CONTROLS)  # not standard itself, not the larger model
    return 3 * compared


def planned_seeds(settings: int = 1) -> int:
    """Seeds for 80% power to show a remedy taking the failure rate from one half to one tenth,
    Holm over every claim of `settings` settings."""
    return power.seeds_for_failure(0.5, 0.1, claims=settings * claims_per_setting())
