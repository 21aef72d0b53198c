"""A crawl's label names one folder below the output folder, whatever was typed."""
from crawl.output import output_folder


def test_a_label_cannot_leave_the_output_folder(tmp_path):
    out = tmp_path / "out"
    folder = output_folder(out, "客厅", "../../../escaped-by-label")
    assert folder.resolve().is_relative_to(out.resolve())
    assert not (tmp_path / "escaped-by-label").exists()


def test_a_plain_label_is_kept(tmp_path):
    assert output_folder(tmp_path, "kitchen", "20261128-0200").name == "20261128-0200"
