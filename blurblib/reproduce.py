"""`make reproduce`: execute every numbered notebook with papermill, then write REPORT.md.

    blurb reproduce --profile default [--fresh] [--only 03_stabilization]

(`python -m blurblib.reproduce ...` is the same command.)

Executed notebooks go to outputs/notebooks/, figures and tables are saved by the notebooks
themselves (outputs/figures/, outputs/tables/). A notebook that raises stops the run with the
notebook and the cell named. REPORT.md has one section per finding with its figures and its
claim table, and names the profile, the machine and the date.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from . import paths, profiles
from .errors import UnknownNameError
from .plots import to_markdown

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    found = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(_picks(name, p) for name in only)]
    return found


def _picks(name: str, notebook: Path) -> bool:
    """`--only` names a notebook by its stem or its two-digit number."""
    return name in (notebook.stem, notebook.stem[:2])


def execute(notebook: Path, profile: str, out_dir: Path, backend: str = "local", address: str | None = None) -> float:
    """Run one notebook; raise SystemExit naming the notebook and cell when it fails."""
    import papermill as pm

    started = time.perf_counter()
    target = out_dir / notebook.name
    try:
        pm.execute_notebook(str(notebook), str(target), parameters={"PROFILE": profile, "BACKEND": backend, "RAY_ADDRESS": address},
                            cwd=str(NOTEBOOK_DIR), kernel_name="python3", progress_bar=False)
    except pm.PapermillExecutionError as err:
        raise SystemExit(f"reproduce: {notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                         f"the partly executed notebook is {target}") from None
    return time.perf_counter() - started


def _title(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            first = "".join(cell["source"]).strip().splitlines()[0]
            return first.lstrip("# ").strip()
    return notebook.stem


def machine() -> str:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{platform.node() or 'unknown host'}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, {gpu}; torch {torch.__version__}, Python {platform.python_version()}"


def notebook_timings(notebook_dir: Path) -> dict[str, dict]:
    """Each executed notebook's duration and start time, read from the papermill metadata it
    carries: a notebook re-executed alone (`--only`) leaves the others' timings as they were."""
    timings = {}
    for path in sorted(notebook_dir.glob("[0-9][0-9]_*.ipynb")):
        meta = json.loads(path.read_text()).get("metadata", {}).get("papermill", {})
        if meta.get("duration") is not None:
            timings[path.stem] = {"seconds": float(meta["duration"]), "start": str(meta.get("start_time") or "")}
    return timings


def timing_line(timings: dict[str, dict]) -> str:
    """Total and per-notebook minutes; a notebook that started after a later-numbered one was
    re-executed on its own, and the line says when."""
    parts = []
    for i, (stem, t) in enumerate(timings.items()):
        rerun = any(t["start"] > later["start"] for later in list(timings.values())[i + 1:])
        note = f", re-executed alone at {t['start'][:16].replace('T', ' ')} UTC" if rerun else ""
        parts.append(f"{stem[:2]}: {t['seconds'] / 60:.1f}{note}")
    total = sum(t["seconds"] for t in timings.values())
    label = "notebook times, not from one run" if any("re-executed" in part for part in parts) else "wall time"
    return f"* {label}: {total / 60:.1f} min ({', '.join(parts)})"


def learned_section(path: Path) -> list[str]:
    """The notebook's fine-tuned means against their frozen-encoder references, with every
    group that fine-tuning left below its reference named in bold: seeds and techniques of
    a model that did not learn say nothing about stability."""
    if not path.is_file():
        return []
    table = pd.read_csv(path)
    lines = ["Did fine-tuning learn? Test mean over seeds against the frozen-encoder reference on the same data:", "",
             to_markdown(table), ""]
    below = table[~table["learned"].astype(bool)]
    if len(below):
        names = ", ".join(" / ".join(str(row[c]) for c in ("task", "model", "technique", "head") if c in row)
                          for _, row in below.iterrows())
        lines += [f"**Below the frozen reference: {names}.**", ""]
    return lines


def write_report(profile: str, out: Path) -> Path:
    """One section per notebook: its figures and its claim table (from outputs/tables)."""
    figures, tables = out / "figures", out / "tables"
    lines = [
        "# Reproduction report",
        "",
        f"* profile: `{profile}`",
        f"* machine: {machine()}",
        f"* date: {dt.date.today().isoformat()}",
        timing_line(notebook_timings(out / "notebooks")),
        "",
        "Offline profiles fine-tune small **general-domain** sentence encoders (all-MiniLM-L6-v2, "
        "all-mpnet-base-v2) on a CPU with subsampled training sets, not the paper's biomedical "
        "models on GPUs: the verdicts below are what these runs show, nothing more.",
        "",
    ]
    for notebook in notebook_paths():
        stem = notebook.stem
        lines += [f"## {_title(notebook)}", "", f"Notebook: [`{stem}`](notebooks/{notebook.name})", ""]
        for figure in sorted(figures.glob(f"{stem}*.png")):
            lines += [f"![{figure.stem}](figures/{figure.name})", ""]
        lines += learned_section(tables / f"{stem}_learned.csv")
        claims = tables / f"{stem}_claims.csv"
        if claims.is_file():
            lines += [to_markdown(pd.read_csv(claims)), ""]
    report = out / "REPORT.md"
    report.write_text("\n".join(lines))
    return report


def check_only(only: list[str] | None) -> None:
    """Every `--only` name must pick a notebook: a typo would otherwise run nothing and rewrite the report."""
    known = notebook_paths()
    unknown = [name for name in only or () if not any(_picks(name, p) for p in known)]
    if unknown:
        raise UnknownNameError(f"--only {' '.join(unknown)}: no such notebook; use stems or numbers: "
                               f"{', '.join(p.stem for p in known)}")


def run(profile: str = "default", fresh: bool = False, only: list[str] | None = None, backend: str = "local",
        address: str | None = None) -> Path:
    """Execute the notebooks (all, or those `only` names) under `profile`, their sweeps on `backend`
    (a Ray cluster at `address` with "ray"), then write REPORT.md; `fresh` first moves the
    profile's results store aside. Returns the report's path."""
    # an unknown profile or backend fails here, before any notebook starts
    store = Path(profiles.get("05_blurb_score", profile, backend=backend, ray_address=address).results_dir)
    check_only(only)
    out = paths.outputs_dir()
    if fresh and store.exists():
        backup = store.with_name(f"{store.name}.bak-{dt.datetime.now():%Y%m%d-%H%M%S}")
        store.rename(backup)
        print(f"--fresh: moved the existing store to {backup}")
    notebook_out = out / "notebooks"
    notebook_out.mkdir(parents=True, exist_ok=True)
    timings = {}
    for notebook in notebook_paths(only):
        print(f"[{dt.datetime.now():%H:%M:%S}] {notebook.name} (profile {profile}) ...", flush=True)
        timings[notebook.stem] = execute(notebook, profile, notebook_out, backend, address)
        print(f"    done in {timings[notebook.stem] / 60:.1f} min", flush=True)
    report = write_report(profile, out)
    print(f"wall time {sum(timings.values()) / 60:.1f} min; report: {report}")
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m blurblib.reproduce ARGS` is `blurb reproduce ARGS`."""
    from .cli import main as blurb

    return blurb(["reproduce", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
