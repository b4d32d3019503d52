"""The task registry and loaders, against the real BLURB files and small broken copies.

Expected numbers come from the data folder's README (counted independently of this code).
"""
import json
from collections import Counter

import pytest

from blurblib.core.errors import DataError, UnknownNameError
from blurblib.data import tasks

CANONICAL = ["BC5-chem", "BC5-disease", "NCBI-disease", "BC2GM", "JNLPBA", "EBM-PICO",
             "ChemProt", "DDI", "GAD", "BIOSSES", "HoC", "PubMedQA", "BioASQ"]


@pytest.fixture(scope="module")
def data():
    """Every present split of every dataset, parsed once for the module."""
    return {name: tasks.load(name, splits=tasks.present_splits(name)) for name in CANONICAL}


# --- registry --------------------------------------------------------------------------

def test_names_are_the_13_blurb_datasets_in_order():
    assert tasks.names() == CANONICAL
    assert len({spec.folder for spec in tasks.TASKS.values()}) == 13


def test_get_accepts_case_insensitive_names_and_folder_aliases():
    assert tasks.get("BC5-chem") is tasks.TASKS["BC5-chem"]
    assert tasks.get("bc5-CHEM").name == "BC5-chem"
    assert tasks.get("BC5CDR-disease").name == "BC5-disease"
    assert tasks.get("hoc").name == "HoC"
    assert tasks.get(tasks.TASKS["GAD"]).name == "GAD"


def test_unknown_task_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        tasks.get("BC5")
    message = str(err.value)
    assert "'BC5'" in message
    assert all(name in message for name in CANONICAL)


def test_specs_follow_the_contract():
    types = Counter(spec.task_type for spec in tasks.TASKS.values())
    assert types == {"ner": 5, "pico": 1, "relation": 3, "similarity": 1, "doc_classification": 1, "qa": 2}
    negatives = {n: tasks.get(n).negative_label for n in ("ChemProt", "DDI", "GAD")}
    assert negatives == {"ChemProt": "false", "DDI": "DDI-false", "GAD": "0"}
    assert tasks.get("GAD").positive_labels == ("1",)
    assert "false" not in tasks.get("ChemProt").positive_labels
    assert {n for n, s in tasks.TASKS.items() if s.low_resource} == {"BIOSSES", "PubMedQA", "BioASQ", "GAD"}
    assert tasks.get("BIOSSES").text_fields == ("text_a", "text_b")
    assert tasks.get("PubMedQA").text_fields == ("question", "context")
    assert tasks.get("JNLPBA").target == "tags" and tasks.get("HoC").target == "labels"
    assert tasks.get("BIOSSES").num_labels == 1 and tasks.get("HoC").num_labels == 10
    assert tasks.get("HoC").head_kind == "multi_label" and tasks.get("BIOSSES").head_kind == "regression"
    assert {n: tasks.get(n).max_length for n in ("NCBI-disease", "GAD", "ChemProt", "BIOSSES", "HoC")} == \
        {"NCBI-disease": 512, "GAD": 128, "ChemProt": 256, "BIOSSES": 128, "HoC": 512}
    assert tasks.get("HoC").labels[0] == "activating invasion and metastasis"
    assert tasks.get("HoC").labels[9] == "tumor promoting inflammation"


def test_every_split_has_the_contract_columns_types_and_unique_ids(data):
    for name, dsd in data.items():
        spec = tasks.get(name)
        for split, ds in dsd.items():
            assert ds.features == spec.features, (name, split)
            assert set(ds.column_names) == {"id", *spec.text_fields, spec.target}
            assert len(set(ds["id"])) == len(ds), (name, split)


# --- real data: exact counts ---------------------------------------------------------------

NER_COUNTS = {  # sentences, B-mentions, tokens per split (train, dev, test)
    "NCBI-disease": ((5424, 923, 940), (5134, 787, 960), (135701, 23969, 24497)),
    "BC5-chem": ((4560, 4581, 4797), (5203, 5347, 5385), (118170, 117453, 124750)),
    "BC5-disease": ((4560, 4581, 4797), (4182, 4246, 4424), (118170, 117453, 124750)),
    "BC2GM": ((12574, 2519, 5038), (15197, 3061, 6325), (355405, 71042, 143465)),
    "JNLPBA": ((16807, 1739, 3856), (46750, 4551, 8662), (445090, 47461, 101039)),
}


@pytest.mark.parametrize("name", list(NER_COUNTS))
def test_ner_sentences_mentions_and_tokens(data, name):
    sentences, mentions, tokens = NER_COUNTS[name]
    for i, split in enumerate(tasks.SPLITS):
        ds = data[name][split]
        assert len(ds) == sentences[i]
        tags = ds["tags"]
        assert sum(t.count("B") for t in tags) == mentions[i]
        assert sum(map(len, tags)) == tokens[i]
        assert all(len(a) == len(b) for a, b in zip(ds["tokens"], tags))


def test_ncbi_first_sentence_matches_the_readme_example(data):
    first = data["NCBI-disease"]["train"][0]
    assert first["tokens"][:3] == ["Identification", "of", "APC2"]
    assert first["tags"][:3] == ["O", "O", "O"]
    i = first["tokens"].index("adenomatous")
    assert first["tags"][i:i + 4] == ["B", "I", "I", "I"]


def test_jnlpba_docstart_lines_are_document_breaks_not_tokens(data):
    for split, n_docs in zip(tasks.SPLITS, (1800, 200, 404)):
        ds = data["JNLPBA"][split]
        assert not any(tok.startswith("-DOCSTART-") for toks in ds["tokens"] for tok in toks)
        assert len({i.rsplit("-s", 1)[0] for i in ds["id"]}) == n_docs
    assert data["JNLPBA"]["dev"][0]["id"] == "91075236-s0"
    # MEDLINE 97218353 appears twice in train (annotated differently); ids stay unique
    assert sum(i.startswith("97218353#2-") for i in data["JNLPBA"]["train"]["id"]) > 0


def test_ebm_pico_dev_and_test(data):
    expected = {  # abstracts, sentences, tokens, PAR, INT, OUT
        "dev": (960, 10386, 262268, 30280, 25061, 31967),
        "test": (191, 2076, 51784, 4711, 3563, 8090),
    }
    assert list(data["EBM-PICO"]) == ["dev", "test"]
    for split, (abstracts, sentences, n_tokens, par, int_, out) in expected.items():
        ds = data["EBM-PICO"][split]
        counts = Counter(t for tags in ds["tags"] for t in tags)
        assert len(ds) == sentences
        assert len({i.rsplit("-s", 1)[0] for i in ds["id"]}) == abstracts
        assert sum(counts.values()) == n_tokens
        assert (counts["I-PAR"], counts["I-INT"], counts["I-OUT"]) == (par, int_, out)
    first = data["EBM-PICO"]["dev"][0]
    assert first["id"] == "10037531-s0"
    assert list(zip(first["tokens"], first["tags"]))[:5] == [
        ("Xylitol", "I-INT"), ("for", "O"), ("prevention", "O"), ("of", "O"), ("acute", "I-PAR")]


def test_ebm_pico_missing_train_names_the_file_and_the_fix():
    assert tasks.present_splits("EBM-PICO") == ["dev", "test"]
    with pytest.raises(DataError) as err:
        tasks.load("EBM-PICO")
    message = str(err.value)
    assert "EBM-PICO/train.tsv" in message
    assert "data_generation" in message and "data/README.md" in message
    assert "splits=['dev', 'test']" in message


RE_DISTRIBUTIONS = {
    "ChemProt": {
        "train": {"false": 13923, "CPR:4": 2227, "CPR:3": 756, "CPR:9": 727, "CPR:6": 229, "CPR:5": 173},
        "dev": {"false": 8860, "CPR:4": 1091, "CPR:3": 546, "CPR:9": 457, "CPR:6": 199, "CPR:5": 115},
        "test": {"false": 12315, "CPR:4": 1655, "CPR:3": 663, "CPR:9": 642, "CPR:6": 292, "CPR:5": 178},
    },
    "DDI": {
        "train": {"DDI-false": 21745, "DDI-effect": 1486, "DDI-mechanism": 1163, "DDI-advise": 725, "DDI-int": 177},
        "dev": {"DDI-false": 2027, "DDI-effect": 201, "DDI-mechanism": 156, "DDI-advise": 101, "DDI-int": 11},
        "test": {"DDI-false": 4737, "DDI-effect": 360, "DDI-mechanism": 302, "DDI-advise": 221, "DDI-int": 96},
    },
    "GAD": {"train": {"1": 2227, "0": 2034}, "dev": {"1": 293, "0": 242}, "test": {"1": 281, "0": 253}},
    "PubMedQA": {"train": {"yes": 249, "no": 152, "maybe": 49}, "dev": {"yes": 27, "no": 17, "maybe": 6},
                 "test": {"yes": 276, "no": 169, "maybe": 55}},
    "BioASQ": {"train": {"yes": 552, "no": 118}, "dev": {"yes": 62, "no": 13}, "test": {"yes": 94, "no": 46}},
}


@pytest.mark.parametrize("name", list(RE_DISTRIBUTIONS))
def test_label_distributions(data, name):
    for split, expected in RE_DISTRIBUTIONS[name].items():
        assert Counter(data[name][split]["label"]) == expected, split


def test_relation_and_qa_rows_keep_masks_ids_and_text(data):
    row = data["ChemProt"]["test"][1]
    assert row["id"] == "10076535.T45.T63" and row["label"] == "CPR:6"
    assert row["text"] == ("Androgen antagonistic effect of @CHEMICAL$ (EMP) metabolites on "
                           "wild-type and mutated @GENE$.")
    chem_gene = [sum("@CHEM-GENE$" in t for t in data["ChemProt"][s]["text"]) for s in tasks.SPLITS]
    assert chem_gene == [1647, 946, 1373]
    assert data["DDI"]["dev"][0]["id"] == "DDI-MedLine.d119.s1.p0"
    assert all("@GENE$" in t and "@DISEASE$" in t for t in data["GAD"]["dev"]["text"])
    assert data["GAD"]["test"][0]["id"] == "0"  # BioBERT's test file restarts the index
    bioasq = data["BioASQ"]["train"][0]
    assert (bioasq["id"], bioasq["question"]) == ("54e25eaaae9738404b000017", "Is the protein Papilin secreted?")
    pubmedqa = data["PubMedQA"]["test"][0]
    assert pubmedqa["id"] == "12377809"
    assert pubmedqa["question"] == "Is anorectal endosonography valuable in dyschesia?"


def test_biosses_pairs_and_scores(data):
    assert [len(data["BIOSSES"][s]) for s in tasks.SPLITS] == [64, 16, 20]
    pair = data["BIOSSES"]["train"][2]
    assert pair == {"id": "35", "text_a": "The oncogenic activity of mutant Kras appears dependent on functional Craf.",
                    "text_b": "Oncogenic KRAS mutations are common in cancer.", "label": 2.0}
    scores = [x for s in tasks.SPLITS for x in data["BIOSSES"][s]["label"]]
    assert min(scores) >= 0 and max(scores) <= 4 and len(set(scores)) > 10


def test_hoc_abstracts_and_sentences(data):
    for split, abstracts, sentences, unlabelled in zip(
            tasks.SPLITS, (1295, 186, 371), (12119, 1798, 3547), (197, 22, 53)):
        ds = data["HoC"][split]
        assert len(ds) == abstracts
        assert sum(not labels for labels in ds["labels"]) == unlabelled
        sent = tasks.load_hoc_sentences(split)
        assert len(sent) == sentences
        assert len(set(sent["pmid"])) == abstracts
    dev = data["HoC"]["dev"]
    assert dev[0]["id"] == "22355784" and dev[0]["labels"] == ["genomic instability and mutation"]


@pytest.mark.parametrize("split", tasks.SPLITS)
def test_hoc_grouping_equals_the_linkbert_abstract_jsonl(data, split):
    """BLURB scores HoC per abstract: our grouping must equal LinkBERT's abstract file exactly."""
    path = tasks.get("HoC").split_path(split).parent / "hf_jsonl" / f"{split}.json"
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    ds = data["HoC"][split]
    assert ds["id"] == [str(r["id"]) for r in rows]
    assert ds["text"] == [r["sentence"] for r in rows]
    assert ds["labels"] == [[h for h, flag in zip(tasks.HOC_HALLMARKS, r["label"]) if flag] for r in rows]


# --- caching --------------------------------------------------------------------------------

def test_repeated_loads_are_cached_and_isolated(data):
    again = tasks.load("JNLPBA", splits=["dev"])["dev"]
    assert again["id"][:3] == data["JNLPBA"]["dev"]["id"][:3]
    again.set_format("numpy")
    assert tasks.load("JNLPBA", splits=["dev"])["dev"].format["type"] is None


def _gad_dir(root, rows):
    folder = root / "GAD"
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["index\tsentence\tlabel"] + [f"{i}\t{text}\t{label}" for i, (text, label) in enumerate(rows)]
    (folder / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root


def test_an_edited_file_is_read_again(tmp_path):
    _gad_dir(tmp_path, [("@GENE$ causes @DISEASE$.", "1")])
    assert tasks.load("GAD", splits="train", data_dir=tmp_path)["train"]["label"] == ["1"]
    _gad_dir(tmp_path, [("@GENE$ causes @DISEASE$.", "1"), ("@GENE$ is unrelated to @DISEASE$.", "0")])
    assert tasks.load("GAD", splits="train", data_dir=tmp_path)["train"]["label"] == ["1", "0"]


# --- bad input: each case on a small temporary file --------------------------------------

def _write(root, folder, split, text):
    path = root / folder / f"{split}.tsv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_conll_reader_handles_docstart_and_blank_lines(tmp_path):
    _write(tmp_path, "JNLPBA", "dev",
           "-DOCSTART- 111\n\nIL-2\tB\ngene\tI\n\n\nexpression\tO\n-DOCSTART- 222\n\nNF-kappa\tB\n")
    ds = tasks.load("JNLPBA", splits=["dev"], data_dir=tmp_path)["dev"]
    assert ds["id"] == ["111-s0", "111-s1", "222-s0"]
    assert ds["tokens"] == [["IL-2", "gene"], ["expression"], ["NF-kappa"]]
    assert ds["tags"] == [["B", "I"], ["O"], ["B"]]


def test_missing_data_dir_names_the_path_and_the_fix(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(DataError, match="make data") as err:
        tasks.load("GAD", data_dir=missing)
    assert str(missing) in str(err.value)


def test_missing_split_file_names_the_path(tmp_path):
    _gad_dir(tmp_path, [("@GENE$ x @DISEASE$.", "1")])
    with pytest.raises(DataError) as err:
        tasks.load("GAD", data_dir=tmp_path)
    assert str(tmp_path / "GAD" / "dev.tsv") in str(err.value)
    assert "splits=['train']" in str(err.value)


def test_unknown_split_name():
    with pytest.raises(UnknownNameError, match="train, dev, test"):
        tasks.load("GAD", splits=["validation"])


@pytest.mark.parametrize("line, expected", [
    ("Joys\tO\tX", "got 3 field"),
    ("Joys", "got 1 field"),
    ("Joys O", "got 1 field"),
    ("Joys\tB-Chemical", "unknown tag 'B-Chemical'"),
])
def test_ner_malformed_lines_give_file_line_and_value(tmp_path, line, expected):
    path = _write(tmp_path, "BC2GM", "train", f"A\tO\nB\tB\n{line}\n\nC\tO\n")
    with pytest.raises(DataError, match=expected) as err:
        tasks.load("BC2GM", splits=["train"], data_dir=tmp_path)
    assert f"{path}:3" in str(err.value)
    assert line.split("\t")[-1] in str(err.value)


def test_pico_rejects_ner_tags(tmp_path):
    _write(tmp_path, "EBM-PICO", "test", "-DOCSTART- (1)\n\nXylitol\tB\n")
    with pytest.raises(DataError, match=r"test.tsv:3: unknown tag 'B'.*I-PAR"):
        tasks.load("EBM-PICO", splits=["test"], data_dir=tmp_path)


def test_relation_wrong_column_count_and_unknown_label(tmp_path):
    path = _write(tmp_path, "ChemProt", "dev", "1.T1.T2\t@CHEMICAL$ binds @GENE$.\tfalse\n1.T1.T3\tbroken row\n")
    with pytest.raises(DataError, match="expected 3 tab-separated columns, got 2") as err:
        tasks.load("ChemProt", splits=["dev"], data_dir=tmp_path)
    assert f"{path}:2" in str(err.value) and "broken row" in str(err.value)
    _write(tmp_path, "ChemProt", "dev", "1.T1.T2\t@CHEMICAL$ binds @GENE$.\tCPR:7\n")
    with pytest.raises(DataError, match=r"dev.tsv:1: unknown label 'CPR:7'"):
        tasks.load("ChemProt", splits=["dev"], data_dir=tmp_path)


def test_gad_label_must_be_the_string_0_or_1(tmp_path):
    _gad_dir(tmp_path, [("@GENE$ x @DISEASE$.", "yes")])
    with pytest.raises(DataError, match=r"train.tsv:2: unknown label 'yes'"):
        tasks.load("GAD", splits=["train"], data_dir=tmp_path)


def test_biosses_non_numeric_score(tmp_path):
    _write(tmp_path, "BIOSSES", "dev", "pair_id\tsent1\tsent2\tscore\n1\tA.\tB.\t2.4\n2\tC.\tD.\thigh\n")
    with pytest.raises(DataError, match=r"dev.tsv:3: score 'high' is not a number"):
        tasks.load("BIOSSES", splits=["dev"], data_dir=tmp_path)


def test_qa_unknown_label(tmp_path):
    _write(tmp_path, "BioASQ", "dev", "q1\tIs it?\tIt is.\tmaybe\n")
    with pytest.raises(DataError, match=r"dev.tsv:1: unknown label 'maybe'"):
        tasks.load("BioASQ", splits=["dev"], data_dir=tmp_path)


def test_pubmedqa_bad_json_and_unknown_label(tmp_path):
    path = tmp_path / "PubMedQA" / "hf_jsonl" / "dev.json"
    path.parent.mkdir(parents=True)
    good = json.dumps({"id": "1", "sentence1": "Q?", "sentence2": "C.", "label": "yes"})
    path.write_text(good + "\n{not json\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev.json:2: expected a JSON object"):
        tasks.load("PubMedQA", splits=["dev"], data_dir=tmp_path)
    path.write_text(json.dumps({"id": "1", "sentence1": "Q?", "sentence2": "C.", "label": "perhaps"}) + "\n")
    with pytest.raises(DataError, match=r"dev.json:1: unknown label 'perhaps'"):
        tasks.load("PubMedQA", splits=["dev"], data_dir=tmp_path)


def test_hoc_bad_label_item(tmp_path):
    flags = ",".join(f"{k}_0" for k in range(10))
    _write(tmp_path, "HoC", "dev", f"labels\tsentence\tindex\n{flags}\tA .\t1_s0\n{flags[:-1]}2\tB .\t1_s1\n")
    with pytest.raises(DataError, match=r"dev.tsv:3: unknown label '9_2'"):
        tasks.load("HoC", splits=["dev"], data_dir=tmp_path)


@pytest.mark.parametrize("folder, content", [
    ("GAD", "index\tsentence\tlabel\n"),
    ("NCBI-disease", "\n\n"),
])
def test_empty_split(tmp_path, folder, content):
    _write(tmp_path, folder, "train", content)
    with pytest.raises(DataError, match="split is empty"):
        tasks.load(folder, splits=["train"], data_dir=tmp_path)
