"""A rerun of the benchmark report keeps the sections other commands measured."""

from __future__ import annotations

from loadtest import benchmark

CONTEXT_KEYS = ("command", "date", "cpu", "cores", "kernel", "python", "uvicorn", "uvloop", "httptools",
                "msgspec", "locust", "server_cpu", "client_cpu")


def write(path):
    context = dict.fromkeys(CONTEXT_KEYS, "x")
    context.update(connections=8, batch_size=1000, warmup=1.0, duration=1.0)
    benchmark.write_report(path, path.with_suffix(".png"), context, [], [], None)


def test_rerun_keeps_marked_sections(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text("stale generated part\n" + benchmark.KEPT_SECTIONS_MARKER + "\n\n## Redis\nfigures\n")

    write(path)

    text = path.read_text()
    assert "stale generated part" not in text
    assert text.startswith("# Benchmarks")
    assert "## Redis\nfigures" in text
    assert text.count(benchmark.KEPT_SECTIONS_MARKER) == 1


def test_first_run_has_no_marker(tmp_path):
    path = tmp_path / "benchmarks.md"

    write(path)

    assert benchmark.KEPT_SECTIONS_MARKER not in path.read_text()


def test_tracing_table_before_marker(tmp_path):
    path = tmp_path / "benchmarks.md"
    path.write_text(benchmark.KEPT_SECTIONS_MARKER + "\n\n## Redis\nfigures\n")
    context = dict.fromkeys(CONTEXT_KEYS, "x")
    context.update(connections=8, batch_size=1000, warmup=1.0, duration=1.0)

    for _ in range(2):
        benchmark.write_report(path, path.with_suffix(".png"), context, [], [], None, "| tracing table |")

    text = path.read_text()
    assert text.count("## Cost of tracing") == 1
    assert text.index("| tracing table |") < text.index(benchmark.KEPT_SECTIONS_MARKER)
    assert "## Redis\nfigures" in text
