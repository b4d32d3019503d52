"""`blurb data check` on the real data and on small temporary folders."""
import pandas as pd
import pytest
from datasets import Dataset

from blurblib import cli
from blurblib.core.errors import DataError
from blurblib.data import datacheck, tasks


@pytest.fixture(scope="module")
def table():
    return datacheck.check()


def test_real_data_table(table):
    assert list(table.columns) == ["dataset", "split", "ours", "published", "unit", "status"]
    assert len(table) == 39
    by_key = {(d, s): (o, p, st) for d, s, o, p, st in
              zip(table["dataset"], table["split"], table["ours"], table["published"], table["status"])}
    assert by_key[("EBM-PICO", "train")][2] == "missing"
    assert pd.isna(by_key[("EBM-PICO", "train")][0])
    assert by_key[("EBM-PICO", "dev")] == (87308, 85321, "differs (+1987, known: see data README)")
    assert by_key[("BC5-disease", "dev")] == (4246, 4244, "ok (+2, known: see data README)")
    assert by_key[("JNLPBA", "train")] == (46750, 46750, "ok")
    assert by_key[("HoC", "test")] == (371, 371, "ok")
    others = table[~table["dataset"].eq("EBM-PICO") & ~(table["dataset"].eq("BC5-disease") & table["split"].eq("dev"))]
    assert (others["status"] == "ok").all()
    assert (others["ours"] == others["published"]).all()
    assert set(table.loc[table["dataset"] == "NCBI-disease", "unit"]) == {"mentions"}
    assert set(table.loc[table["dataset"] == "EBM-PICO", "unit"]) == {"non-O tokens"}


def test_summary_and_printed_table(table):
    assert datacheck.summary(table) == \
        "12 of 13 datasets complete; missing: EBM-PICO train; differs: EBM-PICO dev (+1987)"
    text = datacheck.format_table(table)
    assert text.endswith(datacheck.summary(table))
    assert "ok (+2, known: see data README)" in text
    pico_train = next(line for line in text.splitlines() if "EBM-PICO" in line and "train" in line)
    assert pico_train.split()[2:5] == ["-", "339167", "non-O"]


def test_counts_in_blurb_units():
    ner = Dataset.from_dict({"tags": [["B", "I", "O", "I", "B"], ["O"]]})
    assert datacheck.count(tasks.get("BC2GM"), ner) == 2  # mentions are B tags
    pico = Dataset.from_dict({"tags": [["I-PAR", "O", "I-OUT"], ["I-INT"]]})
    assert datacheck.count(tasks.get("EBM-PICO"), pico) == 3  # non-O tokens
    assert datacheck.count(tasks.get("GAD"), Dataset.from_dict({"label": ["0", "1", "1"]})) == 3


def test_small_folder_shows_differences_and_missing(tmp_path):
    folder = tmp_path / "GAD"
    folder.mkdir()
    for split in tasks.SPLITS:
        (folder / f"{split}.tsv").write_text("index\tsentence\tlabel\n0\t@GENE$ and @DISEASE$.\t1\n")
    table = datacheck.check(tmp_path)
    gad = table[table["dataset"] == "GAD"]
    assert list(gad["status"]) == ["differs (-4260)", "differs (-534)", "differs (-533)"]
    assert (table[table["dataset"] != "GAD"]["status"] == "missing").all()
    assert datacheck.summary(table).startswith("0 of 13 datasets complete; missing: BC5-chem train")


def test_missing_data_dir(tmp_path):
    with pytest.raises(DataError, match="not found"):
        datacheck.check(tmp_path / "nowhere")


def test_cli_prints_the_table_and_reports_errors(tmp_path, capsys):
    assert cli.main(["data", "check"]) == 0
    assert "12 of 13 datasets complete" in capsys.readouterr().out
    assert cli.main(["data", "check", "--data-dir", str(tmp_path / "nowhere")]) == 2
    assert "make data" in capsys.readouterr().err
