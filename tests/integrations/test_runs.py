"""The run-file writer and the table formatting shared by the result grids."""

from __future__ import annotations

from lowbit.integrations.runs import mean_std, read_metrics, write_run


def test_mean_std_formats_sample_statistics():
    assert mean_std([0.5, None, 0.7], 100) == "60.0 ± 14.1"  # sd of 50, 70 with ddof=1
    assert mean_std([0.25], 100, 2) == "25.00"
    assert mean_std([None]) == "-" and mean_std([]) == "-"
    assert mean_std([1000, 3000], digits=0) == "2,000 ± 1,414"


def test_write_run_round_trips_the_metrics(tmp_path):
    rows = [{"step": 1, "acc": 0.5}, {"step": 2, "acc": 0.75}]
    write_run(tmp_path, rows, {"done": True}, "step", {"accuracy": "acc"}, "t", "steps")
    assert read_metrics(tmp_path) == [{"step": 1.0, "acc": 0.5}, {"step": 2.0, "acc": 0.75}]
    assert (tmp_path / "curve.png").stat().st_size > 1000


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    """atomic_write replaces a file whole or not at all."""
    import pytest

    from lowbit.integrations.runs import atomic_write, write_text

    path = write_text(tmp_path / "summary.json", "old")

    def half_then_fail(fh):
        fh.write(b"new, but not compl")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    (tmp_path / f".summary.json.tmp-{12345}").write_bytes(b"left by a killed writer")
    write_text(path, "new")
    assert path.read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]


def test_write_csv_as_the_csv_module_writes(tmp_path):
    """Dict rows and list rows give the bytes csv.writer gives (CRLF line ends)."""
    import pytest

    from lowbit.integrations.runs import write_csv

    write_csv(tmp_path / "a.csv", [{"x": 1, "y": "a,b"}, {"x": 2, "y": ""}])
    assert (tmp_path / "a.csv").read_bytes() == b'x,y\r\n1,"a,b"\r\n2,\r\n'
    write_csv(tmp_path / "b.csv", [[1, 2.5]], ["k", "v"])
    assert (tmp_path / "b.csv").read_bytes() == b"k,v\r\n1,2.5\r\n"
    with pytest.raises(ValueError, match="need a header"):
        write_csv(tmp_path / "c.csv", [[1]])


def test_checkpoints_keep_the_previous_one_and_fall_back_to_it(tmp_path):
    """save_checkpoint keeps the predecessor; load_checkpoint reads the newest readable one
    and says in one line which file was damaged or missing."""
    import io
    import json

    from lowbit.integrations.runs import load_checkpoint, previous, save_checkpoint

    path = tmp_path / "checkpoint.json"

    def save(obj):
        save_checkpoint(path, lambda fh: fh.write(json.dumps(obj).encode()))

    def load():
        log = io.StringIO()
        return load_checkpoint(path, lambda fh: json.loads(fh.read()), log), log.getvalue()

    assert load() == (None, "")  # nothing yet: start afresh, silently
    save({"epoch": 1})
    assert load() == ({"epoch": 1}, "") and not previous(path).exists()
    save({"epoch": 2})
    assert json.loads(previous(path).read_text()) == {"epoch": 1}
    path.write_bytes(b'{"epoch": ')  # torn
    state, log = load()
    assert state == {"epoch": 1}
    assert log.count("\n") == 1 and "checkpoint.json is damaged (JSONDecodeError" in log
    assert "resuming from checkpoint.prev.json" in log
    path.unlink()
    state, log = load()
    assert state == {"epoch": 1} and "checkpoint.json is missing" in log
    previous(path).write_bytes(b"")
    state, log = load()
    assert state is None and "no readable checkpoint, starting from scratch" in log
