"""`make reproduce`: execute every numbered notebook with papermill, then write REPORT.md.

    blurb reproduce --profile default [--fresh] [--only 03_stabilization]
    blurb reproduce --profile paper --rehearse [--only 03]

(`python -m blurblib.workbook.reproduce ...` is the same command.)

Executed notebooks go to outputs/notebooks/, figures and tables are saved by the notebooks
themselves (outputs/figures/, outputs/tables/). Under the default profile the executed copies
also replace notebooks/*.ipynb, so a reader who opens a notebook meets the real run's outputs
(its cells unchanged; progress bars saved as their final text). A notebook that raises stops
the run with the notebook and the cell named. REPORT.md has one section per finding with its
figures and its claim table, and names the profile, the machine and the date.

`--rehearse` runs the profile's rehearsal instead (`blurblib.workbook.rehearsal`: the paper grid, tiny,
on the CPU, every hub model replaced by its random-weight twin): everything goes under
outputs/rehearsal/ (emptied first), notebooks/ and outputs/notebooks/ are never written, and a
failing notebook does not stop the others (the run ends naming every one that failed).
"""
from __future__ import annotations

import contextlib
import datetime as dt
import html
import json
import os
import platform
import re
import resource
import shutil
import time
from pathlib import Path

import pandas as pd

from ..analysis.findings import CLAIMS, PRETRAINING_CLAIMS
from ..analysis.plots import claims_view, p_text, to_markdown
from ..core import paths, precision
from ..core.errors import UnknownNameError
from ..data import tasks
from ..encoders import packs, twins
from . import grids, profiles, rehearsal

NOTEBOOK_DIR = paths.REPO_ROOT / "notebooks"


def notebook_paths(only: list[str] | None = None) -> list[Path]:
    found = sorted(p for p in NOTEBOOK_DIR.glob("[0-9][0-9]_*.ipynb"))
    if only:
        found = [p for p in found if any(_picks(name, p) for name in only)]
    return found


def _picks(name: str, notebook: Path) -> bool:
    """`--only` names a notebook by its stem or its two-digit number."""
    return name in (notebook.stem, notebook.stem[:2])


READER_PROFILE = "default"  # the profile a notebook opens on; its executed copies are the notebooks a reader meets
PROFILE_ENV = "BLURB_PROFILE"  # what a notebook's parameters cell reads for PROFILE (`make test` sets smoke)


def execute(notebook: Path, profile: str, out_dir: Path, backend: str = "local", address: str | None = None,
            rehearse: bool = False) -> float:
    """Run one notebook; raise SystemExit naming the notebook and cell when it fails.

    The profile reaches the kernel through `BLURB_PROFILE`, and only parameters that differ from
    the notebook's defaults are injected, so a default run leaves the cells exactly as written.
    The executed notebook's `metadata.blurblib.profile` names the profile its outputs come from
    (the source notebook's tag, copied by papermill, names the saved run's)."""
    import papermill as pm

    started = time.perf_counter()
    target = out_dir / notebook.name
    _clear_outputs(profiles._out(profile), notebook.stem)
    given = (("BACKEND", backend), ("RAY_ADDRESS", address), ("REHEARSE", rehearse))
    parameters = {name: value for name, value in given if value != _NOTEBOOK_DEFAULTS[name]}
    try:
        with _environment(PROFILE_ENV, profile):
            pm.execute_notebook(str(notebook), str(target), parameters=parameters, cwd=str(NOTEBOOK_DIR),
                                kernel_name="python3", progress_bar=False)
    except pm.PapermillExecutionError as err:
        raise SystemExit(f"reproduce: {notebook.name} failed in cell {err.exec_count} ({err.ename}: {err.evalue}); "
                         f"the partly executed notebook is {target}") from None
    finally:
        if target.is_file():
            nb = settle_progress_bars(json.loads(target.read_text()))
            nb["metadata"]["blurblib"] = {"profile": rehearsal.name_of(profile) if rehearse else profile}
            nb["metadata"]["kernelspec"] = KERNELSPEC  # what Lab shows for this kernel: opening it changes nothing
            target.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return time.perf_counter() - started


_NOTEBOOK_DEFAULTS = {"BACKEND": "local", "RAY_ADDRESS": None, "REHEARSE": False}
# The kernelspec ipykernel installs; a notebook saved with another display name ("Python 3") is
# marked modified the moment Lab opens it.
KERNELSPEC = {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}


def _clear_outputs(out: Path, stem: str) -> None:
    """A notebook's figures and tables from earlier executions go before it runs again, so a
    figure it no longer draws can never reach REPORT.md beside tables that contradict it."""
    for folder, pattern in ((out / "figures", f"{stem}*.png"), (out / "tables", f"{stem}*.csv")):
        for stale in folder.glob(pattern):
            stale.unlink()


@contextlib.contextmanager
def _environment(name: str, value: str):
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before


def settle_progress_bars(nb: dict) -> dict:
    """Replace each tqdm widget in a saved notebook by the text of its final state.

    A saved widget shows its first state (`runs: 0%| 0/18`) wherever the widget state is not
    loaded (JupyterLab by default, GitHub, nbviewer); the text of the bar as it ended is what
    a reader needs. A bar that had nothing to do (`runs: 0/0`, `runs: 0it`: every run was stored)
    says nothing and is dropped. The widget state itself is then dropped from the notebook."""
    state = nb.get("metadata", {}).get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {}).get("state", {})
    for cell in nb["cells"]:
        kept = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get("application/vnd.jupyter.widget-view+json")
            text = _bar_text(state, view.get("model_id")) if view is not None else _plain_text(output)
            if text is not None and _EMPTY_BAR.search(text):
                continue
            if view is not None and text is not None:
                output["data"] = {"text/plain": [text]}
            if output.get("output_type") == "stream" and not _without_empty_bars(output):
                continue
            kept.append(output)
        if "outputs" in cell:
            cell["outputs"] = kept
    nb.get("metadata", {}).pop("widgets", None)
    return nb


# A tqdm bar over nothing: `desc: |          | 0/0 [00:00<?, ?it/s]` or `desc: 0it [00:00, ?it/s]`.
_EMPTY_BAR = re.compile(r"^[^|\n]*:\s*(\d+%)?\s*(\|[^|]*\|\s*0/0|0it) \[[^\]]*\]\s*$")


def _without_empty_bars(stream: dict) -> bool:
    """Drop the lines of a stream that only draw a bar over nothing (tqdm without widgets writes
    to stderr, each update after a carriage return); say whether any text is left."""
    text = stream.get("text", "")
    lines = ("".join(text) if isinstance(text, list) else text).split("\n")
    kept = [line for line in lines if not _only_empty_bars(line)]
    if len(kept) < len(lines):
        stream["text"] = "\n".join(kept).splitlines(keepends=True)
    return any(line.strip() for line in kept)


def _only_empty_bars(line: str) -> bool:
    drawn = [part for part in line.split("\r") if part.strip()]
    return bool(drawn) and all(_EMPTY_BAR.search(part) for part in drawn)


def _plain_text(output: dict) -> str | None:
    """The text of a display output already settled to text (a notebook settled before)."""
    text = output.get("data", {}).get("text/plain") if output.get("output_type") == "display_data" else None
    return "".join(text) if isinstance(text, list) else text


def _bar_text(state: dict, model_id: str | None) -> str | None:
    """`desc: 100%|##########| 20/20 [03:07<00:00, 9.3s/it]` from a tqdm HBox (HTML, FloatProgress, HTML)."""
    box = state.get(model_id or "", {}).get("state", {})
    parts = [state.get(child.replace("IPY_MODEL_", ""), {}).get("state", {}) for child in box.get("children", [])]
    if len(parts) != 3:
        return None
    left, bar, right = parts
    done = float(bar.get("value") or 0) / float(bar.get("max") or 1)
    cells = round(10 * min(max(done, 0.0), 1.0))

    def plain(value: str) -> str:
        return html.unescape(value or "").replace("\u2007", " ")

    return f"{plain(left.get('value'))}|{'█' * cells}{' ' * (10 - cells)}|{plain(right.get('value'))}"


def keep_for_readers(executed: Path, notebook: Path, profile: str = READER_PROFILE) -> None:
    """The executed notebook becomes the one in notebooks/: same cells, the real run's outputs,
    without papermill's per-cell bookkeeping (timings, status) that would change on every run;
    `metadata.blurblib.profile` says which profile the saved outputs come from."""
    nb = json.loads(executed.read_text())
    for cell in nb["cells"]:
        cell.get("metadata", {}).pop("papermill", None)
        cell.get("metadata", {}).pop("execution", None)
    nb["metadata"]["blurblib"] = {"profile": profile}
    notebook.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def _title(notebook: Path) -> str:
    cells = json.loads(notebook.read_text())["cells"]
    for cell in cells:
        if cell["cell_type"] == "markdown":
            first = "".join(cell["source"]).strip().splitlines()[0]
            return first.lstrip("# ").strip()
    return notebook.stem


def machine() -> str:
    """Host, CPU model, cores, whether it computes bf16 natively (what `auto` trains at), GPU, versions."""
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    bf16 = "native bf16" if precision.cpu_has_native_bf16() else "no native bf16 (auto trains fp32)"
    return (f"{platform.node() or 'unknown host'}: {_cpu_model()}, {os.cpu_count()} CPU cores, {bf16}, {gpu}; "
            f"torch {torch.__version__}, Python {platform.python_version()}")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


REPRODUCTIONS_FILE = "reproductions.json"  # under outputs/: every reproduction from an empty store, appended


def record_reproduction(out: Path, profile: str, timings: dict[str, float]) -> None:
    """Append a finished reproduction from an empty store to `out/reproductions.json`."""
    log = out / REPRODUCTIONS_FILE
    entries = json.loads(log.read_text()) if log.is_file() else []
    entries.append({"profile": profile, "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="minutes"),
                    "machine": machine(), "minutes": round(sum(timings.values()) / 60, 1),
                    "notebooks": {stem: round(s / 60, 1) for stem, s in timings.items()}})
    log.write_text(json.dumps(entries, indent=1) + "\n")


def empty_store_lines(profile: str, out: Path) -> list[str]:
    """The last reproduction of `profile` from an empty store (`blurb reproduce --fresh` records it), and
    what the runs each notebook reads took to train, summed from their records."""
    log = out / REPRODUCTIONS_FILE
    last = [e for e in (json.loads(log.read_text()) if log.is_file() else []) if e["profile"] == profile][-1:]
    lines = [f"* last reproduction from an empty store: {last[0]['minutes']:.1f} min on {last[0]['date'][:10]} "
             f"({last[0]['machine']})" + (f"; {last[0]['source']}" if last[0].get("source") else "") if last else
             f"* no reproduction of `{profile}` from an empty store is on record (`blurb reproduce --fresh` records one)"]
    parts, total = [], 0.0
    for notebook in notebook_paths():
        P = profiles.get(notebook.stem, profile)
        count, seconds = grids.stored_training(P)
        total += seconds
        parts.append(f"{notebook.stem[:2]}: {seconds / 60:.0f} min ({count} runs)" if count else f"{notebook.stem[:2]}: –")
    lines.append(f"* training of the stored runs, summed from their records (an empty store trains them all again; "
                 f"runs trained side by side overlap in time): {total / 3600:.1f} h ({', '.join(parts)})")
    return lines


def this_runs_figures(figures: Path, stem: str, timing: dict | None) -> list[Path]:
    """The notebook's figures written by its last execution: a file older than that execution's
    start is an orphan of an earlier version of the notebook and is left out."""
    found = sorted(figures.glob(f"{stem}*.png"))
    if not timing or not timing.get("start"):
        return found
    try:
        started = dt.datetime.fromisoformat(timing["start"].replace("Z", "+00:00")).timestamp()
    except ValueError:
        return found
    return [f for f in found if f.stat().st_mtime >= started - 1]


# The claims tables a notebook writes besides its main one, and their headings in REPORT.md.
EXTRA_CLAIMS = {"remedies": "The remedies where fine-tuning is unstable (the scan's chosen settings)",
                "unstable": "Where fine-tuning is unstable (notebook 03's remedies grid)"}


# The columns that say what a claims row compares (the rest say how it came out).
_IDENTITY = ("setting", "task", "model", "small", "large", "technique", "reinit_layers", "arm", "against")


def summary_section(tables: Path) -> list[str]:
    """One screen before the details: each of the paper's claims where a notebook tested it, per
    task or setting, with the effect, its interval and the verdict (every row from the claims
    tables). On an unstable setting, a paper claim's *stabilises* rows (failure rate, seed sd) go
    beside its *helps* row: there the paper's remedies are claims about stability."""
    paper = set(CLAIMS.values()) | set(PRETRAINING_CLAIMS.values())
    rows, seen = [], set()
    for path in sorted(tables.glob("[0-9][0-9]_*_claims.csv")):
        claims = pd.read_csv(path)
        identity = [c for c in _IDENTITY if c in claims]
        keys = pd.Series([" | ".join(map(str, r)) for r in claims[identity].itertuples(index=False)], index=claims.index)
        # on an unstable setting a remedy's claim is about stability: its failure-rate and sd rows join
        picked = keys.isin(set(keys[claims["claim"].isin(paper)])) if "setting" in claims else claims["claim"].isin(paper)
        for _, row in claims[picked].iterrows():
            shown = [c for c in (*_IDENTITY, "kind") if c in row and pd.notna(row[c]) and not (c == "task" and "setting" in row)]
            where = " / ".join(f"{c} {row[c]}" if c in ("reinit_layers", "against") else str(row[c]) for c in shown)
            if (row["claim"], where) in seen:  # 04 reads re-initialisation's rows of 03's remedies grid again
                continue
            seen.add((row["claim"], where))
            rows.append({"notebook": path.name[:2], "claim": row["claim"], "tested on": where,
                         "effect [95% CI]": f"{_num(row['estimate'])} [{_num(row['ci_low'])}, {_num(row['ci_high'])}]",
                         "n": row["n"], "p (Holm)": p_text(_verdict_p(row)), "verdict": row["verdict"]})
    if not rows:
        return []
    return ["## Summary: the paper's claims as these runs test them", "",
            "Per task (or unstable setting), in the task's metric; the verdict rule and the tests are "
            "`blurblib.analysis.stats` (Holm-adjusted over each notebook's claims; a test at its floor is never "
            "decided). The p shown is the one the verdict rests on: for *does not hold*, the opposite direction's. "
            "A remedy that fails every seed has a small seed sd: read the sd row with the failure-rate row.", "",
            to_markdown(pd.DataFrame(rows)), ""]


SCAN_TASKS = "03_stabilization_scan_tasks.csv"  # `instability.per_task` of the committed scan


def scan_section(tables: Path) -> list[str]:
    """Where the instability scan found settings to test the remedies on, per task, and where it
    found none, why: a claim with no unstable-but-learnable setting is untested there, not refuted."""
    path = tables / SCAN_TASKS
    if not path.is_file():
        return []
    return ["### Where the scan found fine-tuning unstable but learnable (notebook 03, dev only)", "",
            "The remedies' claims about stability are tested only on such settings; a task without one is "
            "not tested there, and `reading` says why.", "", to_markdown(pd.read_csv(path)), ""]


def _verdict_p(row) -> float:
    """The adjusted p of the direction the verdict speaks for: a claim that *does not hold* was
    decided by the opposite direction's p (its own is near 1, which would read as no evidence)."""
    if row["verdict"] == "does not hold" and pd.notna(row.get("p_opposite_holm")):
        return row["p_opposite_holm"]
    return row.get("p_holm", row["p_value"])


def _num(value) -> str:
    """A number for a reader: two decimals, or a dash where there is none (an undecided claim)."""
    return f"{value:.2f}" if pd.notna(value) else "–"


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


def write_report(profile: str, out: Path, rehearsal_notes: list[str] | None = None) -> Path:
    """One section per notebook: its figures and its claim table (from outputs/tables). A
    rehearsal's report says so at the top, then what the rehearsal changed (`rehearsal_notes`)."""
    figures, tables = out / "figures", out / "tables"
    title = ["# REHEARSAL, not a reproduction: random-weight twins, every number below is meaningless", "",
             f"> `{profile}` (`blurblib.workbook.rehearsal`): the `{rehearsal.rehearsed(profile)}` profile's grids on this "
             "CPU, tiny, with each hub model replaced by its shape-true twin (real config and vocabulary, random "
             "weights). It shows that every notebook runs; it measures nothing."] if rehearsal_notes is not None \
        else ["# Reproduction report"]
    about = rehearsal_notes if rehearsal_notes is not None else [
        "Offline profiles fine-tune small **general-domain** sentence encoders (all-MiniLM-L6-v2, "
        "all-mpnet-base-v2) on a CPU with subsampled training sets, not the paper's biomedical "
        "models on GPUs: the verdicts below are what these runs show, nothing more.", ""]
    timings = notebook_timings(out / "notebooks")
    lines = [
        *title,
        "",
        f"* profile: `{profile}`",
        f"* machine: {machine()}",
        f"* date: {dt.date.today().isoformat()}",
        timing_line(timings),
        *(empty_store_lines(profile, out) if rehearsal_notes is None else []),
        "",
        *about,
        *summary_section(tables),
        *scan_section(tables),
    ]
    for notebook in notebook_paths():
        stem = notebook.stem
        lines += [f"## {_title(notebook)}", "", f"Notebook: [`{stem}`](notebooks/{notebook.name})", ""]
        for figure in this_runs_figures(figures, stem, timings.get(stem)):
            lines += [f"![{figure.stem}](figures/{figure.name})", ""]
        lines += learned_section(tables / f"{stem}_learned.csv")
        claims = tables / f"{stem}_claims.csv"
        if claims.is_file():
            lines += [to_markdown(claims_view(pd.read_csv(claims))), ""]
        for extra, heading in EXTRA_CLAIMS.items():
            path = tables / f"{stem}_{extra}_claims.csv"
            if path.is_file():
                lines += [f"### {heading}", "", to_markdown(claims_view(pd.read_csv(path))), ""]
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
        address: str | None = None, rehearse: bool = False) -> Path:
    """Execute the notebooks (all, or those `only` names) under `profile`, their sweeps on `backend`
    (a Ray cluster at `address` with "ray"), then write REPORT.md; `fresh` first moves the
    profile's results store aside. `rehearse`: the profile's rehearsal instead (`rehearse()`).
    Returns the report's path."""
    # an unknown profile or backend (or a profile without a rehearsal) fails here, before any notebook starts
    store = Path(profiles.get("05_blurb_score", profile, backend=backend, ray_address=address,
                              rehearse=rehearse).results_dir)
    check_only(only)
    if rehearse:
        return run_rehearsal(profile, only, backend, address)
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
        if profile == READER_PROFILE:
            keep_for_readers(notebook_out / notebook.name, notebook)
        print(f"    done in {timings[notebook.stem] / 60:.1f} min", flush=True)
    if fresh and only is None:
        record_reproduction(out, profile, timings)
    report = write_report(profile, out)
    print(f"wall time {sum(timings.values()) / 60:.1f} min; report: {report}")
    return report


def run_rehearsal(profile: str = "paper", only: list[str] | None = None, backend: str = "local",
                  address: str | None = None) -> Path:
    """The rehearsal of `profile` (`blurblib.workbook.rehearsal`): the notebooks (all, or those `only`
    names) on its grids, tiny, on this CPU, each hub model read by hub id from a scratch HF cache
    holding its twin (installed first; kept between rehearsals). Everything goes under
    outputs/rehearsal/, emptied first, so every run of the rehearsal is trained. A failing
    notebook does not stop the others: the run ends with SystemExit naming each one that failed.
    Returns the report's path (outputs/rehearsal/REPORT.md)."""
    name, out = rehearsal.name_of(profile), rehearsal.output_dir()
    check_only(only)
    if out.exists():
        shutil.rmtree(out)
    notebook_out = out / "notebooks"
    notebook_out.mkdir(parents=True)
    selected = notebook_paths(only)
    hub = rehearsal.hub_models([profiles.get(notebook.stem, profile, rehearse=True) for notebook in selected])
    if hub:

        started = time.perf_counter()
        twins.install_all(rehearsal.hf_home(), names=hub)
        print(f"twins of {', '.join(hub)} in {paths.shown(rehearsal.hf_home())} ({time.perf_counter() - started:.0f} s)",
              flush=True)
    timings, cpu, failures = {}, {}, []
    with contextlib.ExitStack() as scope:
        scope.enter_context(packs.using_hf_home(rehearsal.hf_home(), offline=True))  # kernels and workers read the twins
        for variable, value in rehearsal.ENVIRONMENT.items():
            scope.enter_context(_environment(variable, value))
        for notebook in selected:
            print(f"[{dt.datetime.now():%H:%M:%S}] {notebook.name} (profile {name}) ...", flush=True)
            started, cpu_before = time.perf_counter(), _children_cpu_s()
            try:
                execute(notebook, profile, notebook_out, backend, address, rehearse=True)
            except SystemExit as failure:
                failures.append(str(failure))
                print(f"    FAILED: {failure}", flush=True)
            timings[notebook.stem], cpu[notebook.stem] = time.perf_counter() - started, _children_cpu_s() - cpu_before
            print(f"    {'failed' if failures and notebook.name in failures[-1] else 'done'} in "
                  f"{timings[notebook.stem] / 60:.1f} min ({cpu[notebook.stem]:.0f} CPU s)", flush=True)
    cpu_line = (f"* CPU time of the notebooks' processes (kernels, workers, benchmark probes): {sum(cpu.values()):.0f} s ("
                + ", ".join(f"{stem[:2]}: {seconds:.0f}" for stem, seconds in cpu.items()) + "); on a busy machine "
                "it is the better measure of what the rehearsal costs")
    notes = report_notes(profile, [n.stem for n in selected], hub)
    report = write_report(name, out, [cpu_line, "", *notes])
    print(f"rehearsal wall time {sum(timings.values()) / 60:.1f} min, {sum(cpu.values()):.0f} CPU s; report: {report}")
    if failures:
        raise SystemExit(f"rehearsal of {profile}: {len(failures)} of {len(selected)} notebooks failed:\n  "
                         + "\n  ".join(failures))
    return report


def _children_cpu_s() -> float:
    """User + system seconds of every finished child process (and theirs) so far."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ----------------------------------------------------------------------------- what a rehearsal's REPORT.md says


def untrainable_tasks(profile: str, notebooks) -> dict[str, list[str]]:
    """{task: [notebook numbers]}: tasks that the profile's grids would fine-tune but that have no
    train split in this copy of BLURB (EBM-PICO): the rehearsal leaves them out there."""
    out: dict[str, list[str]] = {}
    for notebook in notebooks:
        trained = dict.fromkeys(c.task for c in grids.for_notebook(profiles.get(notebook, profile)).runs())
        for task in trained:
            if "train" not in tasks.present_splits(task):
                out.setdefault(task, []).append(notebook[:2])
    return out


def report_notes(profile: str, notebooks, twins_of) -> list[str]:
    """The part of a rehearsal's REPORT.md that says what it changed against `profile`, notebook by
    notebook, and what it left out, so nobody mistakes its coverage for the profile's."""
    def listed(sizes: dict) -> str:
        return ", ".join(f"{k} {v}" for k, v in sizes.items())

    lines = ["## What the rehearsal changes", "",
             f"Kept from `{profile}`: the models, heads, techniques and their knobs, learning rates, precision (`auto`, "
             "resolved on this CPU) and benchmark arms. Changed:", "",
             f"* every fine-tuning run at {listed(rehearsal.RUN_SIZES)} (one optimizer step), on the CPU;",
             f"* seeds: the first {rehearsal.SEEDS} (the fewest for which every seed statistic is defined); "
             + ", ".join(f"{n[:2]}: {k}" for n, k in rehearsal.NOTEBOOK_SEEDS.items())
             + " (its statistics run over tasks); the SlimFit comparison's seeds: "
             f"{rehearsal.BENCH_SEEDS} (its rate curve too, at every rate);",
             f"* notebook 03's knob curves on {rehearsal.KNOB_SEEDS} seed and the first {rehearsal.KNOB_MODELS} model; notebook 05's "
             f"calibration on each task's first {rehearsal.CALIBRATION_LRS} learning rate;",
             f"* benchmarks at {listed(rehearsal.BENCH_SIZES)}; the memory benchmarks on their first model only and at freezing "
             f"fractions {', '.join(map(str, rehearsal.MEMORY_FRACTIONS))}; K seeds in parallel at the smallest K;",
             "* the tasks per notebook as the table says (`blurblib.workbook.rehearsal.TASKS` gives the reasons); stores, "
             "tables, figures and executed notebooks under outputs/rehearsal/.",
             "", f"Hub models read as twins (random weights) from the scratch HF cache: {', '.join(twins_of) or 'none'}.",
             "", "| notebook | changed (paper -> rehearsal) |", "|---|---|"]
    for notebook in notebooks:
        changes = rehearsal.differences(profiles.get(notebook, profile), profiles.get(notebook, profile, rehearse=True))
        lines.append(f"| {notebook} | {'; '.join(changes) or 'nothing'} |")
    left_out = untrainable_tasks(profile, notebooks)
    if left_out:
        lines += ["", "Left out for a data reason: " + "; ".join(
            f"{task} has no train split in this copy of BLURB, yet the `{profile}` grids of notebooks "
            f"{', '.join(nbs)} fine-tune it (a `{profile}` run here would fail on it): not rehearsed there"
            for task, nbs in left_out.items()) + ". Notebook 05 leaves such a task out itself and names it; "
                  "notebook 00 tours its dev and test splits."]
    return lines + [""]
