"""Which rows and columns a run trains on: a given train/valid/test split used as is, and class
labels only from the column the user names (default 'label'), said when taken (issue 20)."""

import numpy as np
import pytest
from conftest import tiny_config

from bayesgen import BayesgenError
from bayesgen.cli import main
from bayesgen.config import Config
from bayesgen.data import load_data
from bayesgen.runs.data import prepare_data


def _csv(path, x, header="a,b,c", labels=None):
    table = x if labels is None else np.c_[x, labels]
    np.savetxt(path, table, delimiter=",", header=header, comments="", fmt="%g")
    return str(path)


@pytest.fixture
def files(tmp_path):
    rng = np.random.default_rng(0)
    parts = {name: rng.integers(0, 5, size=(n, 3)).astype(float) for name, n in (("train", 40), ("valid", 7),
                                                                                  ("test", 9))}
    return {name: _csv(tmp_path / f"{name}.csv", x) for name, x in parts.items()}, parts


def _config(**data):
    return tiny_config(data={"source": "digits", **data}, model={"likelihood": "categorical", "levels": 5})


def test_a_given_split_is_used_as_is(files):
    paths, parts = files
    data = prepare_data(_config(**paths))
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(getattr(data, name), parts[name])  # the rows, in their order
    assert (data.info["n_train"], data.info["n_valid"], data.info["n_test"]) == (40, 7, 9)


def test_without_a_valid_file_part_of_train_validates(files):
    paths, parts = files
    data = prepare_data(_config(train=paths["train"], test=paths["test"], valid_fraction=0.25))
    assert (len(data.train), len(data.valid)) == (30, 10)
    joined = np.concatenate([data.train, data.valid])
    assert sorted(map(tuple, joined)) == sorted(map(tuple, parts["train"]))  # a partition of the train file
    np.testing.assert_array_equal(data.test, parts["test"])


def test_a_given_split_scales_its_files_alike(tmp_path):
    """Scaled once over all files: a test file with a smaller maximum is not stretched to [0, 1]."""
    paths = {"train": _csv(tmp_path / "a.csv", np.array([[0.0, 4.0, 2.0]] * 4)),
             "test": _csv(tmp_path / "b.csv", np.array([[0.0, 1.0, 2.0]]))}
    data = prepare_data(tiny_config(data={"source": "digits", **paths, "valid_fraction": 0.25},
                                    model={"likelihood": "gaussian"}))
    np.testing.assert_allclose(data.test, [[0.0, 0.25, 0.5]])


@pytest.mark.parametrize("data, pattern", [
    ({"train": "a.csv"}, "needs a train and a test file"),
    ({"valid": "a.csv", "test": "b.csv"}, "needs a train and a test file"),
    ({"source": "x.npy", "train": "a.csv", "test": "b.csv"}, "either as one source to split"),
])
def test_incomplete_or_doubled_sources_are_refused(data, pattern):
    with pytest.raises(BayesgenError, match=pattern):
        Config.from_dict({"data": data})


def test_files_of_different_data_sets_are_refused(files, tmp_path):
    paths, _ = files
    wide = _csv(tmp_path / "wide.csv", np.zeros((3, 4)), header="a,b,c,d")
    with pytest.raises(BayesgenError, match="test file .* has 4 features but the train file .* has 3"):
        prepare_data(_config(train=paths["train"], test=wide))
    labelled = _csv(tmp_path / "labelled.csv", np.zeros((3, 3)), header="a,b,c,label", labels=np.zeros(3))
    with pytest.raises(BayesgenError, match="has no labels but the test file .* has"):
        prepare_data(_config(train=paths["train"], test=labelled))


def test_labels_come_only_from_the_named_column(tmp_path):
    x, y = np.arange(12.0).reshape(4, 3), np.array([0, 1, 1, 0])
    default = load_data(_csv(tmp_path / "d.csv", x, "x,y,z,label", y))
    assert default.x.shape == (4, 3) and default.labels.tolist() == [0, 1, 1, 0]
    assert default.labels_from == "column 'label'"
    named = load_data(_csv(tmp_path / "s.csv", x, "x,y,z,species", y), label_column="species")
    assert named.x.shape == (4, 3) and named.labels_from == "column 'species'"
    unnamed = load_data(str(tmp_path / "s.csv"))  # 'species' is a feature unless named
    assert unnamed.x.shape == (4, 4) and unnamed.labels is None and unnamed.labels_from is None
    nothing = load_data(str(tmp_path / "d.csv"), label_column=None)
    assert nothing.x.shape == (4, 4) and nothing.labels is None
    with pytest.raises(BayesgenError, match="has no column 'kind'; its columns are x, y, z, species"):
        load_data(str(tmp_path / "s.csv"), label_column="kind")
    np.save(tmp_path / "x.npy", x)
    with pytest.raises(BayesgenError, match="not a CSV file"):
        load_data(str(tmp_path / "x.npy"), label_column="kind")


def test_train_cli_takes_a_given_split_and_says_where_labels_came_from(tmp_path, capsys):
    rng = np.random.default_rng(1)
    paths = {name: _csv(tmp_path / f"{name}.csv", rng.integers(0, 5, (n, 3)).astype(float), "a,b,c,label",
                        rng.integers(0, 2, n)) for name, n in (("train", 64), ("valid", 8), ("test", 8))}
    code = main(["train", "--train", paths["train"], "--valid", paths["valid"], "--test", paths["test"],
                 "--likelihood", "categorical", "--levels", "5", "--hidden", "8", "--epochs", "1",
                 "--batch-size", "32", "--n-importance", "2", "--no-plots", "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "class labels from its column 'label'" in err
    code = main(["train", "--train", paths["train"], "--out", str(tmp_path / "other")])
    assert code == 2 and "--train" in capsys.readouterr().err  # the library's message, in flags


def test_fit_takes_labels_from_the_named_column_and_says_so(tmp_path, capsys):
    rng = np.random.default_rng(2)
    path = _csv(tmp_path / "s.csv", rng.normal(size=(60, 2)), "x,y,species", rng.integers(0, 2, 60))
    assert main(["fit", "gmm", "--data", path, "-k", "2", "--label-column", "species", "--out",
                 str(tmp_path / "g")]) == 0
    out, err = capsys.readouterr()
    assert "class labels from its column 'species'" in err and "(60 x 2)" in out  # x and y are both features
    assert main(["fit", "gmm", "--data", path, "-k", "2", "--out", str(tmp_path / "h")]) == 0
    out, err = capsys.readouterr()
    assert "class labels" not in err and "(60 x 3)" in out  # not named: 'species' is a feature
