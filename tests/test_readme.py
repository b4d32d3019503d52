"""The README is a front page: short, every page it links exists, and no result typed by hand."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_readme_is_a_front_page():
    assert len(README.splitlines()) <= 200


def test_every_local_link_resolves():
    for target in re.findall(r"\]\(([^)#]+)\)", README):
        if not target.startswith("http"):
            assert (ROOT / target).exists(), target


def test_readme_states_no_result_of_its_own():
    """Results live in outputs/REPORT.md, generated from the run: the README names no score,
    effect, p-value or verdict of a run (numbers in it are sizes and settings, never outcomes)."""
    results = README[README.index("## Results"):README.index("## The package")]
    decimals = set(re.findall(r"\d+\.\d+", results)) - {"0.05"}  # the workbook's alpha is a setting
    assert not decimals, f"decimal numbers in the README's Results section: {decimals}"
    assert not re.search(r"\b(holds|does not hold)\b[^*]", results.replace("*holds*", "").replace("*does not hold*", ""))
